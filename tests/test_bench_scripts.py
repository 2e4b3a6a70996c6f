"""The bench scripts behind docs/benchmarks*.md still run, on a tiny budget, and write what the docs cite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_random_net_agreement_reports_the_snn_and_its_ideal_code(tmp_path):
    out = tmp_path / "agreement.json"
    _run("random_net_agreement.py", "--nets", "resnet20", "--probes", "8", "--calib", "16", "--batch", "8", "--steps", "2,8",
         "--threads", "1", "--sin-correction", "signed", "--threshold", "mse8", "--out", str(out))  # fmt: skip
    (result,) = json.loads(out.read_text())["results"]
    assert result["net"] == "resnet20" and set(result["by_T"]) == {"2", "8"}
    for row in result["by_T"].values():
        assert {"cos", "top1", "cos_dev"} <= set(row) and {"cos", "top1", "cos_dev"} <= set(row["rate_code"])
        assert -1.0 <= row["cos"] <= 1.0 and 0.0 <= row["rate_code"]["top1"] <= 1.0


def test_rate_code_diagnosis_ranks_every_site(tmp_path):
    out = tmp_path / "diagnosis.json"
    _run("rate_code_diagnosis.py", "--net", "resnet20", "--probes", "8", "--calib", "16", "--steps", "16", "--scales", "1.0,2.0",
         "--out", str(out))  # fmt: skip
    record = json.loads(out.read_text())
    assert len(record["per_site_relative_error"]) == 19  # ResNet20: stem + 9 blocks x 2 ReLUs
    assert all(value >= 0.0 for value in record["per_site_relative_error"].values())
    assert set(record["scale"]) == {"1.0", "2.0"} and record["scale"]["1.0"] == record["rate_code"]  # scale 1 is the plain code
    assert record["clip_only"]["cos"] > 0.99  # a 2^20-step code is the clipped ANN itself


def test_gpu_bench_smoke_run_on_the_cpu(tmp_path):
    """bench/gpu_bench.py (run on CUDA by bench/gpu_check.sh) works end to end; tiny sizes, no figures."""
    out = tmp_path / "gpu.json"
    _run("gpu_bench.py", "--device", "cpu", "--quick", "--nets", "fmnist-cnn", "--out", str(out))
    row = json.loads(out.read_text())["results"]["fmnist-cnn"]
    assert row["sim_img_per_s_T2"] > 0 and row["train_snn_T4"]["img_per_s"] > 0


def test_gpu_check_script_parses():
    done = subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_scale_measures_every_stage_of_a_small_conversion_and_its_curve(tmp_path):
    out = tmp_path / "scale.json"
    _run("scale.py", "--archs", "resnet18", "--sizes", "32", "--samples", "16", "--correction-samples", "4", "--curve-batch", "4",
         "--json", str(out))  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [row["kind"] for row in rows] == ["convert", "curve"] and all(row["exit"] == 0 for row in rows)
    stages = {s["stage"] for s in rows[0]["stages"]}
    assert {"calibrate", "convert", "write"} <= stages and any(s.startswith("potential correction at T = ") for s in stages)
    assert all(row["peak_rss_gib"] > 0 and row["wall_s"] > 0 for row in rows)


def test_vit_cost_times_a_converted_vit_and_counts_its_operators_as_macs(tmp_path):
    """bench/vit_cost.py on a one-block torchvision ViT converted by the CLI (docs/benchmarks.md, "Vision Transformers")."""
    import torch

    sys.path.insert(0, str(BENCH))
    from vit_train import build

    torch.manual_seed(0)
    model = build(patch=7, layers=1, hidden=16, heads=2, mlp=32).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 28, 28),)), tmp_path / "vit.pt2")
    done = subprocess.run([sys.executable, "-m", "spikeconv", "convert", str(tmp_path / "vit.pt2"), "--method", "calibrated",
                           "--target-timesteps", "2", "--calib-samples", "64", "--correction-samples", "16",
                           "--mean", "0.2860", "--std", "0.3530", "--out", str(tmp_path / "vit.snn.pt")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "cost.json"
    _run("vit_cost.py", str(tmp_path / "vit.snn.pt"), "--timesteps", "2", "--images", "8", "--batch", "4", "--repeats", "1",
         "--json", str(out))  # fmt: skip
    record = json.loads(out.read_text())
    assert record["ratio_to_T_ann_forwards"] > 0 and 0 < record["mac_share_of_operations"] < 1
    kinds = record["snn_by_kind"]
    assert {"layer_norm", "gelu", "softmax", "product"} <= set(kinds)
    assert all(kinds[k]["mac"] > 0 for k in ("layer_norm", "gelu", "softmax", "product"))  # dense work every step, counted
    assert kinds["linear"]["mac"] == 0 and kinds["linear"]["ac"] > 0  # the linear layers run on spikes
    assert record["energy_uj"]["snn_static_once"] < record["energy_uj"]["snn"]


def test_validation_vs_test_scores_counted_and_expected_drops_on_three_image_sets(tmp_path):
    import pytest

    from spikeconv.cli import main
    from spikeconv.data import Split, load_dataset
    from spikeconv.errors import DatasetNotFoundError

    try:
        load_dataset("fashion-mnist", split=Split.TEST, limit=1)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not installed on this machine")
    shipped = Path(__file__).resolve().parents[1] / "spikeconv" / "models" / "pretrained" / "fmnist-cnn.pt"
    snn, out = tmp_path / "cal.snn.pt", tmp_path / "vvt.json"
    assert main(["convert", str(shipped), "--method", "calibrated", "--target-timesteps", "4", "--calib-samples", "256",
                 "--out", str(snn)]) == 0  # fmt: skip
    _run("validation_vs_test.py", str(snn), "--timesteps", "2,4", "--limit", "200", "--json", str(out))
    record = json.loads(out.read_text())
    assert [row["timesteps"] for row in record["rows"]] == [2, 4] and record["inverse_temperature"] > 0
    for row in record["rows"]:
        for name in ("validation", "other_training", "test"):
            cell = row[name]
            assert {"drop", "drop_se", "expected_drop", "expected_se", "changed"} <= set(cell)
            assert -100 <= cell["drop"] <= 100 and 0 <= cell["changed"] <= 100 and cell["expected_se"] >= 0
