"""Converting a ViT: IF pairs at the sites, spike-equivalent operators where values vary in time, convergence as T grows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeconv
from spikeconv.calibration import calibrate, prepare
from spikeconv.convert import ConvertConfig, convert, method_settings, rate_code_ann
from spikeconv.ingest import activation_sites, ingest_module
from spikeconv.neurons import IFNeuron
from spikeconv.neurons.expectation import SpikeEquivalentOperator
from tests.ingest.test_transformer_ingest import _Functional, tiny_vit


def _calibrated(model, timesteps=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    data = [torch.randn(64, *next(model.parameters()).new_empty(1, 1, 8, 8).shape[1:], generator=gen)]
    settings = method_settings("calibrated", ConvertConfig(timesteps=timesteps), target_timesteps=timesteps)
    return calibrate(prepare(ingest_module(model), settings.calibration), data), settings.convert


def test_vit_sites_become_if_neurons_and_time_varying_operations_spike_equivalent():
    model = tiny_vit(layers=2)
    calibrated, config = _calibrated(model)
    snn = convert(calibrated, config)
    body = snn.body
    modules = dict(body.named_modules())
    assert all(isinstance(modules[site], IFNeuron) for site in activation_sites(calibrated))
    operators = snn.metadata["operators"]
    # the first block's LayerNorm reads the patch embedding, which a direct-encoded image makes time-invariant
    assert operators["static"] == {"encoder_layers_encoder_layer_0_ln_1": "layer_norm"}
    assert len(operators["spiking"]) == 5 * 2 + 1 + 1  # 2 products, softmax, ln_2, gelu per block; ln_1 of block 2; final ln
    assert all(isinstance(modules[name], SpikeEquivalentOperator) for name in operators["spiking"])
    assert isinstance(modules["encoder_layers_encoder_layer_0_ln_1"], nn.LayerNorm)


def test_vit_snn_converges_to_its_ann_as_t_grows():
    model = tiny_vit(layers=1)
    calibrated, config = _calibrated(model, timesteps=64)
    snn = convert(calibrated, config)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ann = model(x)
        cumulative = snn(x, 256).cumsum(0)
    errors = {t: float((cumulative[t - 1] / t - ann).abs().mean()) for t in (4, 16, 64, 256)}
    scale = float(ann.abs().mean())
    assert errors[256] < 0.05 * scale, errors
    assert errors[256] < errors[16] < errors[4], errors


def test_vit_snn_approaches_its_ideal_rate_code():
    """With every operator spike-equivalent, what remains at T is the sites' T-step quantisation (and transients)."""
    model = tiny_vit(layers=1)
    calibrated, config = _calibrated(model, timesteps=32)
    snn = convert(calibrated, config)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        simulated = snn(x, 128).mean(0)
        ideal = rate_code_ann(calibrated, 128, config)(x)
        ann = model(x)
    assert float((simulated - ideal).abs().mean()) < 0.5 * float((simulated - ann).abs().mean()) + 0.02 * float(ann.abs().mean())


def test_time_chunks_give_the_same_readout():
    model = tiny_vit(layers=1)
    calibrated, config = _calibrated(model, timesteps=8)
    whole = convert(calibrated, config)
    chunked = convert(calibrated, ConvertConfig(timesteps=8, time_chunk=3))
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(chunked(x, 8), whole(x, 8), rtol=1e-5, atol=1e-5)


def test_functional_attention_with_shape_arithmetic_converts_and_converges():
    model = _Functional().eval()
    data = [torch.randn(64, 4, 2, 2, generator=torch.Generator().manual_seed(5))]
    snn = spikeconv.convert(model, data, method="rate", timesteps=64)
    x = torch.randn(8, 4, 2, 2, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ann, cumulative = model(x), snn(x, 256).cumsum(0)
    error = lambda t: float((cumulative[t - 1] / t - ann).abs().mean())  # noqa: E731
    assert error(256) < error(8) and error(256) < 0.1 * float(ann.abs().mean())


def test_the_users_vit_is_untouched():
    model = tiny_vit(layers=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spikeconv.convert(model, [torch.randn(8, 1, 8, 8)], method="calibrated", timesteps=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training


@pytest.mark.parametrize("method", ["calibrated", "qcfs"])
def test_methods_that_need_relu_features_say_so_or_convert(method):
    model = tiny_vit(layers=1)
    if method == "qcfs":  # the learned rule needs QCFS activations, which a GELU ViT does not have
        with pytest.raises(spikeconv.SpikeconvError, match="learned"):
            spikeconv.convert(model, [torch.randn(8, 1, 8, 8)], method=method, timesteps=4)
    else:
        assert spikeconv.convert(model, [torch.randn(8, 1, 8, 8)], method=method, timesteps=4).timesteps == 4
