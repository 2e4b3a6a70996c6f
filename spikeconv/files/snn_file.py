"""Save and load converted SNNs as safe, self-contained files.

An SNN file is a ``torch.save`` of tensors and primitives only (it loads with
``weights_only=True``)::

    {"format": "spikeconv-snn", "format_version": 1,
     "ann": <source record of the ANN>, "plan": <ThresholdPlan dict>,
     "convert": <ConvertConfig dict>, "state_dict": <SNN tensors>, "info": {...}}

Loading rebuilds the ANN, replays ingest -> prepare -> attach_plan -> convert with the recorded
plan and settings (no calibration data needed), then loads the SNN tensors.

:func:`load_snn` also reads the checkpoints of directly trained SNNs (``spikeconv train-snn``,
see :mod:`spikeconv.training.snn.checkpoint`), so that ``curve`` and the Python API treat both
kinds alike; a training checkpoint carries ``"format": "spikeconv-snn-trained"``. NIR graphs
(:mod:`spikeconv.files.nir_import`) load the same way, also without an ANN. It has no ANN
reference: the network
was never an ANN with those weights, so its ``LoadedSnn.ann`` is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spikeconv._io import atomic_write, safe_torch_load
from spikeconv.calibration import ThresholdPlan, attach_plan, prepare
from spikeconv.convert import ConvertConfig, convert
from spikeconv.errors import CheckpointError, ConfigError, SpikeconvError, first_line
from spikeconv.files.ann_record import canonical_graph, rebuild_ann
from spikeconv.files.nir_import import is_nir_file, load_nir_network
from spikeconv.models import build_model
from spikeconv.neurons import SpikingNetwork
from spikeconv.training import SNN_CHECKPOINT_FORMAT, load_snn_checkpoint, snn_from_checkpoint
from spikeconv.training.snn.batchnorm import add_batchnorm

SNN_FORMAT = "spikeconv-snn"
SNN_VERSION = 1


@dataclass(frozen=True)
class LoadedSnn:
    """An SNN with the ANN it came from (None if directly trained) and the facts recorded with it.

    ``info`` always holds ``input_shape``, ``num_classes`` and ``preprocessing``; ``calibrated`` is
    the calibrated ANN graph the SNN was converted from (None if directly trained).
    """

    snn: SpikingNetwork
    ann: torch.nn.Module | None
    info: dict[str, Any]
    calibrated: torch.fx.GraphModule | None = None


def build_snn(graph: torch.fx.GraphModule, plan: ThresholdPlan, config: ConvertConfig) -> SpikingNetwork:
    """Convert a canonical ANN graph with a known plan (no calibration)."""
    return convert(attach_plan(prepare(graph), plan), config)


def save_snn(path: str | Path, snn: SpikingNetwork, *, ann_source: dict, info: dict) -> None:
    """Write ``snn`` and the recipe that rebuilds it to ``path`` (atomically)."""
    payload = {
        "format": SNN_FORMAT,
        "format_version": SNN_VERSION,
        "ann": ann_source,
        "plan": snn.metadata["plan"],
        "convert": snn.metadata["convert"],
        **({"operators": snn.metadata["operators"]} if "operators" in snn.metadata else {}),  # transformers' spike-equivalent ops
        "state_dict": {k: v.detach().cpu() for k, v in snn.state_dict().items()},
        "info": info,
    }
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def _read(path: Path) -> dict:
    payload = safe_torch_load(path, what="SNN file")
    if not isinstance(payload, dict) or payload.get("format") not in (SNN_FORMAT, SNN_CHECKPOINT_FORMAT):
        raise CheckpointError(
            f"{path} is not a spikeconv SNN file; make one with `spikeconv convert` or `spikeconv train-snn`"
        )
    version = payload.get("format_version", 0)
    if type(version) is not int:
        raise CheckpointError(f"{path} has format_version {version!r}, not a number; the SNN file is damaged, convert the model again")
    if version > SNN_VERSION:
        raise CheckpointError(f"{path} was written by a newer spikeconv; upgrade spikeconv")
    return payload


def _is_trained(payload: dict) -> bool:
    return payload.get("format") == SNN_CHECKPOINT_FORMAT


def load_snn(path: str | Path) -> LoadedSnn:
    """Load an SNN file written by :func:`save_snn`, a directly trained SNN checkpoint, or a NIR graph (``.nir``)."""
    if Path(path).is_file() and is_nir_file(path):
        snn, info = load_nir_network(path)
        return LoadedSnn(snn=snn, ann=None, info=_checked_info(Path(path), info))
    payload = _read(Path(path))
    try:
        return _load_trained(Path(path)) if _is_trained(payload) else _rebuild(Path(path), payload)
    except SpikeconvError:
        raise
    except Exception as exc:  # a damaged or hand-edited record fails anywhere in the replay
        again = "train it again with train-snn" if _is_trained(payload) else "convert the model again"
        raise CheckpointError(f"{path} is a damaged SNN file ({type(exc).__name__}: {first_line(exc)}); {again}") from None


def _rebuild(path: Path, payload: dict) -> LoadedSnn:
    """Replay ingest -> prepare -> attach_plan -> convert from the recorded ANN, plan and settings."""
    source = payload.get("ann")
    if not isinstance(source, dict) or not isinstance(payload.get("plan"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path} lacks its ANN record, plan or tensors; convert the model again")
    label = f"{path} (its embedded {source.get('kind')} model {source.get('name', '')})".replace(" )", ")")
    ann = rebuild_ann(source, label=label)
    calibrated = attach_plan(prepare(canonical_graph(source, ann, label=label)), ThresholdPlan.from_dict(payload["plan"]))
    snn = convert(calibrated, ConvertConfig.from_dict(payload["convert"]))
    try:
        snn.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: stored SNN tensors do not fit: {first_line(exc, limit=None)}") from None
    return LoadedSnn(snn=snn.eval(), ann=ann, info=_checked_info(path, payload.get("info")), calibrated=calibrated)


def _checked_info(path: Path, info: Any) -> dict[str, Any]:
    """The info record, with the facts every reader of an SNN file uses (input shape, classes) checked."""
    info = info if isinstance(info, dict) else {}
    shape, classes = info.get("input_shape"), info.get("num_classes")
    valid_shape = isinstance(shape, (list, tuple)) and bool(shape) and all(type(s) is int and s > 0 for s in shape)
    if not valid_shape or type(classes) is not int or classes < 1:
        raise CheckpointError(f"{path}: its info record lacks a valid input_shape or num_classes; convert the model again")
    return dict(info)


def model_from_arch(arch: Mapping[str, Any], *, where: str = "arch") -> torch.nn.Module:
    """Build the (untrained) ANN a training checkpoint's ``arch`` record describes.

    ``arch`` holds the :func:`spikeconv.models.build_model` arguments: ``name`` (a preset or layer
    notation; ``notation`` is read too), ``input_shape``, ``num_classes``, and optionally
    ``mean``/``std``, ``batch_norm`` (default True) and ``dropout``.

    Raises:
        CheckpointError: A key is missing; the message names ``where``.
        ConfigError: The name is neither a preset nor layer notation, or the shapes do not fit.
    """
    name = arch.get("name", arch.get("notation"))
    missing = [key for key, value in (("name", name), ("input_shape", arch.get("input_shape")),
                                      ("num_classes", arch.get("num_classes"))) if value is None]  # fmt: skip
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(missing)}, so its network cannot be rebuilt; retrain with train-snn")
    return build_model(str(name), input_shape=tuple(int(v) for v in arch["input_shape"]), num_classes=int(arch["num_classes"]),
                       mean=arch.get("mean"), std=arch.get("std"), batch_norm=bool(arch.get("batch_norm", True)),
                       dropout=float(arch.get("dropout", 0.0)))  # fmt: skip


def trained_preprocessing(arch: Mapping[str, Any], source: Mapping[str, Any] | None) -> dict | None:
    """The normalisation built into a trained network: its preset's mean/std, or its model file's own."""
    if source is not None:
        found = source.get("preprocessing") or source.get("normalization")
        return None if not found else {"mean": list(found["mean"]), "std": list(found["std"])}
    return None if arch.get("mean") is None else {"mean": list(arch["mean"]), "std": list(arch["std"])}


def _load_trained(path: Path) -> LoadedSnn:
    """A directly trained SNN checkpoint as a LoadedSnn without an ANN reference."""
    checkpoint = load_snn_checkpoint(path)
    arch = checkpoint.arch
    source = checkpoint.ann_source
    try:
        if source is not None:  # a user's network, trained as its own graph: rebuilt as conversion rebuilds it
            model = rebuild_ann(source, label=f"{path} (its embedded {source.get('kind')} model {arch.get('file', '')})")
            model, added = add_batchnorm(model) if arch.get("batch_norm_added") else (model, [])
            if added != list(arch.get("batch_norm_added") or []):
                raise CheckpointError(f"{path}: its network does not rebuild with the BatchNorm layers it was trained with")
        else:
            model = model_from_arch(arch, where=f"{path}: arch")
    except (ConfigError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its arch record does not build a network ({error})") from None
    snn = snn_from_checkpoint(checkpoint, model)
    last = checkpoint.history[-1] if checkpoint.history else None
    info = {
        "origin": "train-snn",
        "input_shape": [int(v) for v in arch["input_shape"]],
        "num_classes": int(arch["num_classes"]),
        "preprocessing": trained_preprocessing(arch, source),
        "training": {"config": checkpoint.config.to_dict(), "epochs_done": checkpoint.epoch,
                     "test_accuracy": None if last is None else last.eval_accuracy},  # fmt: skip
        "metadata": dict(checkpoint.metadata),
    }
    return LoadedSnn(snn=snn, ann=None, info=info)
