"""`spikeconv info`: what an SNN file, a train-snn checkpoint or a model file holds, read without rebuilding or unpickling."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from spikeconv.cli import main
from spikeconv.errors import CheckpointError
from spikeconv.files import describe_file, format_description
from spikeconv.models import build_model
from spikeconv.training import save_ann_checkpoint

SHAPE = (1, 8, 8)


class Payload:
    """Unpickling this calls ``open(sentinel, "w")`` (tests/security/hostile_corpus.py's pattern): the file appears only if run."""

    def __init__(self, sentinel) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()


@pytest.fixture(scope="module")
def ann_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ann") / "ann.pt"
    save_ann_checkpoint(path, model=model, arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=None, std=None,
                        metadata={"test_accuracy": 91.25, "dataset": "digits"})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def snn_file(ann_file):
    out = ann_file.with_name("net.snn.pt")
    argv = [str(a) for a in ["convert", ann_file, "--dataset", "digits", "--calib-samples", 64, "--method", "calibrated",
                             "--timesteps", 12, "--out", out]]  # fmt: skip
    before, sys.argv = sys.argv, ["spikeconv", *argv]  # the command line the SNN file records
    try:
        assert main(argv) == 0
    finally:
        sys.argv = before
    return out


def test_snn_file_json_has_method_timesteps_and_one_threshold_record_per_site(snn_file, capsys):
    code, out, err = _run(["info", snn_file, "--json"], capsys)
    assert code == 0, err
    described = json.loads(out)
    payload = torch.load(snn_file, weights_only=True)
    assert described["format"] == "spikeconv-snn" and described["file"] == str(snn_file)
    assert described["method"] == "calibrated" and described["timesteps"] == 12
    sites = payload["plan"]["thresholds"]
    assert described["thresholds"]["sites"] == len(sites) == len(described["thresholds"]["per_site"])
    values = [v for vs in sites.values() for v in vs]
    assert described["thresholds"]["min"] == pytest.approx(min(values)) and described["thresholds"]["max"] == pytest.approx(max(values))
    assert described["thresholds"]["granularity"] == "per-layer" and described["thresholds"]["rules"] == {"mse": len(sites)}
    assert described["neuron"] == {"kind": "if", "reset": "subtract", "v_init": 0.5, "max_spikes": 1, "sin_correction": "none",
                                   "maxpool": "spiking", "encoding": "direct"}  # fmt: skip
    assert described["calibration"] == {"dataset": "digits", "split": "train", "samples": 64, "seed": 0}
    assert described["model"]["input_shape"] == list(SHAPE) and described["model"]["num_classes"] == 10
    assert described["ann"]["test_accuracy"] == 91.25
    provenance = described["provenance"]
    assert provenance["command"].startswith("spikeconv convert ") and "--method calibrated" in provenance["command"]
    assert provenance["spikeconv_version"] and provenance["created"].endswith("+00:00") and provenance["torch_version"]
    assert "auto" not in described


def test_snn_file_text_names_method_and_T(snn_file, capsys):
    code, out, err = _run(["info", snn_file], capsys)
    assert code == 0, err
    lines = {line.split("  ", 1)[0]: line for line in out.splitlines()}
    assert "calibrated" in lines["method"] and lines["T (timesteps)"].split()[2] == "12"
    assert "3 spiking sites" in lines["thresholds"] and "digits (train), 64 samples, seed 0" in lines["calibration"]
    assert len({line.index(line.split("  ", 1)[1].strip()) for line in out.splitlines()}) == 1  # one aligned value column


def test_auto_record_is_copied_as_is_and_shown(snn_file, tmp_path):
    payload = torch.load(snn_file, weights_only=True)
    auto = {"objective": "energy", "max_drop": 1.0, "max_timesteps": 16, "met_budget": True,
            "validation": {"samples": 200, "ann_accuracy": 95.5},
            "chosen": {"method": "calibrated", "variant": "calibrated + signed", "timesteps": 3, "accuracy": 95.0, "drop": 0.5,
                       "drop_se": 0.2, "energy_uj": 12.5},
            "screened": 9, "simulated": 3, "candidates": [{"method": "calibrated", "timesteps": 3}]}  # fmt: skip
    payload["info"]["auto"] = auto
    torch.save(payload, tmp_path / "auto.pt")
    described = describe_file(tmp_path / "auto.pt")
    assert described["auto"] == auto
    text = format_description(described)
    assert "objective energy" in text and "within budget; 9 candidates screened, 3 simulated" in text
    assert "calibrated + signed at T = 3: 95%, drop 0.5 ± 0.2" in text


@pytest.mark.parametrize("kind", ["checkpoint", "onnx", "pt2", "state_dict"])
def test_model_files_give_their_format_and_no_method(kind, model, ann_file, tmp_path, capsys):
    x = torch.rand(1, *SHAPE)
    if kind == "checkpoint":
        path, expected = ann_file, "spikeconv checkpoint"
    elif kind == "onnx":
        path, expected = tmp_path / "m.onnx", "ONNX file"
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    elif kind == "pt2":
        path, expected = tmp_path / "m.pt2", "torch.export program"
        torch.export.save(torch.export.export(model, (x,)), path)
    else:
        path, expected = tmp_path / "sd.pt", "state_dict"
        torch.save(model.state_dict(), path)
    code, out, err = _run(["info", path, "--json"], capsys)
    assert code == 0, err
    described = json.loads(out)
    assert described["format"] == expected and described["method"] is None and described["timesteps"] is None
    if kind in ("checkpoint", "onnx"):
        assert described["input_shape"] == list(SHAPE) and described["num_classes"] == 10
    if kind == "checkpoint":
        assert described["arch"] == "digits-cnn" and described["metadata"]["test_accuracy"] == 91.25
    code, out, err = _run(["info", path], capsys)
    assert code == 0 and expected in out and "method" in out


def test_trained_checkpoint(tmp_path, capsys):
    out = tmp_path / "trained.pt"
    code, _, err = _run(["train-snn", "--arch", "digits-cnn", "--dataset", "digits", "--timesteps", 2, "--epochs", 1,
                         "--train-limit", 64, "--out", out], capsys)  # fmt: skip
    assert code == 0, err
    code, text, err = _run(["info", out, "--json"], capsys)
    assert code == 0, err
    described = json.loads(text)
    assert described["format"] == "spikeconv-snn-trained" and described["method"] == "train-snn" and described["timesteps"] == 2
    assert described["training"]["epochs_done"] == 1 and described["arch"]["name"] == "digits-cnn"
    assert isinstance(described["training"]["test_accuracy"], float) and described["neuron"]["reset"] == "subtract"
    code, text, _ = _run(["info", out], capsys)
    assert code == 0 and "train-snn" in text and "T (timesteps)" in text


def _refused(path, capsys, *needles):
    code, out, err = _run(["info", path], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err
    return err


def test_hostile_pickle_is_refused_without_running(tmp_path, capsys):
    sentinel = tmp_path / "ran"
    for name, content in (("obj.pt", {"x": Payload(sentinel)}), ("module.pt", torch.nn.Linear(2, 2))):
        torch.save(content, tmp_path / name)
        err = _refused(tmp_path / name, capsys, name, "pickled")
        assert "--trust-pickle" not in err
        assert not sentinel.exists()


def test_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "noise.bin").write_bytes(bytes(range(7, 256)) * 50)
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    _refused(tmp_path / "missing.pt", capsys, "does not exist")
    _refused(tmp_path / "folder", capsys, "not a file")
    _refused(tmp_path / "noise.bin", capsys, "noise.bin")
    _refused(tmp_path / "empty.pt", capsys, "empty.pt")


def test_damaged_or_newer_snn_file_is_one_line(snn_file, tmp_path, capsys):
    payload = torch.load(snn_file, weights_only=True)
    torch.save({**payload, "format_version": 99}, tmp_path / "newer.pt")
    _refused(tmp_path / "newer.pt", capsys, "newer spikeconv")
    torch.save({**payload, "plan": {"thresholds": {"relu1": "high"}}}, tmp_path / "damaged.pt")
    _refused(tmp_path / "damaged.pt", capsys, "damaged.pt")


def test_describe_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError):
        describe_file(tmp_path / "nothing")
