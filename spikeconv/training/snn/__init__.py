"""Direct SNN training: spikify a ReLU network, train it through time (BPTT), checkpoint it.

One module per concern: ``config`` (SnnTrainConfig, SnnLoss), ``spikify`` (ReLU network ->
trainable SpikingNetwork), ``recipes`` (papers' settings by name), ``tdbn`` (threshold-dependent BatchNorm init), ``losses``, ``loop``
(train_snn, evaluate_snn), ``history``, ``checkpoint``, and ``finetune`` (hybrid conversion's short
fine-tune of a converted SNN at its T). ``spikeconv.training`` re-exports them.
"""

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
    "FinetuneBudget",
    "SNN_CHECKPOINT_FORMAT",
    "SNN_CHECKPOINT_VERSION",
    "SnnCheckpoint",
    "SnnEpochRecord",
    "SnnLoss",
    "SnnRecipe",
    "SnnTrainConfig",
    "SnnTrainHistory",
    "SnnTrainOutputs",
    "SnnTrainResult",
    "apply_tdbn_",
    "available_snn_recipes",
    "checkpoint_path",
    "evaluate_snn",
    "finetune_converted",
    "load_snn_checkpoint",
    "mean_readout_cross_entropy",
    "per_step_mse",
    "readout_loss",
    "register_snn_recipe",
    "save_snn_checkpoint",
    "snn_from_checkpoint",
    "snn_recipe",
    "spikify",
    "train_network",
    "train_snn",
]
