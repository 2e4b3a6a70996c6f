"""Hybrid fine-tunes signed conversions: a calibrated + per-channel + signed digits SNN trains and stays signed."""

from __future__ import annotations

import torch
from torch import nn

from spikeconv.calibration import calibrate, prepare
from spikeconv.convert import ConvertConfig, convert, correct
from spikeconv.convert.methods import MethodOverrides, method_settings
from spikeconv.data import Split, dataset_info, load_dataset
from spikeconv.ingest import ingest_module
from spikeconv.models import build_from_notation
from spikeconv.neurons import IFNeuron, SinCorrection
from spikeconv.training import FinetuneBudget, SnnLoss, finetune_converted, readout_loss

T = 2



def _digits_ann(x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """A small conv net trained for a few seconds on digits (about 95 % on its training samples)."""
    info = dataset_info("digits")
    torch.manual_seed(0)
    model = build_from_notation("8C3p1-P2-16C3p1-P2-32", input_shape=(1, 8, 8), num_classes=10, mean=info.mean, std=info.std)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64]).backward()
            optimizer.step()
    return model.eval()


def _loss(snn, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(readout_loss(snn(x, T), y, SnnLoss.CROSS_ENTROPY))


def test_a_short_fine_tune_of_a_signed_per_channel_conversion_lowers_the_training_loss():
    train = load_dataset("digits", split=Split.TRAIN)
    x, y = train.as_tensors()
    settings = method_settings("calibrated", ConvertConfig(), target_timesteps=T, correction_samples=128,
                               overrides=MethodOverrides(per_channel=True, sin_correction=SinCorrection.SIGNED))  # fmt: skip
    graph = ingest_module(_digits_ann(x, y))
    batches = [x[:256]]
    calibrated = correct(calibrate(prepare(graph, settings.calibration), batches), batches, settings.correction, settings.convert)
    snn = convert(calibrated, settings.convert).eval()
    assert all(n.sin_correction is SinCorrection.SIGNED and n.threshold.numel() > 1 for _, n in snn.neurons())
    seen = x[:512], y[:512]
    before = _loss(snn, *seen)
    trained, record = finetune_converted(snn, train, timesteps=T, budget=FinetuneBudget(epochs=1, samples=512, lr=1e-3))
    assert _loss(trained, *seen) < before - 0.05  # the loss on the samples it trained on went down
    assert _loss(snn, *seen) == before  # the converted network is left untouched
    assert record["neurons"] == [name for name, _ in snn.neurons()]
    assert all(type(n) is IFNeuron and n.sin_correction is SinCorrection.SIGNED for _, n in trained.neurons())
    with torch.no_grad():
        assert (trained(x[:64], T) != 0).any()
