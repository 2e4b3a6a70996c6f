"""Hybrid fine-tunes resume: an interrupted run continued from its checkpoint ends exactly where an uninterrupted one does."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from spikeconv.cli import main
from spikeconv.data import Split, load_dataset, make_loader
from spikeconv.errors import CheckpointError
from spikeconv.files import load_ann, load_snn
from spikeconv.training import FinetuneBudget, checkpoint_path, finetune_converted
from spikeconv.training.snn import finetune as hybrid
from spikeconv.workflows.api import convert

DIGITS = ["--dataset", "digits"]
BUDGET = FinetuneBudget(epochs=2, samples=256, batch_size=64, lr=1e-3)


class Interrupted(Exception):
    pass


def _stop_after_first(record) -> None:
    if record.epoch == 1:
        raise Interrupted


@pytest.fixture(scope="module")
def ann(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "ann.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "2", "--seed", "0", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def train_data():
    return load_dataset("digits", split=Split.TRAIN)


@pytest.fixture(scope="module")
def converted(ann, train_data):
    loader = make_loader(train_data, batch_size=128, shuffle=False)
    return convert(load_ann(ann), loader, method="calibrated", timesteps=2, max_samples=256, correction_samples=128)


def _equal(a, b) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_interrupted_finetune_resumes_to_the_uninterrupted_result(converted, train_data, tmp_path):
    full, _ = finetune_converted(converted, train_data, timesteps=2, budget=BUDGET)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        finetune_converted(converted, train_data, timesteps=2, budget=BUDGET, checkpoint=ckpt, on_epoch_end=_stop_after_first)
    assert ckpt.exists()
    resumed, record = finetune_converted(converted, train_data, timesteps=2, budget=BUDGET, checkpoint=ckpt, resume=True)
    assert record["resumed_after_epoch"] == 1 and len(record["epoch_seconds"]) == 2
    assert _equal(resumed, full)
    once, _ = finetune_converted(converted, train_data, timesteps=2, budget=replace(BUDGET, epochs=1))
    assert not _equal(once, full)  # the second epoch changed the weights, so equality above means something


def test_a_checkpoint_resumes_only_the_same_conversion_and_budget(ann, converted, train_data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupted):
        finetune_converted(converted, train_data, timesteps=2, budget=BUDGET, checkpoint=ckpt, on_epoch_end=_stop_after_first)
    for budget in (replace(BUDGET, lr=2e-3), replace(BUDGET, samples=128), replace(BUDGET, batch_size=32)):
        with pytest.raises(CheckpointError):
            finetune_converted(converted, train_data, timesteps=2, budget=budget, checkpoint=ckpt, resume=True)
    other = convert(load_ann(ann), make_loader(train_data, batch_size=128, shuffle=False), method="calibrated", timesteps=3,
                    max_samples=256, correction_samples=128)  # another conversion (thresholds for T = 3)  # fmt: skip
    with pytest.raises(CheckpointError):
        finetune_converted(other, train_data, timesteps=2, budget=BUDGET, checkpoint=ckpt, resume=True)


def test_cli_resume_continues_an_interrupted_hybrid_convert(ann, tmp_path, capsys, monkeypatch):
    out, full = tmp_path / "hyb.snn.pt", tmp_path / "full.snn.pt"
    args = ["convert", str(ann), *DIGITS, "--method", "hybrid", "--target-timesteps", "1", "--finetune-epochs", "2",
            "--finetune-samples", "300", "--finetune-lr", "1e-3", "--device", "cpu"]  # fmt: skip
    real = hybrid.train_network

    def interrupted(*a, on_epoch_end=None, **k):
        def stop(record):
            on_epoch_end(record)
            if record.epoch == 1:
                raise KeyboardInterrupt

        return real(*a, on_epoch_end=stop, **k)

    monkeypatch.setattr(hybrid, "train_network", interrupted)
    assert main([*args, "--out", str(out)]) == 130
    monkeypatch.undo()
    assert checkpoint_path(out).exists() and not out.exists()
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2  # a checkpoint is never silently replaced
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert "resumed after epoch 1" in capsys.readouterr().out
    assert out.exists() and not checkpoint_path(out).exists()
    assert main([*args, "--out", str(full)]) == 0 and not checkpoint_path(full).exists()
    assert _equal(load_snn(out).snn, load_snn(full).snn)
    assert load_snn(out).info["hybrid"]["resumed_after_epoch"] == 1
    assert main(["convert", str(ann), *DIGITS, "--method", "calibrated", "--resume", "--out", str(tmp_path / "c.snn.pt")]) == 2
    assert "--resume" in capsys.readouterr().err
