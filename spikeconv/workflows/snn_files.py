"""Save and load converted SNNs as safe, self-contained files.

An SNN file is a ``torch.save`` of tensors and primitives only (it loads with
``weights_only=True``)::

    {"format": "spikeconv-snn", "format_version": 1,
     "ann": <source record of the ANN>, "plan": <ThresholdPlan dict>,
     "convert": <ConvertConfig dict>, "state_dict": <SNN tensors>, "info": {...}}

Loading rebuilds the ANN, replays ingest -> prepare -> attach_plan -> convert with the recorded
plan and settings (no calibration data needed), then loads the SNN tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spikeconv._io import atomic_write, safe_torch_load
from spikeconv.calibration import ThresholdPlan, attach_plan, prepare
from spikeconv.convert import ConvertConfig, convert
from spikeconv.errors import CheckpointError
from spikeconv.neurons import SpikingNetwork
from spikeconv.workflows.ann_files import canonical_graph, rebuild_ann

SNN_FORMAT = "spikeconv-snn"
SNN_VERSION = 1


@dataclass(frozen=True)
class LoadedSnn:
    """A converted SNN with the ANN it came from and the facts recorded at conversion."""

    snn: SpikingNetwork
    ann: torch.nn.Module
    info: dict[str, Any]


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
        "state_dict": {k: v.detach().cpu() for k, v in snn.state_dict().items()},
        "info": info,
    }
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def _read(path: Path) -> dict:
    payload = safe_torch_load(path, what="SNN file")
    if not isinstance(payload, dict) or payload.get("format") != SNN_FORMAT:
        raise CheckpointError(
            f"{path} is not a spikeconv SNN file; convert a model first with `spikeconv convert`"
        )
    if payload.get("format_version", 0) > SNN_VERSION:
        raise CheckpointError(f"{path} was written by a newer spikeconv; upgrade spikeconv")
    return payload


def load_snn(path: str | Path) -> LoadedSnn:
    """Load an SNN file written by :func:`save_snn`."""
    payload = _read(Path(path))
    ann = rebuild_ann(payload["ann"])
    snn = build_snn(canonical_graph(payload["ann"], ann), ThresholdPlan.from_dict(payload["plan"]),
                    ConvertConfig.from_dict(payload["convert"]))  # fmt: skip
    try:
        snn.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: stored SNN tensors do not fit: {str(exc).splitlines()[0]}") from None
    return LoadedSnn(snn=snn.eval(), ann=ann, info=dict(payload.get("info", {})))
