"""`spikeconv export` end to end on digits: NIR and ONNX files that give spikeconv's own curve, and clean refusals."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from spikeconv.cli import main

DIGITS = ["--dataset", "digits"]
CURVE = [*DIGITS, "--timesteps", "8", "--limit", "200"]


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def ann(tmp_path_factory):
    """A digits CNN with max pooling, trained once by the CLI (about 5 s)."""
    path = tmp_path_factory.mktemp("export") / "ann.pt"
    assert main(["train-ann", "--arch", "16C3p1-M2-32C3-64", *DIGITS, "--epochs", "3", "--seed", "0", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def snn(ann):
    path = ann.with_name("cal.snn.pt")
    code = main(["convert", str(ann), *DIGITS, "--method", "calibrated", "--target-timesteps", "8", "--maxpool", "average",
                 "--out", str(path)])  # fmt: skip
    assert code == 0
    return path


def test_nir_file_reads_with_nir_and_gives_the_identical_curve(snn, tmp_path, capsys):
    out = tmp_path / "net.nir"
    code, text, err = _run(["export", snn, "--format", "nir", "--out", out], capsys)
    assert code == 0, err
    assert "as nir" in text and out.is_file()
    graph = nir.read(out)
    assert {type(n).__name__ for n in graph.nodes.values()} >= {"I", "Threshold", "Scale", "Conv2d", "Affine"}
    curves = [tmp_path / "snn.json", tmp_path / "nir.json"]
    for source, target in zip([snn, out], curves, strict=True):
        code, _, err = _run(["curve", source, *CURVE, "--json", target], capsys)
        assert code == 0, err
    a, b = (json.loads(p.read_text()) for p in curves)
    assert a["accuracy"] == b["accuracy"] and len(a["accuracy"]) == 8
    assert a["accuracy"][-1] > 80.0  # a real network, not a trivially equal one
    code, text, _ = _run(["info", out], capsys)
    assert code == 0 and "NIR graph (written by spikeconv export)" in text and "calibrated" in text


def test_onnx_step_graph_matches_spikeconv(snn, tmp_path, capsys):
    import torch

    from spikeconv.data import Split, load_dataset
    from spikeconv.files import load_snn
    from spikeconv.files.onnx_step import run_onnx_step

    out = tmp_path / "net.onnx"
    code, text, err = _run(["export", snn, "--out", out], capsys)  # the format from the suffix
    assert code == 0, err
    assert "as onnx" in text
    data = load_dataset("digits", split=Split.TEST, limit=32)
    images = torch.stack([data[i][0] for i in range(32)])
    theirs = run_onnx_step(out, images.numpy(), 8)
    with torch.no_grad():
        ours = load_snn(snn).snn(images, 8).numpy()
    assert np.allclose(theirs, ours, rtol=1e-4, atol=1e-5 * np.abs(ours).max())
    assert (theirs.cumsum(0).argmax(-1) == ours.cumsum(0).argmax(-1)).all()


def test_spiking_max_pool_is_refused_in_one_line_without_output(ann, tmp_path, capsys):
    spiking = tmp_path / "spiking.snn.pt"
    assert _run(["convert", ann, *DIGITS, "--method", "calibrated", "--out", spiking], capsys)[0] == 0
    out = tmp_path / "net.nir"
    code, _, err = _run(["export", spiking, "--out", out], capsys)
    assert code == 2 and err.count("\n") == 1 and "--maxpool average" in err and "node " in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--out", "{snn}"], "is an input of this command"),
    (["--out", "{tmp}/net.bin"], "does not say the format"),
    (["--out", "{tmp}/x.nir", "--format", "tflite"], "Invalid value for '--format'"),
])  # fmt: skip
def test_bad_export_requests_fail_in_one_line(snn, tmp_path, capsys, args, message):
    args = [a.format(snn=snn, tmp=tmp_path) for a in args]
    code, _, err = _run(["export", snn, *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert snn.stat().st_size > 0


def test_a_nir_file_is_not_an_ann(snn, tmp_path, capsys):
    out = tmp_path / "net.nir"
    assert _run(["export", snn, "--out", out], capsys)[0] == 0
    code, _, err = _run(["convert", out, *DIGITS, "--out", tmp_path / "again.snn.pt"], capsys)
    assert code == 2 and "is a NIR graph" in err
