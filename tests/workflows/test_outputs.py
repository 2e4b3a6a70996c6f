"""Output safety: paths checked before any work, all-or-nothing output sets, stale temporaries of killed runs."""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spikeconv._io import atomic_write, output_set, remove_stale_temporaries
from spikeconv._outputs import check_output_folder, check_outputs
from spikeconv.errors import ConfigError, OutputError

IO_FILE = Path(__file__).resolve().parents[2] / "spikeconv" / "_io.py"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- check_outputs
def test_an_output_that_is_an_input_is_refused(tmp_path):
    model = tmp_path / "ann.pt"
    model.write_bytes(b"weights")
    (tmp_path / "link.pt").symlink_to(model)
    os.link(model, tmp_path / "hard.pt")
    for out in (model, tmp_path / "." / "ann.pt", tmp_path / "link.pt", tmp_path / "hard.pt"):
        with pytest.raises(OutputError, match=r"^--out .* is an input of this command .*; pass another --out path$"):
            check_outputs({"--out": out}, [model])
    check_outputs({"--out": tmp_path / "snn.pt", "--plan-json": None}, [model, None])  # fine


def test_two_outputs_at_one_path_are_refused(tmp_path):
    with pytest.raises(OutputError, match=r"--json and --plot are both .*c\.json.*pass a different path to --plot$"):
        check_outputs({"--json": tmp_path / "c.json", "--plot": tmp_path / "sub" / ".." / "c.json"})


def test_a_folder_or_special_file_as_output_is_refused(tmp_path):
    with pytest.raises(OutputError, match="is a folder; pass a file name"):
        check_outputs({"--out": tmp_path})
    if Path("/dev/null").exists():
        with pytest.raises(OutputError, match="not a regular file"):
            check_outputs({"--out": "/dev/null"})


def test_an_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match=r"cannot be created: .*file\.txt is not a folder"):
        check_outputs({"--out": tmp_path / "file.txt" / "deeper" / "out.pt"})
    check_outputs({"--out": tmp_path / "new" / "folders" / "out.pt"})  # missing folders are fine ...
    assert _files(tmp_path) == ["file.txt"]  # ... and are not created by the check, which leaves no probe


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_output_in_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="folder .* is not writable; pass a path in a writable folder"):
            check_outputs({"--out": folder / "new" / "out.pt"})
    finally:
        folder.chmod(0o700)


def test_output_folder_check(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_folder("--out-dir", tmp_path / "file.txt")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output_folder("--out-dir", tmp_path / "file.txt" / "report")
    check_output_folder("--out-dir", tmp_path / "report")
    assert issubclass(OutputError, ConfigError)


# ---------------------------------------------------------------- output_set
def test_output_set_writes_all_outputs_at_the_end(tmp_path):
    with output_set():
        with atomic_write(tmp_path / "a.txt") as handle:
            handle.write("a")
        assert not (tmp_path / "a.txt").exists()  # not yet: b may still fail
        with atomic_write(tmp_path / "b.txt") as handle:
            handle.write("b")
    assert _files(tmp_path) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "a"


def test_a_failing_second_output_leaves_no_first_one(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="plot failed"):
        with output_set():
            with atomic_write(tmp_path / "a.txt") as handle:
                handle.write("new")
            with atomic_write(tmp_path / "b.txt") as handle:
                raise RuntimeError("plot failed")
    assert _files(tmp_path) == ["a.txt"]  # no b, no temporaries
    assert (tmp_path / "a.txt").read_text() == "old"  # and the old a untouched


def test_an_os_error_in_an_output_set_is_one_output_error(tmp_path):
    with pytest.raises(OutputError, match=r"^cannot write .*b\.txt: No space left on device; .*another output path$"):
        with output_set():
            with atomic_write(tmp_path / "a.txt") as handle:
                handle.write("a")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "b.txt"))
    assert _files(tmp_path) == []


def test_nested_output_sets_commit_with_the_outer_one(tmp_path):
    with pytest.raises(RuntimeError):
        with output_set():
            with output_set(), atomic_write(tmp_path / "inner.txt") as handle:
                handle.write("x")
            raise RuntimeError("later failure")
    assert _files(tmp_path) == []


# ---------------------------------------------------------------- stale temporaries
def _writer(target: Path, then: str) -> subprocess.Popen:
    """A process that writes ``target`` through atomic_write and then kills itself or waits."""
    code = textwrap.dedent(f"""
        import importlib.util, os, signal, sys, time
        spec = importlib.util.spec_from_file_location("io_copy", {str(IO_FILE)!r})
        io = importlib.util.module_from_spec(spec); spec.loader.exec_module(io)
        with io.atomic_write({str(target)!r}) as handle:
            handle.write("half"); handle.flush()
            print("writing", flush=True)
            if {then!r} == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            sys.stdin.read()
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.mark.skipif(os.name != "posix", reason="pid liveness via os.kill(pid, 0)")
def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "curve.json"
    live = _writer(target, "wait")
    try:
        assert live.stdout.readline() == "writing\n"
        dead = _writer(target, "die")  # its own write keeps the live writer's temporary
        assert dead.stdout.readline() == "writing\n"
        dead.wait(timeout=30)  # reaped: no zombie
        temps = {p.name.split(".")[3].split("-")[0]: p for p in tmp_path.iterdir()}
        assert set(temps) == {str(dead.pid), str(live.pid)}
        (tmp_path / ".curve.json.abc123.tmp").write_text("other format")  # not ours to judge
        with atomic_write(target) as handle:
            handle.write("done")
        assert not temps[str(dead.pid)].exists()
        assert temps[str(live.pid)].exists()  # a running writer's temporary is never touched
        assert (tmp_path / ".curve.json.abc123.tmp").exists() and target.read_text() == "done"
        assert remove_stale_temporaries(target) == []
    finally:
        live.stdin.close()
        live.wait(timeout=30)
    assert _files(tmp_path) == [".curve.json.abc123.tmp", "curve.json"]  # the live writer renamed its file in place


def test_io_module_loads_standalone():
    """The writer processes above load _io.py alone; it must need nothing but the standard library."""
    spec = importlib.util.spec_from_file_location("io_copy_here", IO_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.atomic_write)
