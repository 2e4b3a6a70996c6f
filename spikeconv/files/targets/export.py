"""``spikeconv export --target NAME``: check an SNN against a target, write the file its importer runs.

The check says what the export changes or why it refuses: the target must run the network's own
neuron (reset, membranes starting at 0, spikes per step, membrane floor) — a network converted for
another target whose neuron is the same one exports unchanged, a network whose thresholds are not
folded yet is folded here (the same values in exact arithmetic; float rounding may move a spike),
anything else is refused in one line that names what the target cannot run and the
``convert --target`` that makes a network it can.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from spikeconv._io import atomic_write
from spikeconv.convert.fold import fold_thresholds_
from spikeconv.convert.target_rules import TargetRules
from spikeconv.errors import ConversionError
from spikeconv.files.nir_shapes import sample_shapes
from spikeconv.files.targets.graph import target_graph
from spikeconv.files.targets.order import depth_first_order_
from spikeconv.files.targets.registry import ExportTarget, export_target
from spikeconv.neurons import IFNeuron, Reset, SinCorrection, SpikingNetwork, encoding_to_dict
from spikeconv.neurons.floored_if import FlooredIFNeuron

__all__ = ["TARGET_FORMAT", "converted_for", "export_for_target", "target_ready"]

TARGET_FORMAT = "spikeconv-nir-target"
"""Graph metadata ``spikeconv.format`` of a file written for a consumer library (spikeconv does not read it back)."""


def converted_for(snn: SpikingNetwork) -> TargetRules | None:
    """The target an SNN was converted for (``convert --target``), or None."""
    record = (snn.metadata or {}).get("convert", {}) if isinstance(snn.metadata, dict) else {}
    found = record.get("target") if isinstance(record, dict) else None
    try:
        return TargetRules.from_dict(found) if isinstance(found, dict) else None
    except Exception:  # a hand-edited record: treated as no target
        return None


def _neuron_problems(neuron: Any, rules: TargetRules) -> list[str]:
    if not isinstance(neuron, IFNeuron) or type(neuron).__name__ == "BistableIFNeuron":
        return [f"{type(neuron).__name__} neurons"]
    problems = []
    if neuron.reset is not rules.reset:
        problems.append(f"reset {neuron.reset.value} (it resets {'by subtraction' if rules.reset is Reset.SUBTRACT else 'to 0'})")
    start = neuron.v_init * neuron.threshold.reshape(-1)[0] + neuron.v_offset
    if not rules.initial_membrane and bool((start != 0).any()):
        problems.append("membranes that start away from 0 (its start at 0)")
    if neuron.max_spikes != rules.max_spikes:
        problems.append(f"{neuron.max_spikes} spike(s) per step (it fires {rules.spikes_text})")
    if neuron.sin_correction is not SinCorrection.NONE:
        problems.append("retracted spikes")
    floored = isinstance(neuron, FlooredIFNeuron)
    if floored != (rules.membrane_floor is not None) or (floored and float(neuron.floor) != rules.membrane_floor):
        floor = rules.membrane_floor
        problems.append("a membrane floor at −θ (it has none)" if floored else f"no membrane floor (it floors at −{floor:g}·θ)")
    return problems


def target_ready(snn: SpikingNetwork, target: ExportTarget, *, where: str = "the SNN") -> tuple[SpikingNetwork, list[str]]:
    """``snn`` as ``target`` runs it (thresholds folded if they were not) and what that changed.

    Raises:
        ConversionError: The target cannot run the network's neurons (one line: what, and the convert that fixes it).
    """
    rules = target.rules
    origin = converted_for(snn)
    problems: list[str] = []
    for name, neuron in snn.neurons():
        problems += [f"{p} at {name}" for p in _neuron_problems(neuron, rules)][:1]
        if problems:
            break
    made_for = f"converted for {origin.name}" if origin is not None else "converted without --target"
    if problems:
        raise ConversionError(f"{where} was {made_for}; {target.library} cannot run {problems[0]}: convert it with "
                              f"--target {target.name}")  # fmt: skip
    changes = []
    if origin is not None and origin.name != target.name:
        changes.append(f"{made_for}; {target.library} runs the same neuron")
    if not all(bool((neuron.threshold == 1.0).all()) for _, neuron in snn.neurons()):
        snn = copy.deepcopy(snn)
        fold_thresholds_(snn.body, rules)
        changes.append("thresholds folded into the weights at export (the same network in exact arithmetic; float rounding "
                       "may move a spike)")  # fmt: skip
    return snn, changes


def _metadata(target: ExportTarget, snn: SpikingNetwork, info: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    return {"spikeconv": {
        "format": TARGET_FORMAT, "target": target.name, "library": target.library, "importer": target.importer,
        "conventions": json.dumps(dict(target.conventions)), "changes": json.dumps(changes),
        "readout": "Output is the readout layer's current at each step (divided by its integer scale where --weight-bits); "
                   "the prediction after t steps is the argmax of the sum of the first t outputs",
        "input_shape": json.dumps([int(s) for s in info["input_shape"]]), "num_classes": int(info["num_classes"]),
        "timesteps": int(snn.timesteps), "encoding": json.dumps(encoding_to_dict(snn.encoding)),
        "info": json.dumps(json.loads(json.dumps(info, default=str)), sort_keys=True),
    }}  # fmt: skip


def _without_v_reset(data: bytes) -> bytes:
    """The file as nir 1.0.4 reads it: its ``IF`` nodes have no ``v_reset`` (the writer's are all 0)."""
    import h5py

    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as handle:
        nodes = handle["node/nodes"]
        for name in nodes:
            group = nodes[name]
            if "v_reset" in group and group["type"][()] in (b"IF", "IF"):
                if np.any(group["v_reset"][()] != 0):
                    raise ConversionError(f"node {name}: a non-zero v_reset, which nir 1.0.4 cannot store")
                del group["v_reset"]
    return buffer.getvalue()


def export_for_target(snn: SpikingNetwork, path: str | Path, *, info: dict[str, Any], target: str,
                      where: str = "the SNN") -> dict[str, Any]:  # fmt: skip
    """Write ``snn`` for ``target`` at ``path`` (atomically) and say what the file holds and what changed.

    Returns:
        ``{"target", "library", "nodes", "edges", "neurons", "node_types", "changes"}``.

    Raises:
        ConversionError / ConfigError: The target cannot run the network (one line), or an unknown target.
    """
    import nir

    chosen = export_target(target)
    if chosen.rules is None:
        from spikeconv.files.nir_export import export_nir

        return {"target": chosen.name, "library": chosen.library, "changes": [], **export_nir(snn, path, info=info)}
    ready, changes = target_ready(snn, chosen, where=where)
    input_shape = tuple(int(s) for s in info["input_shape"])
    graph = target_graph(ready, chosen.rules, chosen.dialect, input_shape=input_shape, shapes=sample_shapes(ready, input_shape),
                         metadata=_metadata(chosen, ready, info, changes))  # fmt: skip
    if chosen.depth_first:
        depth_first_order_(graph, chosen.library)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    data = _without_v_reset(buffer.getvalue()) if chosen.nir_1_0_4 else buffer.getvalue()
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    types: dict[str, int] = {}
    for node in graph.nodes.values():
        types[type(node).__name__] = types.get(type(node).__name__, 0) + 1
    return {"target": chosen.name, "library": chosen.library, "nodes": len(graph.nodes), "edges": len(graph.edges),
            "neurons": sum(1 for _ in ready.neurons()), "node_types": dict(sorted(types.items())), "changes": changes}  # fmt: skip
