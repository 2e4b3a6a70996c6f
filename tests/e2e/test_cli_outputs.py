"""No command loses the user's data: outputs are checked before any work and written all or nothing.

Real CLI runs on scikit-learn digits with tiny budgets. A refused output must give exit 2 and one
``error:`` line, leave every input byte-identical, and start no work: the ``no_work`` fixture makes
reading data or an SNN file fail loudly (exit 1), so exit 2 shows the check came first.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys

import pytest
import torch

from spikeconv.cli import main

DIGITS = ["--dataset", "digits"]
SNN_TRAIN = ["train-snn", "--arch", "digits-cnn", *DIGITS, "--timesteps", "2", "--epochs", "1", "--batch-size", "128",
             "--train-limit", "256"]  # fmt: skip


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(code, out, err, *needles):
    assert code == 2, err
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory, one_thread):
    """A digits ANN (1 epoch) and its SNN (64 calibration samples), made once; tests copy or only read them."""
    folder = tmp_path_factory.mktemp("outputs")
    ann, snn = folder / "ann.pt", folder / "s.snn.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--train-limit", "256", "--out", str(ann)]) == 0
    assert main(["convert", str(ann), *DIGITS, "--calib-samples", "64", "--out", str(snn)]) == 0
    return ann, snn


@pytest.fixture
def inputs(files, tmp_path):
    """Copies of the ANN and SNN in this test's folder."""
    ann, snn = tmp_path / "ann.pt", tmp_path / "s.snn.pt"
    ann.write_bytes(files[0].read_bytes())
    snn.write_bytes(files[1].read_bytes())
    return ann, snn


