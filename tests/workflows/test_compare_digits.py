"""``spikeconv compare`` end to end on scikit-learn digits: report, agreement with ``curve``, resuming, bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from spikeconv.cli import main
from spikeconv.workflows import CurveJob, DataSource, compare_job, compare_job_from_options, curve_job
from spikeconv.workflows.compare import job as compare_module
from spikeconv.workflows.compare import models as compare_models

SETTINGS = {"arch": "digits-cnn", "methods": "ann,calibrated,srif-mpr,mtlif", "timesteps": "1,2,4", "epochs": ("1",),
            "limit": 100, "train_limit": 256, "calib_samples": 256}  # fmt: skip
ARGS = ["compare", "--arch", "digits-cnn", "--dataset", "digits", "--methods", SETTINGS["methods"], "--timesteps", "1,2,4",
        "--epochs", "1", "--limit", "100", "--train-limit", "256", "--calib-samples", "256"]  # fmt: skip


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """One small comparison made by the CLI (about 5 s); tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("compare") / "report"
    assert main([*ARGS, "--out-dir", str(out)]) == 0
    return out


def _job(out: Path, **changes):
    return compare_job_from_options(data=DataSource("digits"), out_dir=out, **{**SETTINGS, **changes})


def _forbid(monkeypatch, *names):
    def refuse(*args, **kwargs):
        raise AssertionError("this work should have been skipped")

    for module, name in names:
        monkeypatch.setattr(module, name, refuse)


