"""Trained-ANN files -> torch modules, with what is needed to rebuild them later.

A *source record* is a dict of tensors and primitives that rebuilds the same ANN; SNN files embed
it so that a converted network can be reloaded with ``weights_only=True`` and no user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from spikeconv.errors import CheckpointError
from spikeconv.models import build_model
from spikeconv.training import load_ann_checkpoint

SPIKECONV_ANN = "spikeconv-ann"


@dataclass(frozen=True)
class LoadedAnn:
    """A trained ANN ready to convert.

    Attributes:
        model: The module (eval mode).
        input_shape: ``(C, H, W)`` of one sample.
        num_classes: Number of outputs.
        preprocessing: ``{"mean": [...], "std": [...]}`` built into the model, or None.
        source: Record that rebuilds ``model`` (see :func:`rebuild_ann`).
        metadata: What the file says about how it was made (accuracy, command, ...).
    """

    model: nn.Module
    input_shape: tuple[int, int, int]
    num_classes: int
    preprocessing: dict | None
    source: dict[str, Any]
    metadata: dict[str, Any]


def _from_spikeconv_record(record: dict[str, Any]) -> nn.Module:
    norm = record.get("normalization")
    model = build_model(
        record["arch"],
        input_shape=tuple(record["input_shape"]),
        num_classes=int(record["num_classes"]),
        mean=None if norm is None else norm["mean"],
        std=None if norm is None else norm["std"],
        batch_norm=bool(record["batch_norm"]),
    )
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"weights do not fit architecture {record['arch']!r}: {first}") from None
    return model.eval()


def rebuild_ann(source: dict[str, Any]) -> nn.Module:
    """Rebuild the ANN a source record describes."""
    kind = source.get("kind")
    if kind == SPIKECONV_ANN:
        return _from_spikeconv_record(source)
    raise CheckpointError(f"unknown ANN source kind {kind!r}; upgrade spikeconv")


def load_ann(path: str | Path) -> LoadedAnn:
    """Load a trained ANN file (a spikeconv checkpoint written by ``spikeconv train-ann``)."""
    checkpoint = load_ann_checkpoint(path)
    normalization = (
        None if checkpoint.mean is None else {"mean": list(checkpoint.mean), "std": list(checkpoint.std)}
    )
    source = {
        "kind": SPIKECONV_ANN,
        "arch": checkpoint.arch,
        "input_shape": list(checkpoint.input_shape),
        "num_classes": checkpoint.num_classes,
        "normalization": normalization,
        "batch_norm": checkpoint.batch_norm,
        "state_dict": checkpoint.state_dict,
    }
    return LoadedAnn(
        model=_from_spikeconv_record(source),
        input_shape=checkpoint.input_shape,
        num_classes=checkpoint.num_classes,
        preprocessing=normalization,
        source=source,
        metadata=checkpoint.metadata,
    )
