"""What an ANN file load takes (:class:`ModelSpec`) and gives (:class:`LoadedAnn`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.ingest.preprocessing import Preprocessing


@dataclass(frozen=True)
class ModelSpec:
    """What the model file does not say itself (the CLI's ``--arch``, ``--model-factory``, ... flags).

    Attributes:
        arch: Preset name or layer notation for a state_dict file.
        factory: ``FILE.py:FUNCTION`` or ``package.module:FUNCTION`` returning an ``nn.Module``.
        num_classes: Number of outputs, where the weights do not show it.
        input_shape: ``(C, H, W)`` of one sample where the file does not fix it.
        preprocessing: Normalisation the model expects on [0, 1] pixels (None: none).
        trust_pickle: Load pickled objects (a whole ``nn.Module``); this can run code from the file.
    """

    arch: str | None = None
    factory: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    preprocessing: Preprocessing | None = None
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        if self.arch is not None and self.factory is not None:
            raise ConfigError("give --arch or --model-factory, not both: each says how to build the network")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"--num-classes must be >= 1, got {self.num_classes}")
        if self.input_shape is not None and (not self.input_shape or any(int(s) < 1 for s in self.input_shape)):
            raise ConfigError(f"--input-shape must be positive sizes C,H,W, got {self.input_shape}")


@dataclass(frozen=True)
class LoadedAnn:
    """A trained ANN ready to convert.

    Attributes:
        model: The module (eval mode), taking [0, 1] pixels (its preprocessing included).
        input_shape: ``(C, H, W)`` of one sample.
        num_classes: Number of outputs.
        preprocessing: ``{"mean": [...], "std": [...]}`` built into the model, or None.
        source: Record that rebuilds ``model`` (see :func:`rebuild_ann`).
        metadata: What the file says about how it was made (accuracy, command, ...).
        description: What was read, for messages (``"ONNX file"``, ``"state_dict + --arch fmnist-cnn"``).
        input_shape_from: Where ``input_shape`` came from: ``"file"``, ``"--input-shape"`` or ``"data"``.
    """

    model: nn.Module
    input_shape: tuple[int, ...]
    num_classes: int
    preprocessing: dict | None
    source: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = "spikeconv checkpoint"
    input_shape_from: str = "file"
