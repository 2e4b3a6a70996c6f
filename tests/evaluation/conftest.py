"""Stand-in networks and hand-made data for the evaluation tests.

The stand-in SNN replays a readout current stored in its input: sample ``x[n]`` is a
``[T_max, K]`` table and ``snn(x, T)`` returns ``x[:, :T]`` time-first. So the accuracy after
every step is known exactly from the table, without any real neuron.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn


class ReplaySNN(nn.Module):
    """Returns the readout current stored in ``x`` ([N, T_max, K]) as [T, N, K].

    Records each call's ``num_steps``, the training flag and whether inference mode was on.
    A BatchNorm and a Dropout give it submodules whose flags evaluation must restore.
    """

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(3)
        self.drop = nn.Dropout(0.5)
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x: Tensor, num_steps: int) -> Tensor:
        self.calls.append((num_steps, self.training, torch.is_inference_mode_enabled()))
        return x[:, :num_steps].transpose(0, 1)


class SumANN(nn.Module):
    """The ANN that sees the whole table at once: logits = identity(sum over time)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(num_classes, num_classes, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(num_classes))
        self.drop = nn.Dropout(0.5)
        self.training_seen: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.training_seen.append(self.training)
        return self.drop(self.linear(x.sum(1)))


def handmade_readout() -> tuple[Tensor, Tensor]:
    """Four samples, T = 4, K = 3, with the correct-after-t pattern written next to each.

    Correct counts per t are 2, 2, 3, 3 of 4, so the curve is 50, 50, 75, 75 percent.
    """
    x = torch.zeros(4, 4, 3)
    y = torch.tensor([0, 1, 2, 1])
    x[0, :, 0] = 1.0  # always right
    x[1, 0] = torch.tensor([2.0, 0.0, 0.0])  # sums: t1 (2,0) wrong, t2 (2,1.5) wrong,
    x[1, 1] = torch.tensor([0.0, 1.5, 0.0])  # t3 (2,3) right, t4 unchanged right
    x[1, 2] = torch.tensor([0.0, 1.5, 0.0])
    x[2, 0] = torch.tensor([1.0, 0.0, 1.0])  # t1 tie 0/2 -> argmax picks 0: wrong
    x[2, 1] = torch.tensor([0.0, 0.0, 0.5])  # from t2 on class 2 leads: right
    x[3, 0] = torch.tensor([0.0, 1.0, 0.0])  # right at t1
    x[3, 1] = torch.tensor([0.0, 0.0, 3.0])  # wrong from t2 on
    return x, y


@pytest.fixture
def readout() -> tuple[Tensor, Tensor]:
    return handmade_readout()


@pytest.fixture
def expected_curve() -> tuple[float, ...]:
    """The exact accuracy (percent) after t = 1..4 steps on :func:`handmade_readout`."""
    return (50.0, 50.0, 75.0, 75.0)


@pytest.fixture
def snn() -> ReplaySNN:
    return ReplaySNN()


@pytest.fixture
def ann() -> SumANN:
    return SumANN()
