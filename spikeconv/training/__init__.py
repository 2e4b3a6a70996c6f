"""Training: ANN classifiers (the networks conversion starts from) and their checkpoints."""

from spikeconv.training.ann import EpochRecord, TrainHistory, evaluate_classifier, train_ann
from spikeconv.training.augment import MAX_SHIFT, augment_batch, random_flip, random_shift
from spikeconv.training.checkpoint import (
    ANN_CHECKPOINT_FORMAT,
    ANN_CHECKPOINT_VERSION,
    AnnCheckpoint,
    load_ann_checkpoint,
    save_ann_checkpoint,
)
from spikeconv.training.config import AnnTrainConfig, Augment, Optimizer, Schedule

__all__ = [
    "ANN_CHECKPOINT_FORMAT",
    "ANN_CHECKPOINT_VERSION",
    "MAX_SHIFT",
    "AnnCheckpoint",
    "AnnTrainConfig",
    "Augment",
    "EpochRecord",
    "Optimizer",
    "Schedule",
    "TrainHistory",
    "augment_batch",
    "evaluate_classifier",
    "load_ann_checkpoint",
    "random_flip",
    "random_shift",
    "save_ann_checkpoint",
    "train_ann",
]
