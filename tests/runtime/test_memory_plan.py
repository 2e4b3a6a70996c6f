"""The memory planner every stage uses: measured costs, batch plans, one-line refusals, and stages that keep to them.

Each stage is run twice on real data (scikit-learn digits): once with room for everything, once with a budget
that only a few samples fit, and the two results are compared. Calibration gives the same thresholds; the
corrections and the training micro-batches agree up to the rounding of a layer's sums over another batch size.
"""

from __future__ import annotations

import copy
import logging
import sys

import pytest
import torch

import spikeconv
from spikeconv.calibration import CalibrationConfig, MseThreshold, calibrate, plan_of, prepare
from spikeconv.convert import Correction, CorrectionConfig, correct
from spikeconv.convert import corrections as corrections_module
from spikeconv.data import Split, load_dataset
from spikeconv.errors import ConfigError
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model
from spikeconv.runtime import memory
from spikeconv.runtime.memory import BatchCost, MemoryBudget, measure_batch_cost, plan_batch, rebatch, stage

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    data = load_dataset("digits", split=Split.TRAIN, limit=96)
    return torch.stack([data[i][0] for i in range(len(data))])


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()


def test_the_measured_cost_grows_with_the_samples_and_bounds_what_a_batch_allocates():
    layer = torch.nn.Conv2d(1, 8, 3, padding=1)
    cost = measure_batch_cost(lambda x: layer(x).relu(), torch.rand(1, *SHAPE))
    assert cost.per_sample >= 8 * 64 * 4  # at least the conv output of one sample (float32)
    total, _ = memory.allocated_bytes(lambda: layer(torch.rand(10, *SHAPE)).relu())
    assert total <= cost.bytes_for(10) + 10 * 64 * 4  # the probe's plan covers a real batch (its input aside)


def test_the_plan_is_the_largest_batch_that_fits_and_refuses_in_one_line():
    cost = BatchCost(fixed=1000, per_sample=1 << 20)
    room = memory.RESERVE + 1000 + 37 * (1 << 20)
    assert plan_batch(cost, wanted=100, room=room, source="test", what="x") == 37
    assert plan_batch(cost, wanted=5, room=room, source="test", what="x") == 5
    with pytest.raises(ConfigError) as caught:
        plan_batch(cost, wanted=100, room=memory.RESERVE, source="a test budget", what="calibration")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("calibration needs") and "a test budget" in message
    assert "raise SPIKECONV_MEMORY_BUDGET" in message


@pytest.mark.parametrize(("num_bytes", "text"), [(512, "512 B"), (1.5 * 2**30, "1.5 GiB"), (300 * 2**20, "300 MiB"),
                                                  (1010 * 2**20, "1010 MiB"), (1023.9 * 2**20, "1024 MiB")])  # fmt: skip
def test_sizes_are_written_without_exponents(num_bytes, text):
    """bench/scale.py and users read the stage lines: ``1e+03 MiB`` (1000-1023 MiB under .3g) broke both."""
    assert memory.size_text(num_bytes) == text


def test_rebatch_keeps_samples_and_order():
    batches = [(torch.arange(10), torch.arange(10) * 2), (torch.arange(3), torch.arange(3))]
    parts = list(rebatch(batches, 4))
    assert [len(p[0]) for p in parts] == [4, 4, 2, 3]
    assert torch.equal(torch.cat([p[1] for p in parts[:3]]), torch.arange(10) * 2)


def _tight(cost_run, example: torch.Tensor, samples: int) -> MemoryBudget:
    """A budget in which about ``samples`` samples of ``cost_run`` fit."""
    cost = measure_batch_cost(cost_run, example)
    return MemoryBudget(limit=memory.RESERVE + cost.fixed + samples * cost.per_sample)


def test_calibration_in_planned_parts_gives_the_same_plan(digits, monkeypatch):
    prepared = prepare(ingest_module(_model()), CalibrationConfig(default=MseThreshold(timesteps=4)))
    whole = calibrate(prepared, [digits])
    probe = copy.deepcopy(prepared).eval()
    first_sight, _ = memory.allocated_bytes(lambda: probe(digits[:1]))  # the observers' statistics, as the plan counts them
    cost = measure_batch_cost(probe, digits[:1])
    budget = MemoryBudget(limit=memory.RESERVE + first_sight + cost.fixed + 7 * cost.per_sample)  # parts of about 7 samples
    prepare_module = sys.modules["spikeconv.calibration.prepare"]  # (the package re-exports a function of that name)
    calls = []
    run = prepare_module._run
    monkeypatch.setattr(prepare_module, "_run", lambda gm, x: calls.append(x.shape[0]) or run(gm, x))
    parts = calibrate(prepared, [digits], memory=budget)
    assert plan_of(parts).thresholds == plan_of(whole).thresholds
    runs = [n for n in calls if n not in (1, 2)]  # the plan's probes run one and two samples
    assert sum(runs) == 96 and 1 < len(runs) and max(runs) <= 10
    with pytest.raises(ConfigError, match="calibration needs"):
        calibrate(prepared, [digits], memory=MemoryBudget(limit=1))


