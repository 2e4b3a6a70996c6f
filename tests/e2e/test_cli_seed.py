"""``--seed`` makes training reproducible: the same command twice gives bit-identical weights on CPU."""

from __future__ import annotations

import pytest
import torch

from spikeconv.cli import main
from spikeconv.training import load_ann_checkpoint
from spikeconv.training.snn.checkpoint import load_snn_checkpoint

DIGITS = ["--dataset", "digits", "--train-limit", "256", "--epochs", "1", "--batch-size", "64"]
TRAIN_ANN = ["train-ann", "--arch", "digits-cnn", *DIGITS]
TRAIN_SNN = ["train-snn", "--arch", "digits-cnn", *DIGITS, "--neuron", "srif", "--mpr", "--timesteps", "2"]


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"tensors differ between two runs with the same seed: {different}"


def _train(command: list[str], seed: int, out) -> None:
    torch.manual_seed(seed + 1000 + len(str(out)))  # a different global RNG state before each run must not matter
    assert main([*command, "--seed", str(seed), "--out", str(out)]) == 0


@pytest.mark.parametrize("command, load", [(TRAIN_ANN, load_ann_checkpoint), (TRAIN_SNN, load_snn_checkpoint)],
                         ids=["train-ann", "train-snn"])  # fmt: skip
def test_same_seed_gives_identical_weights(tmp_path, command, load):
    _train(command, 3, tmp_path / "a.pt")
    _train(command, 3, tmp_path / "run-b.pt")
    _assert_identical(load(tmp_path / "a.pt").state_dict, load(tmp_path / "run-b.pt").state_dict)


def test_another_seed_gives_other_weights(tmp_path):
    _train(TRAIN_ANN, 3, tmp_path / "a.pt")
    _train(TRAIN_ANN, 4, tmp_path / "b.pt")
    a, b = load_ann_checkpoint(tmp_path / "a.pt").state_dict, load_ann_checkpoint(tmp_path / "b.pt").state_dict
    assert any(not torch.equal(a[name], b[name]) for name in a)
