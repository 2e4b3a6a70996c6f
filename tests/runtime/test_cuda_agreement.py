"""CPU and CUDA agree: the same SNN's curve to 0.1 points and its readouts to 1e-4 relative, and a conversion on
CUDA gives the CPU's thresholds. Runs where torch sees a GPU (bench/gpu_check.sh); skipped with a reason elsewhere."""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.cli import main
from spikeconv.workflows import load_snn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run bench/gpu_check.sh on one)")
DIGITS = ["--dataset", "digits"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda")
    ann = folder / "ann.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "3", "--out", str(ann), "--device", "cpu"]) == 0
    snns = {}
    for device in ("cpu", "cuda"):
        snns[device] = folder / f"{device}.snn.pt"
        assert main(["convert", str(ann), *DIGITS, "--method", "calibrated", "--out", str(snns[device]), "--device", device]) == 0
    return folder, snns


def test_curves_agree_to_a_tenth_of_a_point(files):
    folder, snns = files
    curves = {}
    for device in ("cpu", "cuda"):
        path = folder / f"curve-{device}.json"
        assert main(["curve", str(snns["cpu"]), *DIGITS, "--timesteps", "32", "--json", str(path), "--device", device]) == 0
        curves[device] = json.loads(path.read_text())
    assert max(abs(a - b) for a, b in zip(curves["cpu"]["accuracy"], curves["cuda"]["accuracy"], strict=True)) <= 0.1
    assert abs(curves["cpu"]["ann_accuracy"] - curves["cuda"]["ann_accuracy"]) <= 0.1


def test_readouts_agree_to_1e4_relative(files):
    _, snns = files
    loaded = load_snn(snns["cpu"])
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cpu = loaded.snn.cpu()(x, 16).sum(0)
        cuda = loaded.snn.cuda()(x.cuda(), 16).sum(0).cpu()
    scale = cpu.abs().max().clamp_min(1e-12)
    assert float((cpu - cuda).abs().max() / scale) <= 1e-4


def test_conversion_on_cuda_gives_the_cpu_thresholds(files):
    _, snns = files
    plans = [load_snn(snns[d]).snn.metadata["plan"] for d in ("cpu", "cuda")]
    cpu, cuda = (json.dumps(p, sort_keys=True) for p in plans)
    thresholds = [{s: v for s, v in p["thresholds"].items()} for p in plans]
    for site, values in thresholds[0].items():
        other = thresholds[1][site]
        assert all(abs(a - b) <= 1e-4 * max(abs(a), 1e-6) for a, b in zip(values, other, strict=True)), (site, values, other)
    assert cpu.count("thresholds") == cuda.count("thresholds")


def test_counts_agree(files, tmp_path):
    folder, snns = files
    from spikeconv.data import Split, load_dataset
    from spikeconv.evaluation import count_operations, timestep_accuracy_curve

    test = load_dataset("digits", split=Split.TEST)
    totals = {}
    for device in ("cpu", "cuda"):
        loaded = load_snn(snns["cpu"])
        snn = loaded.snn.to(device)
        with count_operations(snn) as counter:
            timestep_accuracy_curve(snn, test, timesteps=8, device=device, progress=False)
        totals[device] = counter.result().totals(8)
    for key in ("spikes", "ac", "mac"):
        assert totals["cpu"][key] == pytest.approx(totals["cuda"][key], rel=1e-3), key
