"""The CLI end to end on scikit-learn digits: train-ann -> convert -> curve, and bad input."""

from __future__ import annotations

import json

import pytest

from spikeconv.cli import main

DIGITS = ["--dataset", "digits"]


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits CNN trained once by the CLI (about 5 s); tests only read it."""
    folder = tmp_path_factory.mktemp("digits")
    ckpt = folder / "ann.pt"
    code = main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "4", "--seed", "0", "--out", str(ckpt)])
    assert code == 0 and ckpt.is_file()
    return ckpt


def test_train_convert_curve_end_to_end(trained, tmp_path, capsys):
    snn, plan, curve = tmp_path / "d.snn.pt", tmp_path / "plan.json", tmp_path / "curve.json"
    code, out, err = _run(["convert", trained, *DIGITS, "--out", snn, "--plan-json", plan], capsys)
    assert code == 0, err
    assert "spiking layers" in out and snn.is_file() and plan.is_file()
    code, out, err = _run(["curve", snn, *DIGITS, "--timesteps", 48, "--json", curve, "--plot", tmp_path / "c.png"], capsys)
    assert code == 0, err
    record = json.loads(curve.read_text())
    assert record["timesteps"] == list(range(1, 49))
    assert len(record["accuracy"]) == 48 and record["num_samples"] == 500
    ann = record["ann_accuracy"]
    assert ann > 85.0
    assert record["accuracy"][-1] >= ann - 2.0  # the converted SNN keeps the ANN's accuracy
    assert record["accuracy"][0] < record["accuracy"][-1]
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert "ANN" in out


def test_curve_with_limit_and_chunks_matches_whole_run(trained, tmp_path, capsys):
    snn = tmp_path / "d.snn.pt"
    assert _run(["convert", trained, *DIGITS, "--out", snn, "--method", "rate", "--per-channel"], capsys)[0] == 0
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    assert _run(["curve", snn, *DIGITS, "--timesteps", 16, "--limit", 100, "--json", paths[0]], capsys)[0] == 0
    assert _run(["curve", snn, *DIGITS, "--timesteps", 16, "--limit", 100, "--time-chunk", 5,
                 "--batch-size", 33, "--json", paths[1]], capsys)[0] == 0  # fmt: skip
    a, b = (json.loads(p.read_text()) for p in paths)
    assert a["num_samples"] == 100 and a["accuracy"] == b["accuracy"] and a["ann_accuracy"] == b["ann_accuracy"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["curve", "{snn}", *DIGITS, "--timesteps", "0"], "timesteps"),
        (["curve", "{snn}", *DIGITS, "--timesteps", "-3"], "timesteps"),
        (["curve", "{tmp}/missing.pt", *DIGITS], "does not exist"),
        (["curve", "{garbage}", *DIGITS], "not a"),
        (["convert", "{tmp}/missing.pt", *DIGITS, "--out", "{tmp}/out.pt"], "missing.pt"),
        (["convert", "{garbage}", *DIGITS, "--out", "{tmp}/out.pt"], "garbage.pt"),
        (["convert", "{ann}", "--dataset", "no-such-set", "--out", "{tmp}/out.pt"], "no-such-set"),
        (["convert", "{ann}", "--dataset", "imagefolder:{tmp}/nowhere", "--out", "{tmp}/out.pt"], "nowhere"),
        (["curve", "{snn}", "--dataset", "fashion-mnist", "--data-root", "{tmp}/empty", "--limit", "5"], "(28|not found|fashion)"),
        (["convert", "{ann}", *DIGITS, "--percentile", "0", "--out", "{tmp}/out.pt"], "percentile"),
        (["train-ann", "--arch", "12Q3", *DIGITS, "--out", "{tmp}/out.pt"], "12Q3"),
    ],
)
def test_bad_input_gives_one_line_and_no_output(trained, tmp_path, capsys, args, message):
    snn = tmp_path / "good.snn.pt"
    assert main(["convert", str(trained), *DIGITS, "--out", str(snn), "--calib-samples", "64"]) == 0
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    (tmp_path / "empty").mkdir()
    before = set(tmp_path.rglob("*"))
    filled = [a.format(snn=snn, tmp=tmp_path, garbage=garbage, ann=trained) for a in args]
    code, out, err = _run(filled, capsys)
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    import re

    assert re.search(message, lines[0]), lines[0]
    assert set(tmp_path.rglob("*")) == before  # nothing written, not even a temporary file


def test_shape_mismatch_names_both_shapes_and_exits_2(tmp_path, capsys):
    ckpt = tmp_path / "fm.pt"
    # A 28x28 model trained on a handful of samples (weights do not matter for the check).
    code = main(["train-ann", "--arch", "mlp", "--dataset", "fashion-mnist", "--epochs", "1", "--train-limit", "64",
                 "--out", str(ckpt)])  # fmt: skip
    if code != 0:
        pytest.skip("Fashion-MNIST is not installed on this machine")
    capsys.readouterr()
    code, _, err = _run(["convert", ckpt, *DIGITS, "--out", tmp_path / "x.snn.pt"], capsys)
    assert code == 2
    assert "(1, 8, 8)" in err and "(1, 28, 28)" in err
    assert not (tmp_path / "x.snn.pt").exists()


def test_every_command_has_help(capsys):
    for command in ["train-ann", "convert", "curve", "demo"]:
        code, out, _ = _run([command, "--help"], capsys)
        assert code == 0 and "Usage:" in out
