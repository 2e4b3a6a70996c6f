"""Open a NIR file safely and find its structure: the neurons (by construction), the readout, an order.

See :mod:`spikeconv.files.nir_import` for how the structure is rebuilt into a SpikingNetwork.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeconv.errors import CheckpointError, ConversionError, SpikeconvError, first_line
from spikeconv.files.nir_common import NIR_KEY, check_hdf5_safe, is_hdf5, read_record


def is_nir_file(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file (what NIR files are)."""
    return is_hdf5(Path(path))


def read_nir(path: str | Path) -> Any:
    """The ``nir.NIRGraph`` in ``path``, after the HDF5 safety check; one line on any failure."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"NIR file {path} does not exist; check the path")
    check_hdf5_safe(path)
    try:
        graph = nir.read(path)
    except Exception as exc:  # nir raises KeyError/AssertionError/ValueError on anything it does not expect
        raise CheckpointError(f"{path} is not a NIR graph nir can read ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise CheckpointError(f"{path} holds a single NIR {type(graph).__name__}, not a graph")
    return graph


@dataclass
class _Neuron:
    """One neuron of the file: its core node, the thresholds, the reset and output scales (by name)."""

    core: str
    thresholds: list[str] = field(default_factory=list)
    reset: str | None = None
    out: str | None = None

    def members(self) -> list[str]:
        return [self.core, *self.thresholds, *([self.reset] if self.reset else []), *([self.out] if self.out else [])]


class _Reader:
    def __init__(self, graph: Any, where: str) -> None:
        import nir

        self.nir, self.graph, self.where = nir, graph, where
        self.nodes: dict[str, Any] = dict(graph.nodes)
        self.preds: dict[str, list[str]] = {name: [] for name in self.nodes}
        self.succs: dict[str, list[str]] = {name: [] for name in self.nodes}
        for source, target in graph.edges:
            if source not in self.nodes or target not in self.nodes:
                raise CheckpointError(f"{where}: edge {source} -> {target} names a node the graph lacks")
            self.preds[target].append(source)
            self.succs[source].append(target)
        for name, node in self.nodes.items():
            if isinstance(node, nir.NIRGraph):
                raise CheckpointError(f"{where}: node {name} is a nested NIR graph, which spikeconv does not read; flatten it")

    def of_type(self, *types: type) -> list[str]:
        return [name for name, node in self.nodes.items() if isinstance(node, types)]

    def fail(self, name: str, why: str) -> SpikeconvError:
        return ConversionError(f"{self.where}: node {name} ({type(self.nodes[name]).__name__}) {why}")

    # -- structure -------------------------------------------------------------------------------------------------------------

    def neurons(self) -> tuple[dict[str, _Neuron], str | None]:
        nir = self.nir
        found: dict[str, _Neuron] = {}
        readout = None
        outputs = self.of_type(nir.Output)
        for name in self.of_type(nir.I, nir.LI):
            fires = [s for s in self.succs[name] if isinstance(self.nodes[s], nir.Threshold)]
            if not fires:
                if isinstance(self.nodes[name], nir.I) and self.succs[name] and all(s in outputs for s in self.succs[name]):
                    readout = name
                    continue
                raise self.fail(name, "integrates without firing and does not feed the output; spikeconv cannot read it")
            found[name] = self._soft_neuron(name, fires)
        for name in self.of_type(nir.IF, nir.LIF):
            found[name] = _Neuron(core=name, out=self._amplitude(name, [name]))
        for name in self.of_type(nir.Threshold):
            if not any(name in n.thresholds for n in found.values()):
                raise self.fail(name, "is not fed by an integrator whose reset it drives; spikeconv reads Threshold only in a neuron")
        return found, readout

    def _soft_neuron(self, name: str, fires: list[str]) -> _Neuron:
        resets = [s for s in self.succs[fires[0]] if isinstance(self.nodes[s], self.nir.Scale) and self.succs[s] == [name]]
        if len(resets) != 1 or sorted(self.preds[resets[0]]) != sorted(fires) or any(self.preds[f] != [name] for f in fires):
            raise self.fail(name, "fires without a reset back into it (Threshold -> Scale -> the integrator); spikeconv reads soft "
                                  "reset only in that form")  # fmt: skip
        ordered = sorted(fires, key=lambda f: float(np.mean(self.nodes[f].threshold)))
        return _Neuron(core=name, thresholds=ordered, reset=resets[0], out=self._amplitude(name, fires))

    def _amplitude(self, name: str, fires: list[str]) -> str | None:
        """The ``Scale`` that carries the spike amplitude θ, if spikeconv wrote one."""
        for candidate in self.succs[fires[0]]:
            node = self.nodes[candidate]
            meta = read_record(node)
            if isinstance(node, self.nir.Scale) and meta and meta[0].get("role") == "spike-amplitude":
                if sorted(self.preds[candidate]) != sorted(fires):
                    raise self.fail(candidate, "mixes spikes of different neurons")
                return candidate
        return None

    def order(self, neurons: dict[str, _Neuron]) -> list[str]:
        """Topological order of the nodes without the neurons' reset edges; any other cycle is refused."""
        feedback = {(n.reset, n.core) for n in neurons.values() if n.reset}
        indegree = {name: 0 for name in self.nodes}
        for target, sources in self.preds.items():
            indegree[target] = sum(1 for s in sources if (s, target) not in feedback)
        queue = deque(name for name, degree in indegree.items() if degree == 0)
        ordered = []
        while queue:
            name = queue.popleft()
            ordered.append(name)
            for target in self.succs[name]:
                if (name, target) in feedback:
                    continue
                indegree[target] -= 1
                if indegree[target] == 0:
                    queue.append(target)
        if len(ordered) != len(self.nodes):
            stuck = sorted(set(self.nodes) - set(ordered))[0]
            raise self.fail(stuck, "lies on a cycle that is not a neuron's reset; spikeconv reads recurrence only as soft reset")
        return ordered



def describe_nir(path: str | Path) -> dict[str, Any]:
    """What a NIR file holds, for ``spikeconv info`` (read and checked, not rebuilt or simulated)."""
    graph = read_nir(path)
    meta = (graph.metadata or {}).get(NIR_KEY, {}) if isinstance(graph.metadata, dict) else {}
    types: dict[str, int] = {}
    for node in graph.nodes.values():
        types[type(node).__name__] = types.get(type(node).__name__, 0) + 1
    neurons = sum(1 for node in graph.nodes.values() if (read_record(node) or ({},))[0].get("role") == "neuron")
    info: dict[str, Any] = {}
    if isinstance(meta.get("info"), str):
        try:
            info = json.loads(meta["info"])
        except ValueError:
            info = {}
    return {"format": "nir", "written_by": "spikeconv export" if meta.get("format") else "another tool",
            "format_version": meta.get("format_version"), "nodes": len(graph.nodes), "edges": len(graph.edges),
            "node_types": dict(sorted(types.items())), "spikeconv_neurons": neurons,
            "timesteps": meta.get("timesteps"), "method": info.get("method"), "input_shape": info.get("input_shape"),
            "num_classes": info.get("num_classes"), "preprocessing": info.get("preprocessing"),
            "discretisation": meta.get("discretisation"), "target": meta.get("target"), "library": meta.get("library"),
            "importer": meta.get("importer")}  # fmt: skip
