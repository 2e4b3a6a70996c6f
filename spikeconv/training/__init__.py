"""Training: ANN classifiers (the networks conversion starts from) and their checkpoints; direct SNN training and
the short fine-tune of a converted SNN (hybrid) in ``training.snn``."""

from spikeconv.training.ann import EpochRecord, TrainHistory, evaluate_classifier, train_ann
from spikeconv.training.augment import MAX_SHIFT, augment_batch, random_flip, random_shift
from spikeconv.training.checkpoint import (
    ANN_CHECKPOINT_FORMAT,
    ANN_CHECKPOINT_VERSION,
    AnnCheckpoint,
    ann_checkpoint_from_payload,
    load_ann_checkpoint,
    save_ann_checkpoint,
)
from spikeconv.training.config import AnnTrainConfig, Augment, Optimizer, Schedule
from spikeconv.training.snn.checkpoint import (
    SNN_CHECKPOINT_FORMAT,
    SNN_CHECKPOINT_VERSION,
    SnnCheckpoint,
    load_snn_checkpoint,
    save_snn_checkpoint,
    snn_from_checkpoint,
)
from spikeconv.training.snn.config import SnnLoss, SnnTrainConfig
from spikeconv.training.snn.finetune import FinetuneBudget, checkpoint_path, finetune_converted
from spikeconv.training.snn.history import SnnEpochRecord, SnnTrainHistory
from spikeconv.training.snn.loop import SnnTrainOutputs, SnnTrainResult, evaluate_snn, train_network, train_snn
from spikeconv.training.snn.losses import mean_readout_cross_entropy, per_step_mse, readout_loss
from spikeconv.training.snn.recipes import SnnRecipe, available_snn_recipes, register_snn_recipe, snn_recipe
from spikeconv.training.snn.spikify import spikify
from spikeconv.training.snn.tdbn import apply_tdbn_

__all__ = [
    "ANN_CHECKPOINT_FORMAT",
    "ANN_CHECKPOINT_VERSION",
    "AnnCheckpoint",
    "AnnTrainConfig",
    "Augment",
    "EpochRecord",
    "FinetuneBudget",
    "MAX_SHIFT",
    "Optimizer",
    "SNN_CHECKPOINT_FORMAT",
    "SNN_CHECKPOINT_VERSION",
    "Schedule",
    "SnnCheckpoint",
    "SnnEpochRecord",
    "SnnLoss",
    "SnnRecipe",
    "SnnTrainConfig",
    "SnnTrainHistory",
    "SnnTrainOutputs",
    "SnnTrainResult",
    "TrainHistory",
    "apply_tdbn_",
    "available_snn_recipes",
    "augment_batch",
    "evaluate_classifier",
    "evaluate_snn",
    "finetune_converted",
    "checkpoint_path",
    "ann_checkpoint_from_payload",
    "load_ann_checkpoint",
    "load_snn_checkpoint",
    "mean_readout_cross_entropy",
    "per_step_mse",
    "random_flip",
    "random_shift",
    "readout_loss",
    "register_snn_recipe",
    "save_ann_checkpoint",
    "save_snn_checkpoint",
    "snn_from_checkpoint",
    "snn_recipe",
    "spikify",
    "train_ann",
    "train_network",
    "train_snn",
]
