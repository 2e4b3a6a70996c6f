"""The ANN checkpoint file: everything ``convert`` needs to rebuild a trained model.

A checkpoint is a ``torch.save`` of a dict that holds only tensors and primitives, so it loads
with ``torch.load(..., weights_only=True)`` and never executes code from the file::

    {
        "format": "spikeconv-ann", "format_version": 1,
        "arch": "fmnist-cnn",                   # preset name or layer notation
        "input_shape": (1, 28, 28), "num_classes": 10,
        "normalization": {"mean": (...), "std": (...)} or None,
        "batch_norm": True,
        "activation": {"kind": "qcfs", "levels": 4, ...} or None (ReLU),
        "state_dict": {name: tensor},           # CPU tensors
        "metadata": {...},                      # JSON-like: dataset, accuracy, config, command,
    }                                           # torch_version (added automatically)

The model is rebuilt with ``spikeconv.models.build_model(arch, input_shape=..., num_classes=...,
mean=..., std=..., batch_norm=...)`` and ``load_state_dict(state_dict)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikeconv._io import atomic_write, safe_torch_load
from spikeconv.errors import CheckpointError, ConfigError, first_line

__all__ = [
    "ANN_CHECKPOINT_FORMAT",
    "ANN_CHECKPOINT_VERSION",
    "AnnCheckpoint",
    "load_ann_checkpoint",
    "save_ann_checkpoint",
]

ANN_CHECKPOINT_FORMAT = "spikeconv-ann"
ANN_CHECKPOINT_VERSION = 1
_REQUIRED_KEYS = ("arch", "input_shape", "num_classes", "batch_norm", "state_dict")


@dataclass(frozen=True)
class AnnCheckpoint:
    """A loaded ANN checkpoint.

    Attributes:
        arch: Model preset name or layer notation.
        input_shape: ``(C, H, W)``.
        num_classes: Classifier width.
        mean: Per-channel input means of the model's InputNormalization, or None.
        std: Per-channel input standard deviations, or None.
        batch_norm: Whether the model was built with batch norm.
        state_dict: The model's parameters and buffers (CPU tensors).
        metadata: JSON-like information about the run (dataset, accuracy, config, ...).
        format_version: Version of the file format.
        activation: The hidden activation if not ReLU (e.g. ``{"kind": "qcfs", "levels": 4}``).
    """

    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    batch_norm: bool
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = ANN_CHECKPOINT_VERSION
    activation: dict[str, Any] | None = None


def save_ann_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    metadata: dict[str, Any],
    activation: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights and how to rebuild it to ``path`` (atomically).

    ``batch_norm`` is recorded from the model itself (whether it has BatchNorm layers), and
    ``metadata["torch_version"]`` is filled in unless given.

    Raises:
        ConfigError: Inconsistent arguments (mean without std, bad shapes) or metadata that is
            not JSON-like (only dict/list/tuple/str/int/float/bool/None are allowed).
    """
    if not isinstance(arch, str) or not arch:
        raise ConfigError(f"checkpoint arch must be a non-empty string, got {arch!r}")
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std for the checkpoint's normalisation, or neither")
    if not isinstance(metadata, dict):
        raise ConfigError(f"checkpoint metadata must be a dict, got {type(metadata).__name__}")
    _check_json_like(metadata, "metadata")
    _check_json_like(activation, "activation")
    payload = {
        "format": ANN_CHECKPOINT_FORMAT,
        "format_version": ANN_CHECKPOINT_VERSION,
        "arch": arch,
        "input_shape": tuple(int(v) for v in input_shape),
        "num_classes": int(num_classes),
        "normalization": None
        if mean is None or std is None
        else {"mean": tuple(float(v) for v in mean), "std": tuple(float(v) for v in std)},
        "batch_norm": any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()),
        "activation": activation,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": {"torch_version": str(torch.__version__), **metadata},
    }
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def load_ann_checkpoint(path: str | os.PathLike[str]) -> AnnCheckpoint:
    """Read a checkpoint written by :func:`save_ann_checkpoint` (with ``weights_only=True``).

    Raises:
        CheckpointError: The file is missing, not a torch file, corrupt, holds pickled Python
            objects, or is not a spikeconv ANN checkpoint. The message is one line.
    """
    return ann_checkpoint_from_payload(_load_weights_only(Path(path)), path)