@pytest.fixture
def no_work(monkeypatch):
    """Reading data or an SNN file (the first work of every job) fails: a refusal must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr("spikeconv.workflows.jobs.DataSource.load", refuse)
    monkeypatch.setattr("spikeconv.workflows.curve.load_snn", refuse)
    monkeypatch.setattr("spikeconv.workflows.curves.load_snn", refuse)


def test_convert_refuses_to_write_over_its_model(inputs, tmp_path, capsys, no_work):
    ann, _ = inputs
    before = _sha(ann)
    os.link(ann, tmp_path / "alias.pt")
    for out in (ann, tmp_path / "alias.pt"):
        _one_line_error(*_run(["convert", ann, *DIGITS, "--out", out], capsys), f"--out {out} is an input", "pass another --out")
        assert _sha(ann) == before


def test_convert_refuses_plan_json_equal_to_out(inputs, tmp_path, capsys, no_work):
    ann, _ = inputs
    out = tmp_path / "x.snn.pt"
    _one_line_error(*_run(["convert", ann, *DIGITS, "--out", out, "--plan-json", out], capsys), "--out and --plan-json are both")
    _one_line_error(*_run(["convert", ann, *DIGITS, "--out", out, "--plan-json", ann], capsys), "--plan-json", "is an input")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pt", "s.snn.pt"]


@pytest.mark.parametrize("command", ["convert", "train-ann", "train-snn"])
def test_a_folder_or_an_impossible_folder_as_out_fails_before_any_work(inputs, tmp_path, capsys, no_work, command):
    ann, _ = inputs
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "existing").mkdir()
    head = {"convert": ["convert", ann, *DIGITS], "train-ann": ["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "1"],
            "train-snn": SNN_TRAIN}[command]  # fmt: skip
    _one_line_error(*_run([*head, "--out", tmp_path / "existing"], capsys), "is a folder")
    _one_line_error(*_run([*head, "--out", tmp_path / "file.txt" / "out.pt"], capsys), "cannot be created", "file.txt is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pt", "existing", "file.txt", "s.snn.pt"]
    assert not any((tmp_path / "existing").iterdir())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_folder_fails_before_any_work(inputs, tmp_path, capsys, no_work):
    ann, _ = inputs
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _one_line_error(*_run(["convert", ann, *DIGITS, "--out", locked / "s.pt"], capsys), "is not writable")
    finally:
        locked.chmod(0o700)


def test_curve_refuses_outputs_over_its_snn_or_each_other(inputs, files, tmp_path, capsys, no_work):
    _, snn = inputs
    before = _sha(snn)
    _one_line_error(*_run(["curve", snn, *DIGITS, "--json", snn], capsys), f"--json {snn} is an input")
    _one_line_error(*_run(["curve", files[1], snn, *DIGITS, "--plot", snn], capsys), "--plot", "is an input")
    both = tmp_path / "c.out"
    _one_line_error(*_run(["curve", snn, *DIGITS, "--json", both, "--plot", both], capsys), "--json and --plot are both")
    assert _sha(snn) == before and not both.exists()


def test_a_failing_plot_leaves_no_curve_json(inputs, tmp_path, capsys, monkeypatch):
    _, snn = inputs
    curve, plot = tmp_path / "c.json", tmp_path / "c.png"
    curve.write_text("an earlier curve")

    def broken_plot(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(plot))

    monkeypatch.setattr("spikeconv.workflows.curves.plot_curves", broken_plot)
    code, out, err = _run(["curve", snn, *DIGITS, "--timesteps", 2, "--limit", 20, "--json", curve, "--plot", plot], capsys)
    assert code == 2 and err.startswith("error: cannot write") and "No space left" in err and err.count("\n") == 1, err
    assert curve.read_text() == "an earlier curve" and not plot.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pt", "c.json", "s.snn.pt"]  # no temporaries


def test_a_failing_plan_json_leaves_no_snn_file(inputs, tmp_path, capsys, monkeypatch):
    ann, _ = inputs

    def broken_save(self, path):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("spikeconv.calibration.ThresholdPlan.save", broken_save)
    code, out, err = _run(["convert", ann, *DIGITS, "--calib-samples", 32, "--out", tmp_path / "n.snn.pt",
                           "--plan-json", tmp_path / "plan.json"], capsys)  # fmt: skip
    assert code == 2 and "cannot write" in err and "plan.json" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pt", "s.snn.pt"]


def _pid_of_finished_process() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_curve_removes_stale_temporaries_of_dead_runs(inputs, tmp_path, capsys):
    from spikeconv._io import _HOST

    _, snn = inputs
    dead = _pid_of_finished_process()
    stale, live = tmp_path / f".c.json.{dead}-{_HOST}.x1y2z3.tmp", tmp_path / f".c.json.{os.getppid()}-{_HOST}.abcdef.tmp"
    stale.write_text("left by SIGKILL")
    live.write_text("a running writer's")
    assert _run(["curve", snn, *DIGITS, "--timesteps", 2, "--limit", 20, "--json", tmp_path / "c.json"], capsys)[0] == 0
    assert not stale.exists() and live.exists() and (tmp_path / "c.json").is_file()


def test_train_snn_refuses_to_replace_a_checkpoint_without_overwrite(tmp_path, capsys, monkeypatch, one_thread):
    out = tmp_path / "d.pt"
    assert _run([*SNN_TRAIN, "--out", out], capsys)[0] == 0
    before = _sha(out), _sha(tmp_path / "d.pt.log.json")

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    with monkeypatch.context() as patch:
        patch.setattr("spikeconv.workflows.train_snn.train_snn", no_training)
        _one_line_error(*_run([*SNN_TRAIN, "--out", out], capsys), f"--out {out} already exists", "--resume", "--overwrite")
        _one_line_error(*_run([*SNN_TRAIN, "--out", out, "--resume", "--overwrite"], capsys), "pass only one")
    assert (_sha(out), _sha(tmp_path / "d.pt.log.json")) == before
    code, out_text, err = _run([*SNN_TRAIN, "--out", out, "--overwrite"], capsys)
    assert code == 0 and "(1 run now)" in out_text, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pt", "d.pt.log.json"]


def test_train_snn_checkpoint_and_log_are_written_together(tmp_path, capsys, monkeypatch, one_thread):
    def broken_log(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "d.pt.log.json"))

    monkeypatch.setattr("spikeconv.training.snn.loop.atomic_write", broken_log)
    code, _, err = _run([*SNN_TRAIN, "--out", tmp_path / "d.pt"], capsys)
    assert code == 2 and "No space left" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # no checkpoint without its log, no temporaries


def test_compare_and_demo_refuse_bad_folders_before_any_work(inputs, tmp_path, capsys, no_work):
    ann, _ = inputs
    (tmp_path / "file.txt").write_text("x")
    compare = ["compare", "--arch", "digits-cnn", *DIGITS, "--methods", "ann", "--timesteps", "1"]
    _one_line_error(*_run([*compare, "--out-dir", tmp_path / "r", "--cache-dir", tmp_path / "file.txt"], capsys),
                    "--cache-dir", "is a file, not a folder")  # fmt: skip
    _one_line_error(*_run([*compare, "--out-dir", tmp_path / "file.txt" / "r"], capsys), "--out-dir", "not a folder")
    _one_line_error(*_run(["demo", "--out-dir", tmp_path / "file.txt"], capsys), "--out-dir", "is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pt", "file.txt", "s.snn.pt"]
