"""The CLI end to end on scikit-learn digits: train-snn -> curve, resume, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.cli import main
from spikeconv.data import dataset_info
from spikeconv.workflows import load_snn

DIGITS = ["--dataset", "digits"]
TRAIN = ["train-snn", "--arch", "digits-cnn", *DIGITS, "--neuron", "srif", "--mpr", "--timesteps", "2", "--epochs", "2",
         "--batch-size", "64", "--seed", "0"]  # fmt: skip


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def one_thread():
    """digits-cnn is tiny: extra intra-op threads only add synchronisation on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """An SRIF+MPR digits CNN trained once by the CLI at T=2 for 2 epochs (about 3 s); tests only read it."""
    ckpt = tmp_path_factory.mktemp("snn") / "d.pt"
    code = main([*TRAIN, "--out", str(ckpt)])
    assert code == 0 and ckpt.is_file()
    return ckpt


def test_train_snn_writes_checkpoint_and_log(trained, capsys):
    log = json.loads(trained.with_name("d.pt.log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    assert log["config"]["timesteps"] == 2 and log["config"]["neuron"]["mpr"] is True
    assert log["config"]["optimizer"] == "sgd" and log["config"]["loss"] == "cross-entropy" and log["config"]["tdbn"] is False
    assert log["epochs"][1]["train_loss"] < log["epochs"][0]["train_loss"]
    assert log["epochs"][1]["eval_accuracy"] > 70.0  # chance is 10 %; measured 87.8 %


def test_curve_of_trained_snn_has_no_ann_reference(trained, tmp_path, capsys):
    curve = tmp_path / "curve.json"
    code, out, err = _run(["curve", trained, *DIGITS, "--timesteps", 4, "--json", curve], capsys)
    assert code == 0, err
    record = json.loads(curve.read_text())
    assert record["timesteps"] == [1, 2, 3, 4] and record["num_samples"] == 500
    assert record["ann_accuracy"] is None
    assert min(record["accuracy"][1:]) > 70.0  # a trained T=2 network also works at T=3, 4
    log = json.loads(trained.with_name("d.pt.log.json").read_text())
    assert record["accuracy"][1] == pytest.approx(log["epochs"][-1]["eval_accuracy"], abs=0.21)  # same T, same net
    assert "| 4 |" in out and "ANN" not in out  # the table has no ANN row or gap column


def test_rate_code_of_a_trained_snn_is_a_one_line_error(trained, capsys):
    code, _, err = _run(["curve", trained, *DIGITS, "--timesteps", 2, "--rate-code"], capsys)
    assert code == 2 and "converted SNN" in err and len(err.strip().splitlines()) == 1


def test_curve_with_time_chunks_matches_whole_run(trained, tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    assert _run(["curve", trained, *DIGITS, "--timesteps", 5, "--limit", 120, "--json", paths[0]], capsys)[0] == 0
    assert _run(["curve", trained, *DIGITS, "--timesteps", 5, "--limit", 120, "--time-chunk", 2, "--batch-size", 50,
                 "--json", paths[1]], capsys)[0] == 0  # fmt: skip
    a, b = (json.loads(p.read_text()) for p in paths)
    assert a["num_samples"] == 120 and a["accuracy"] == b["accuracy"]


def test_load_snn_reads_a_trained_checkpoint(trained):
    loaded = load_snn(trained)
    info = dataset_info("digits")
    assert loaded.ann is None and not loaded.snn.training
    assert loaded.info["input_shape"] == [1, 8, 8] and loaded.info["num_classes"] == 10
    assert loaded.info["preprocessing"] == {"mean": list(info.mean), "std": list(info.std)}
    assert loaded.info["origin"] == "train-snn" and loaded.info["training"]["epochs_done"] == 2
    out = loaded.snn(torch.zeros(3, 1, 8, 8), 6)
    assert out.shape == (6, 3, 10)


def test_resume_of_finished_run_does_not_retrain(trained, capsys):
    before = trained.read_bytes(), trained.stat().st_mtime_ns
    code, out, err = _run([*TRAIN, "--out", trained, "--resume"], capsys)
    assert code == 0, err
    assert "after 2 epochs (0 run now)" in out
    assert (trained.read_bytes(), trained.stat().st_mtime_ns) == before  # not even rewritten


def test_resume_with_other_options_is_refused(trained, capsys):
    before = trained.read_bytes()
    code, out, err = _run([*TRAIN[:-2], "--seed", "1", "--out", trained, "--resume"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "other training options" in err
    assert trained.read_bytes() == before


@pytest.mark.parametrize("extra", [["--weight-decay", "0.001"], ["--label-smoothing", "0.1"], ["--recipe", "guo2022-inflor"]])
def test_resume_with_new_regularisation_or_a_recipe_is_refused(trained, capsys, extra):
    before = trained.read_bytes()
    code, out, err = _run([*TRAIN, *extra, "--out", trained, "--resume"], capsys)
    assert code == 2 and out == "" and "other training options" in err and err.count("\n") == 1
    assert trained.read_bytes() == before


def test_recipe_with_explicit_overrides_is_recorded(one_thread, tmp_path, capsys):
    out = tmp_path / "mt.pt"
    code, printed, err = _run(["train-snn", "--arch", "digits-cnn", *DIGITS, "--recipe", "xu2021-mtlif", "--epochs", 1,
                               "--batch-size", 32, "--train-limit", 64, "--label-smoothing", 0.1, "--weight-decay", 0.0001,
                               "--out", out], capsys)  # fmt: skip
    assert code == 0, err
    assert "at T=2 after 1 epochs" in printed  # the recipe's T
    config = json.loads(out.with_name("mt.pt.log.json").read_text())["config"]
    assert config["neuron"]["type"] == "multi-threshold" and config["loss"] == "per-step-mse" and config["schedule"] == "constant"
    assert (config["optimizer"], config["lr"], config["augment"], config["tdbn"]) == ("adam", 0.005, "shift", True)
    assert (config["epochs"], config["batch_size"], config["label_smoothing"], config["weight_decay"]) == (1, 32, 0.1, 0.0001)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--neuron", "mtlif", "--mpr"], "--mpr applies to the neurons if, lif, srif, not 'mtlif'"),
        (["--timesteps", "0"], "--timesteps"),
        (["--neuron", "izhikevich"], "--neuron"),
        (["--epochs", "0"], "--epochs"),
        (["--recipe", "xu2023-mtlif"], "--recipe"),
        (["--label-smoothing", "1"], "--label-smoothing"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--recipe", "xu2021-mtlif", "--mpr"], "--mpr applies to the neurons if, lif, srif"),
        (["--arch", "12Q3"], "12Q3"),
        (["--dataset", "no-such-set"], "no-such-set"),
        (["--out", "{tmp}/garbage.pt", "--resume"], "garbage.pt"),
        (["--out", "{tmp}"], "is a folder"),
    ],
)
def test_bad_input_gives_one_line_and_no_output(one_thread, tmp_path, capsys, extra, message):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    args = ["train-snn", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--out", tmp_path / "out.pt"]
    code, out, err = _run([*args, *(str(a).replace("{tmp}", str(tmp_path)) for a in extra)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pt"]  # nothing written, nothing left half-done
    assert garbage.read_bytes() == b"this is not a checkpoint"
