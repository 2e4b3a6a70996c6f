"""The directly trained SNN checkpoint: weights, how to rebuild them, and how to resume.

A ``torch.save`` of a dict holding only tensors and primitives, read back with
``torch.load(..., weights_only=True)``::

    {
        "format": "spikeconv-snn-trained", "format_version": 1,
        "arch": {...},                  # opaque JSON-like dict from the caller (rebuilds the ANN)
        "ann_source": {...} | None,     # optional: the source record of a user's ANN file whose graph was trained
        "config": {...},                # SnnTrainConfig.to_dict(), neuron included
        "neuron": {...}, "timesteps": T,  # repeated from config for readers of the file
        "epoch": 3,                     # completed epochs
        "history": [{...}, ...],        # SnnEpochRecord dicts
        "state_dict": {name: tensor},   # the SpikingNetwork's (CPU tensors)
        "training_state": {"optimizer": ..., "scheduler": ... | None,
                           "rng": {"torch": ..., "generator": ..., "cuda": [...] | None}} | None,
        "metadata": {...},              # JSON-like; torch_version added
    }

The network is rebuilt by building the ANN from ``arch`` (or from ``ann_source``: a network the user
brought, trained from its own ingested graph) -- the caller's job, since training does not import
models or files -- then :func:`snn_from_checkpoint`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikeconv._io import atomic_write
from spikeconv.errors import CheckpointError, ConfigError, SpikeconvError, first_line
from spikeconv.neurons import NeuronConfig, SpikingNetwork
from spikeconv.training.checkpoint import _check_json_like, _load_weights_only
from spikeconv.training.snn.config import SnnTrainConfig
from spikeconv.training.snn.history import SnnEpochRecord
from spikeconv.training.snn.spikify import spikify

__all__ = [
    "SNN_CHECKPOINT_FORMAT",
    "SNN_CHECKPOINT_VERSION",
    "SnnCheckpoint",
    "load_snn_checkpoint",
    "save_snn_checkpoint",
    "snn_from_checkpoint",
]

SNN_CHECKPOINT_FORMAT = "spikeconv-snn-trained"
SNN_CHECKPOINT_VERSION = 1
_REQUIRED = ("arch", "config", "epoch", "history", "state_dict")


@dataclass(frozen=True)
class SnnCheckpoint:
    """A directly trained SNN, as saved after an epoch.

    Attributes:
        config: The training configuration (neuron and training T included).
        arch: The caller's opaque, JSON-like description of the ANN architecture.
        state_dict: The SpikingNetwork's parameters and buffers (CPU tensors).
        epoch: Completed epochs.
        history: Records of the completed epochs.
        training_state: Optimizer, scheduler and RNG states for resuming, or None.
        metadata: JSON-like facts about the run.
        format_version: Version of the file format.
        ann_source: The source record (tensors and primitives, as converted SNN files embed it) of the
            user's ANN whose graph was trained, or None for a network built from ``arch``.
    """

    config: SnnTrainConfig
    arch: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    epoch: int
    history: tuple[SnnEpochRecord, ...] = ()
    training_state: dict[str, Any] | None = field(default=None, repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = SNN_CHECKPOINT_VERSION
    ann_source: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def neuron(self) -> NeuronConfig:
        """The neuron configuration at every former ReLU."""
        return self.config.neuron

    @property
    def timesteps(self) -> int:
        """The T the network was trained at."""
        return self.config.timesteps


def save_snn_checkpoint(path: str | os.PathLike[str], checkpoint: SnnCheckpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a reader never sees half a file).

    Raises:
        ConfigError: ``arch`` or ``metadata`` holds values that are not JSON-like.
    """
    if not isinstance(checkpoint.arch, dict):
        raise ConfigError(f"checkpoint arch must be a dict, got {type(checkpoint.arch).__name__}")
    _check_json_like(checkpoint.arch, "arch")
    _check_json_like(checkpoint.metadata, "metadata")
    payload = {
        "format": SNN_CHECKPOINT_FORMAT,
        "format_version": SNN_CHECKPOINT_VERSION,
        "arch": checkpoint.arch,
        "config": checkpoint.config.to_dict(),
        "neuron": checkpoint.config.neuron.to_dict(),
        "timesteps": checkpoint.config.timesteps,
        "epoch": int(checkpoint.epoch),
        "history": [record.to_dict() for record in checkpoint.history],
        "state_dict": {k: v.detach().cpu().clone() for k, v in checkpoint.state_dict.items()},
        "training_state": checkpoint.training_state,
        "ann_source": checkpoint.ann_source,
        "metadata": {"torch_version": str(torch.__version__), **checkpoint.metadata},
    }
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def load_snn_checkpoint(path: str | os.PathLike[str]) -> SnnCheckpoint:
    """Read a checkpoint written by :func:`save_snn_checkpoint` (``weights_only=True``).

    Raises:
        CheckpointError: Missing, unreadable or foreign file, newer format, or invalid fields;
            the message is one line naming the file.
    """
    payload = _load_weights_only(Path(path))
    if not isinstance(payload, dict) or payload.get("format") != SNN_CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a spikeconv SNN training checkpoint (format {found!r}); pass a file written by train-snn")
    version = payload.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= SNN_CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}; this spikeconv reads up to {SNN_CHECKPOINT_VERSION}, so upgrade spikeconv"
        )
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; the checkpoint is incomplete")
    try:
        config = SnnTrainConfig.from_dict(payload["config"])
        history = tuple(SnnEpochRecord.from_dict(record) for record in payload["history"])
    except Exception as error:  # SpikeconvError from the checks, TypeError/AttributeError from a record of the wrong type
        reason = str(error) if isinstance(error, SpikeconvError) else f"{type(error).__name__}: {first_line(error)}"
        raise CheckpointError(f"{path}: invalid training configuration or history ({reason})") from None
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: state_dict is not a mapping of names to tensors")
    try:
        return SnnCheckpoint(
            config=config,
            arch=dict(payload["arch"]),
            state_dict=dict(state_dict),
            epoch=int(payload["epoch"]),
            history=history,
            training_state=payload.get("training_state"),
            metadata=dict(payload.get("metadata") or {}),
            format_version=version,
            ann_source=_ann_source(payload.get("ann_source"), path),
        )
    except Exception as exc:  # a field of the wrong type: dict(3), int("x")
        raise CheckpointError(f"{path} is not a readable spikeconv SNN training checkpoint ({type(exc).__name__}: {first_line(exc)}); "
                              "train it again with train-snn") from None  # fmt: skip


def _ann_source(value: Any, path: Any) -> dict[str, Any] | None:
    if value is not None and not (isinstance(value, dict) and isinstance(value.get("kind"), str)):
        raise CheckpointError(f"{path}: its ann_source is not a source record; train it again with train-snn")
    return None if value is None else dict(value)


def snn_from_checkpoint(checkpoint: SnnCheckpoint, model: nn.Module) -> SpikingNetwork:
    """Rebuild the trained SpikingNetwork from ``model`` (the ANN built from ``checkpoint.arch``).

    The result is in eval mode, on ``model``'s device, with ``timesteps`` = the training T
    (any other T can be passed to ``snn(x, T)``).

    Raises:
        CheckpointError: ``model`` does not have the checkpoint's architecture.
    """
    snn = spikify(model, checkpoint.config.neuron, timesteps=checkpoint.config.timesteps)
    try:
        snn.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as error:
        first = first_line(error, limit=300)
        raise CheckpointError(f"the model does not match the checkpoint's architecture {checkpoint.arch!r} ({first})") from None
    snn.metadata["trained_epochs"] = checkpoint.epoch
    return snn.eval()