def test_report_holds_every_number_and_file(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    assert [m["method"] for m in report["models"]] == ["ann", "calibrated", "srif-mpr", "mtlif"]
    meta = report["meta"]
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data_sha256"]) and meta["samples"] == 100 and meta["seed"] == 0
    assert set(meta["versions"]) == {"spikeconv", "torch", "python"} and meta["command"].startswith("spikeconv")
    assert report["energy_model"]["formula"] == "E = 0.9 pJ × AC + 4.6 pJ × MAC"
    ann = report["models"][0]
    for model in report["models"][1:]:
        assert [p["timesteps"] for p in model["points"]] == [1, 2, 4]
        for point in model["points"]:
            assert point["energy_pj"] == pytest.approx(0.9 * point["ac"] + 4.6 * point["mac"])
            assert set(point["spike_rates"]) == {"relu1", "relu2", "relu3"} and point["mac"] > 0
        assert model["points"][0]["ac"] < model["points"][-1]["ac"]  # cumulative over steps
    assert report["models"][1]["ann_accuracy"] == ann["points"][0]["accuracy"]  # same samples, same pass
    assert report["models"][2]["model"]["train_timesteps"] == 4 and report["models"][3]["model"]["train_timesteps"] == 2
    for name in ("report.md", "accuracy.png", "spike_rates.png", "energy_accuracy.png", "results/mtlif.json"):
        assert (report_dir / name).stat().st_size > 100, name
    text = (report_dir / "report.md").read_text()
    assert "| ANN |" in text and "E = 0.9 pJ × AC + 4.6 pJ × MAC" in text and "spikeconv curve" in text


@pytest.mark.parametrize("method", ["calibrated", "srif-mpr"])
def test_accuracies_agree_with_the_curve_command(report_dir, method):
    model = next(m for m in json.loads((report_dir / "report.json").read_text())["models"] if m["method"] == method)
    curve = curve_job(CurveJob(snn=Path(model["model"]["path"]), timesteps=4, data=DataSource("digits"), limit=100),
                      progress=False)  # fmt: skip
    assert [p["accuracy"] for p in model["points"]] == [curve.accuracy_at(t) for t in (1, 2, 4)]


def test_rerun_reuses_every_finished_model(report_dir, monkeypatch):
    stamps = {p: p.stat().st_mtime_ns for p in (report_dir / "results").iterdir()}
    _forbid(monkeypatch, (compare_models, "train_ann_job"), (compare_models, "train_snn_job"), (compare_models, "convert_job"),
            (compare_module, "counted_curve"), (compare_module, "ann_accuracy"))  # fmt: skip
    lines: list[str] = []
    result = compare_job(_job(report_dir), progress=False, on_model=lines.append)
    assert set(result.status.values()) == {"reused"} and len(lines) == 4 and all("(reused)" in line for line in lines)
    assert {p: p.stat().st_mtime_ns for p in (report_dir / "results").iterdir()} == stamps


def test_interrupted_run_redoes_only_the_missing_model_and_fresh_keeps_trained_networks(report_dir, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(report_dir, out)
    (out / "results" / "mtlif.json").unlink()  # as if interrupted before mtlif finished
    _forbid(monkeypatch, (compare_models, "train_ann_job"), (compare_models, "convert_job"))
    result = compare_job(_job(out), progress=False)
    assert result.status == {"ann": "reused", "calibrated": "reused", "srif-mpr": "reused", "mtlif": "cached"}
    assert (out / "results" / "mtlif.json").is_file()
    again = compare_job(_job(out, resume=False, e_ac=0.0), progress=False)
    assert again.status == {"ann": "cached", "calibrated": "cached", "srif-mpr": "cached", "mtlif": "cached"}
    assert all(p["energy_pj"] == pytest.approx(4.6 * p["mac"]) for m in again.report["models"] for p in m["points"])


def test_time_chunks_bound_memory_without_changing_any_number(report_dir, tmp_path):
    out = tmp_path / "chunked"
    shutil.copytree(report_dir, out)
    chunked = compare_job(_job(out, resume=False, time_chunk=3), progress=False).report  # T = 4 as 3 + 1 steps
    whole = json.loads((report_dir / "report.json").read_text())
    for a, b in zip(whole["models"][1:], chunked["models"][1:], strict=True):
        for p, q in zip(a["points"], b["points"], strict=True):
            assert q["accuracy"] == p["accuracy"] and q["ac"] == pytest.approx(p["ac"], rel=1e-6), (a["method"], p, q)
            assert q["spike_rates"] == pytest.approx(p["spike_rates"], rel=1e-6)


def _cache_file(report_dir: Path, method: str) -> str:
    models = json.loads((report_dir / "report.json").read_text())["models"]
    return next(m["model"]["path"] for m in models if m["method"] == method)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "ann,nonsense"], "unknown method 'nonsense'; choose from ann, rate"),
        (["--timesteps", "0,2"], "timestep"),
        (["--timesteps", ","], "--timesteps is empty"),
        (["--methods", "ann", "--checkpoint", "mtlif={tmp}/x.pt"], "not among the compared methods"),
        (["--epochs", "nonsense=3"], "unknown method"),
        (["--train-timesteps", "calibrated=3"], "does not apply"),
        (["--methods", "ann", "--checkpoint", "ann={tmp}/missing.pt"], "no such file"),
        (["--methods", "ann", "--arch", "mlp", "--checkpoint", "ann={ann}"], "does not have the layers of --arch mlp"),
        (["--methods", "mtlif", "--checkpoint", "mtlif={srif}"], "not mtlif"),
        (["--methods", "srif-mpr", "--checkpoint", "srif-mpr={snn}"], "converted SNN"),
        (["--methods", "ann", "--checkpoint", "ann={snn}"], "SNN|spikeconv-snn"),  # an SNN file is not an ANN
    ],
)
def test_bad_input_is_one_line_and_exit_2(report_dir, tmp_path, capsys, extra, message):
    files = {"tmp": tmp_path, "ann": _cache_file(report_dir, "ann"), "srif": _cache_file(report_dir, "srif-mpr"),
             "snn": _cache_file(report_dir, "calibrated")}  # fmt: skip
    capsys.readouterr()
    code = main([*ARGS, *[a.format(**files) for a in extra], "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_compare_has_help(capsys):
    assert main(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--checkpoint" in out and "--e-mac" in out and "--resume / --fresh" in out