def ann_checkpoint_from_payload(payload: Any, path: str | os.PathLike[str]) -> AnnCheckpoint:
    """Check and unpack what a checkpoint file held (already read with ``weights_only=True``); ``path`` names it in messages."""
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(
            f"{path} is not a spikeconv ANN checkpoint (no 'format' key; a bare state_dict?); "
            "write it with spikeconv's train command or save_ann_checkpoint"
        )
    if payload["format"] != ANN_CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has format {payload['format']!r}, expected {ANN_CHECKPOINT_FORMAT!r}; "
            "pass an ANN checkpoint"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= ANN_CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}; this spikeconv reads versions up to "
            f"{ANN_CHECKPOINT_VERSION}, so upgrade spikeconv"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; the checkpoint is incomplete")
    return _to_checkpoint(payload, path, version)


def _load_weights_only(path: Path) -> Any:
    """``torch.load`` with weights_only=True, turning every failure into a CheckpointError."""
    return safe_torch_load(path)


def _to_checkpoint(
    payload: dict[str, Any], path: str | os.PathLike[str], version: int
) -> AnnCheckpoint:
    """Validate field types and build the dataclass."""
    input_shape = payload["input_shape"]
    if not isinstance(input_shape, tuple | list) or len(input_shape) != 3:
        raise CheckpointError(f"{path}: input_shape {input_shape!r} is not (C, H, W)")
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise CheckpointError(f"{path}: state_dict is not a mapping of names to tensors")
    normalization = payload.get("normalization")
    if normalization is not None and not (
        isinstance(normalization, dict) and {"mean", "std"} <= set(normalization)
    ):
        raise CheckpointError(f"{path}: normalization must hold 'mean' and 'std' or be None")
    activation = payload.get("activation")
    if activation is not None and not isinstance(activation, dict):
        raise CheckpointError(f"{path}: activation must be a dict or None, not {type(activation).__name__}; the checkpoint is damaged")
    try:
        return AnnCheckpoint(
            arch=str(payload["arch"]),
            input_shape=tuple(int(v) for v in input_shape),  # type: ignore[arg-type]
            num_classes=int(payload["num_classes"]),
            mean=None if normalization is None else tuple(float(v) for v in normalization["mean"]),
            std=None if normalization is None else tuple(float(v) for v in normalization["std"]),
            batch_norm=bool(payload["batch_norm"]),
            state_dict=dict(state_dict),
            metadata=dict(payload.get("metadata") or {}),
            format_version=version,
            activation=activation,
        )
    except Exception as exc:  # a field of the wrong type: int([...]), float("x"), dict(3)
        raise CheckpointError(f"{path} is not a readable spikeconv ANN checkpoint ({type(exc).__name__}: {first_line(exc)}); "
                              "write it again with train-ann or save_ann_checkpoint") from None  # fmt: skip


def _check_json_like(value: Any, where: str) -> None:
    """Reject values that weights_only loading (or JSON) could not represent."""
    # Exact types: subclasses (IntEnum, torch's TorchVersion str, ...) pickle as classes that
    # weights_only loading refuses.
    if value is None or type(value) in (str, int, float, bool):
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise ConfigError(f"{where} has a non-string key {key!r}; use str keys")
            _check_json_like(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_json_like(item, f"{where}[{index}]")
        return
    raise ConfigError(
        f"{where} holds a {type(value).__name__}; checkpoint metadata may only contain "
        "dict/list/tuple/str/int/float/bool/None (convert it, e.g. with str())"
    )