@pytest.mark.parametrize("per_channel", [False, True])
def test_the_calibration_plan_counts_each_sample_and_the_statistics_observers_keep(digits, per_channel, monkeypatch):
    """Observers allocate their histograms on the first batch they see; a probe that met them there read a negative
    cost per sample for per-channel statistics (1 byte per sample: a 224x224 ResNet-18 peaked at 6.8 GiB in 4 GiB)."""
    prepared = prepare(ingest_module(_model()), CalibrationConfig(default=MseThreshold(timesteps=4, per_channel=per_channel)))
    prepare_module = sys.modules["spikeconv.calibration.prepare"]
    seen = {}
    monkeypatch.setattr(prepare_module, "plan_batch", lambda cost, **kw: seen.update(cost=cost, held=kw["held"]) or 8)
    prepare_module.planned_batch(prepared, digits, MemoryBudget())
    activations = sum(m.out_channels * 8 * 8 for m in _model().modules() if isinstance(m, torch.nn.Conv2d))
    assert seen["cost"].per_sample >= 4 * activations  # at least the float32 activations of the convolutions
    assert seen["held"] >= 4096 * 8  # the int64 histograms (sites or channels x 4,096 bins) are held, not per sample


@pytest.mark.parametrize("kind", [Correction.POTENTIAL, Correction.BIAS])
def test_corrections_in_planned_batches_equal_one_batch(digits, kind, monkeypatch):
    calibrated = calibrate(prepare(ingest_module(_model()), CalibrationConfig(default=MseThreshold(timesteps=4))), [digits])
    config = CorrectionConfig(kind, timesteps=4, max_samples=96)
    whole = plan_of(correct(calibrated, [digits], config))
    sizes = []
    monkeypatch.setattr(corrections_module, "plan_batch", lambda *a, **k: sizes.append(plan_batch(*a, **k)) or sizes[-1])
    batched = plan_of(correct(calibrated, [digits[i : i + 32] for i in range(0, 96, 32)], config,
                              memory=MemoryBudget(limit=memory.RESERVE + corrections_module.EXACT_BYTES + (1 << 20))))  # fmt: skip
    assert sizes and sizes[-1] < 32  # every site ran in several batches
    monkeypatch.setattr(corrections_module, "EXACT_BYTES", 0)  # every batch streamed into float64 sums
    streamed = plan_of(correct(calibrated, [digits], config))
    key = "v_offset" if kind is Correction.POTENTIAL else "bias"
    for site, record in whole.corrections.items():  # a linear layer's sums round differently with the batch size
        expected = torch.tensor(record[key])
        for other in (batched, streamed):
            torch.testing.assert_close(torch.tensor(other.corrections[site][key]), expected, rtol=1e-4, atol=1e-6)


def test_corrections_refuse_batches_that_change_between_passes(digits):
    calibrated = calibrate(prepare(ingest_module(_model())), [digits])

    class Shuffled:
        def __iter__(self):
            yield digits[torch.randperm(96)]

    with pytest.raises(spikeconv.CalibrationError, match="changed between passes"):
        correct(calibrated, Shuffled(), CorrectionConfig(timesteps=2, max_samples=96))


def test_a_training_batch_too_large_for_the_budget_runs_as_micro_batches_with_the_same_gradient(digits):
    from spikeconv.neurons import trainable_neuron_config
    from spikeconv.training.snn.losses import mean_readout_cross_entropy
    from spikeconv.training.snn.micro_batches import micro_batches, planned_micro_batch
    from spikeconv.training.snn.spikify import spikify

    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=SHAPE, num_classes=10, batch_norm=False)
    snn = spikify(model, trainable_neuron_config("srif", mpr=True), timesteps=2).train()
    labels = torch.arange(32) % 10
    whole = copy.deepcopy(snn)
    mean_readout_cross_entropy(whole(digits[:32], 2), labels).backward()
    size = planned_micro_batch(snn, (digits[:1], labels[:1]), 2, 32, mean_readout_cross_entropy,
                               MemoryBudget(limit=memory.RESERVE + (3 << 20)))  # fmt: skip
    assert 1 <= size < 32
    for images, part_labels, weight in micro_batches(snn, digits[:32], labels, size):
        (mean_readout_cross_entropy(snn(images, 2), part_labels) * weight).backward()
    for a, b in zip(whole.parameters(), snn.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6)


def test_stages_log_wall_time_and_peak_memory_when_asked(caplog):
    logger = logging.getLogger("spikeconv")
    with caplog.at_level(logging.INFO, logger="spikeconv"), stage("calibrate"):
        torch.ones(1 << 20).sum()
    assert logger.name == "spikeconv"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage calibrate:")]
    assert len(lines) == 1 and "peak resident memory" in lines[0] and " s, " in lines[0]
