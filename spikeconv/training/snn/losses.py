"""Losses on a spiking network's per-step readout current ``[T, N, K]``.

The readout layer does not spike: its input current summed over steps is the accumulated
membrane, whose argmax is the prediction (InfLoR uses the accumulated output as logits). The
multi-threshold paper instead compares the output with a target at every step (its Eq. 6).
Label smoothing ε replaces the one-hot target by ``(1 − ε)·one_hot + ε/K`` in both, as torch's
``cross_entropy(label_smoothing=ε)`` does, so one option means the same thing whichever the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from spikeconv.errors import DataError
from spikeconv.training.snn.config import SnnLoss

__all__ = ["mean_readout_cross_entropy", "per_step_mse", "readout_loss", "readout_predictions"]


def _check_readout(readout: Tensor, labels: Tensor) -> None:
    if readout.dim() != 3 or readout.shape[1] != labels.shape[0]:
        raise DataError(f"the readout must be [T, N, K] with N = {labels.shape[0]} labels, got shape {tuple(readout.shape)}")


def mean_readout_cross_entropy(readout: Tensor, labels: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of the mean readout: ``CE((1/T)·Σ_t out[t], y)``, averaged over the batch."""
    _check_readout(readout, labels)
    return F.cross_entropy(readout.mean(0), labels, label_smoothing=label_smoothing)


def per_step_mse(readout: Tensor, labels: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Xu et al.'s Eq. 6 on the readout current: ``Σ_t ½·Σ_i (y_i − out_i[t])²``, batch mean.

    The target is one-hot (1 for the true class, 0 elsewhere) at every step; the paper's target
    coding was not recovered (methods.md §3.2). The sum over t follows the equation, so the loss
    grows with T.
    """
    _check_readout(readout, labels)
    classes = readout.shape[-1]
    target = F.one_hot(labels, classes).to(readout.dtype) * (1.0 - label_smoothing) + label_smoothing / classes
    return 0.5 * (readout - target.unsqueeze(0)).pow(2).sum(dim=(0, 2)).mean()


def readout_loss(readout: Tensor, labels: Tensor, kind: SnnLoss, *, label_smoothing: float = 0.0) -> Tensor:
    """The loss ``kind`` of a ``[T, N, K]`` readout against ``[N]`` integer labels (``label_smoothing`` ε in [0, 1))."""
    if kind is SnnLoss.PER_STEP_MSE:
        return per_step_mse(readout, labels, label_smoothing=label_smoothing)
    return mean_readout_cross_entropy(readout, labels, label_smoothing=label_smoothing)


def readout_predictions(readout: Tensor) -> Tensor:
    """The class with the largest accumulated readout, ``[N]`` (ties: lowest index).

    Summed in float64 (float32 on MPS), as ``timestep_accuracy_curve`` does, so both agree.
    """
    dtype = torch.float32 if readout.device.type == "mps" else torch.float64
    return torch.argmax(readout.to(dtype).sum(0), dim=-1)
