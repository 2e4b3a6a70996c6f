"""Low-latency conversion: QCFS exactness, MMSE thresholds, burst spikes, bias/potential corrections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikeconv.calibration import (
    CalibrationConfig,
    LearnedThreshold,
    MseObserver,
    MseThreshold,
    ThresholdPlan,
    attach_plan,
    calibrate,
    plan_of,
    prepare,
)
from spikeconv.convert import ConvertConfig, Correction, CorrectionConfig, convert, correct
from spikeconv.errors import ConfigError
from spikeconv.ingest import activation_sites, ingest_module
from spikeconv.neurons import IFNeuron
from spikeconv.neurons.qcfs import QCFS


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_qcfs_network_converts_exactly_at_t_equal_l(levels):
    torch.manual_seed(levels)
    model = nn.Sequential(nn.Linear(6, 16), QCFS(levels, init_threshold=1.5), nn.Linear(16, 4)).eval()
    x = torch.randn(64, 6)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=LearnedThreshold())), [x])
    assert plan_of(calibrated).thresholds[activation_sites(calibrated)[0]] == pytest.approx((1.5,))
    snn = convert(calibrated, ConvertConfig(v_init=0.5))
    with torch.no_grad():
        rate = snn(x, levels).mean(0)
        torch.testing.assert_close(rate, model(x), rtol=0, atol=1e-5)


def test_learned_rule_on_a_plain_relu_is_a_config_error():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ConfigError, match="learned"):
        prepare(ingest_module(model), CalibrationConfig(default=LearnedThreshold()))


def _brute_force_mse(values: np.ndarray, steps: int, shift: float) -> float:
    top = values.max()
    best, best_err = top, np.inf
    for i in range(95):
        theta = top * (1 - 0.01 * i)
        q = theta / steps * np.clip(np.floor(values * steps / theta + shift), 0, steps)
        err = ((q - values) ** 2).sum()
        if err < best_err:
            best, best_err = theta, err
    return best


@pytest.mark.parametrize("steps", [2, 4, 16])
def test_mse_threshold_matches_brute_force_search(steps):
    values = (torch.randn(20000, generator=torch.Generator().manual_seed(steps)).relu() ** 1.5).numpy()
    observer = MseObserver(steps)
    observer(torch.from_numpy(values))
    expected = _brute_force_mse(values, steps, 0.5)
    assert observer.compute().item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(("steps", "shift", "per_channel"), [(1, 0.5, False), (4, 0.5, True), (7, 0.0, True), (64, 0.5, True)])
def test_mse_search_by_prefix_sums_picks_the_threshold_of_the_pass_over_every_bin(steps, shift, per_channel, monkeypatch):
    """The fast search (prefix sums + bisection, in channel blocks) and the definition agree channel by channel."""
    import spikeconv.calibration.observers as observers

    monkeypatch.setattr(observers, "SEARCH_ELEMENTS", 95 * (steps + 2) * 3)  # blocks of 3 channels: the blocking is exercised
    g = torch.Generator().manual_seed(steps)
    scales = torch.tensor([0.5, 1.0, 3.0, 0.0, 2.0, 0.1, 1.5])[None, :, None, None]  # one channel never fires
    values = (torch.randn(64, 7, 6, 6, generator=g).relu() ** 1.5) * scales
    observer = MseObserver(steps, per_channel=per_channel, shift=shift)
    observer(values)
    fast, reference = observer._compute(), observer.reference_compute()
    assert torch.equal(fast, reference) and (not per_channel or fast[3] == 0 and bool((fast[scales.flatten() > 0] > 0).all()))


def test_mse_search_of_channels_that_never_fired_is_zero():
    observer = MseObserver(4, per_channel=True)
    observer(torch.zeros(8, 3, 4, 4))  # nothing above 0 anywhere: empty histograms of zero width
    assert torch.equal(observer._compute(), torch.zeros(3)) and torch.equal(observer.reference_compute(), torch.zeros(3))


def test_mse_threshold_grows_with_timesteps():
    values = torch.randn(20000, generator=torch.Generator().manual_seed(0)).relu() ** 2
    chosen = []
    for steps in (2, 8, 64):
        observer = MseObserver(steps)
        observer(values)
        chosen.append(observer.compute().item())
    assert chosen[0] < chosen[1] < chosen[2] <= values.max().item()


def test_burst_neuron_emits_up_to_gamma_spikes_and_conserves_charge():
    neuron = IFNeuron(1.0, v_init=0.0, max_spikes=3)
    x = torch.tensor([[2.5], [0.2], [7.0], [0.0]])  # four steps, one neuron
    out = neuron(x, 4).flatten()
    assert out.tolist() == [2.0, 0.0, 3.0, 3.0]  # 0.5 carried, 0.7 -> 7.7 capped at 3, 4.7 left -> 3
    assert out.sum().item() + neuron._v.item() == pytest.approx(x.sum().item())
    with pytest.raises(ConfigError):
        IFNeuron(1.0, max_spikes=0)


def _random_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 5))  # fmt: skip
    return model.eval()


def _site_errors(calibrated, snn, x, steps):
    target = {}
    hooks = [calibrated.get_submodule(s).register_forward_hook(lambda _m, _a, o, s=s: target.__setitem__(s, o))
             for s in activation_sites(calibrated)]  # fmt: skip
    rates = {}
    hooks += [snn.body.get_submodule(s).register_forward_hook(lambda _m, _a, o, s=s: rates.__setitem__(s, o))
              for s in activation_sites(calibrated)]  # fmt: skip
    with torch.no_grad():
        calibrated(x)
        snn(x, steps)
    for h in hooks:
        h.remove()
    # The systematic part of the rate error: the per-neuron mean over samples of (SNN rate − ANN),
    # which is what the corrections cancel (per-sample quantization noise remains).
    return {s: (rates[s].reshape(steps, x.shape[0], *rates[s].shape[1:]).mean(0) - target[s]).mean(0).abs().mean().item()
            for s in target}  # fmt: skip


@pytest.mark.parametrize("kind", [Correction.POTENTIAL, Correction.BIAS])
def test_corrections_bring_layer_rates_closer_to_the_ann_on_held_out_data(kind):
    model = _random_net(0)
    gen = torch.Generator().manual_seed(1)
    calib, held_out = torch.rand(256, 1, 8, 8, generator=gen), torch.rand(128, 1, 8, 8, generator=gen)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MseThreshold(4))), [calib])
    corrected = correct(calibrated, [calib], CorrectionConfig(kind, timesteps=4))
    before = _site_errors(calibrated, convert(calibrated), held_out, 4)
    after = _site_errors(corrected, convert(corrected), held_out, 4)
    assert sum(after.values()) < 0.7 * sum(before.values()), (before, after)
    assert after[activation_sites(calibrated)[-1]] < before[activation_sites(calibrated)[-1]]
    assert plan_of(calibrated).corrections == {}  # the input graph is untouched


def test_corrections_replay_exactly_from_the_plan_json(tmp_path):
    model = _random_net(2)
    calib = torch.rand(64, 1, 8, 8)
    corrected = correct(calibrate(prepare(ingest_module(model)), [calib]), [calib], CorrectionConfig(timesteps=4))
    plan = plan_of(corrected)
    assert plan.extra["correction"] == {"kind": "potential", "timesteps": 4, "max_samples": 512}
    plan.save(tmp_path / "plan.json")
    replayed = convert(attach_plan(prepare(ingest_module(model)), ThresholdPlan.load(tmp_path / "plan.json")))
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(replayed(x, 6), convert(corrected)(x, 6))
