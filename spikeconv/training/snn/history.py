"""Per-epoch records of a direct SNN training run, with their JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spikeconv.errors import CheckpointError

__all__ = ["SnnEpochRecord", "SnnTrainHistory"]


@dataclass(frozen=True)
class SnnEpochRecord:
    """Statistics of one epoch (accuracies in percent, at the training T).

    Attributes:
        epoch: 1-based epoch number.
        train_loss: Mean loss over the epoch's training samples.
        train_accuracy: Accuracy on the training batches as seen during training.
        eval_accuracy: Accuracy on the evaluation data after the epoch, or None without it.
        seconds: Wall-clock time of the epoch, evaluation included.
        lr: Learning rate after the epoch's last step.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    eval_accuracy: float | None
    seconds: float
    lr: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnnEpochRecord:
        try:
            return cls(
                epoch=int(data["epoch"]),
                train_loss=float(data["train_loss"]),
                train_accuracy=float(data["train_accuracy"]),
                eval_accuracy=None if data["eval_accuracy"] is None else float(data["eval_accuracy"]),
                seconds=float(data["seconds"]),
                lr=float(data["lr"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"malformed epoch record {data!r} ({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class SnnTrainHistory:
    """All epoch records of one run, resumed parts included."""

    records: tuple[SnnEpochRecord, ...]

    @property
    def final_eval_accuracy(self) -> float | None:
        """Eval accuracy (percent) after the last epoch, or None."""
        return self.records[-1].eval_accuracy if self.records else None

    @property
    def mean_epoch_seconds(self) -> float | None:
        """Mean wall-clock seconds per recorded epoch, or None before the first epoch."""
        return sum(r.seconds for r in self.records) / len(self.records) if self.records else None
