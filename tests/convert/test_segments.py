"""SegmentRunner: a converted network run segment by segment gives its whole forward's values, and the
corrections measured by continuing from each site equal those measured from the input again for every site."""

from __future__ import annotations

import torch

from spikeconv.calibration import CalibrationConfig, MseThreshold, calibrate, plan_of, prepare
from spikeconv.convert import ConvertConfig, CorrectionConfig, convert, correct
from spikeconv.convert.segments import SegmentRunner
from spikeconv.data import Split, load_dataset
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model
from spikeconv.runtime.memory import MemoryBudget


def _digits(count: int = 64) -> torch.Tensor:
    data = load_dataset("digits", split=Split.TRAIN, limit=count)
    return torch.stack([data[i][0] for i in range(count)])


def _calibrated():
    torch.manual_seed(0)
    model = build_model("resnet20", input_shape=(1, 8, 8), num_classes=10).eval()  # residual joins: frontiers of two values
    return calibrate(prepare(ingest_module(model), CalibrationConfig(default=MseThreshold(timesteps=3))), [_digits()])


def test_segments_continue_to_the_values_of_a_whole_forward():
    calibrated = _calibrated()
    snn = convert(calibrated, ConvertConfig()).eval()
    x = _digits(16)
    sites = {str(n.target): n for n in snn.body.graph.nodes if n.op == "call_module" and str(n.target) in plan_of(calibrated).sites}
    seen = {}
    handles = [snn.body.get_submodule(s).register_forward_hook(lambda _m, _a, out, s=s: seen.__setitem__(s, out.clone())) for s in sites]
    with torch.no_grad():
        snn(x, 3)
    for handle in handles:
        handle.remove()
    runner = SegmentRunner(snn.body, lambda batch: (batch, 3), limit=1 << 30)
    with torch.no_grad():
        for name in plan_of(calibrated).sites:  # in graph order: each call continues where the last paused
            env = runner.advance(0, x, sites[name])
            assert runner.kept and torch.equal(runner.value(sites[name], env), seen[name])
    assert runner.frontier_bytes(x[:1], list(sites.values())) > 0


def test_kept_frontiers_and_runs_from_the_input_give_the_same_corrections(monkeypatch):
    calibrated = _calibrated()
    config = CorrectionConfig(timesteps=3, max_samples=64)
    budget = MemoryBudget(limit=1 << 30)
    kept = plan_of(correct(calibrated, [_digits()], config, memory=budget)).corrections
    monkeypatch.setattr(SegmentRunner, "frontier_bytes", lambda self, x, stops: 1 << 40)  # too large to keep
    again = plan_of(correct(calibrated, [_digits()], config, memory=budget)).corrections
    assert kept == again and len(kept) == len(plan_of(calibrated).sites)
