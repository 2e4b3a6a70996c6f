"""Run a NIR file with one consumer library's own importer, as that library's documentation says to.

This script runs inside a consumer's venv (made by ``bench/interop_check.py``) and never imports
spikeconv: it is what a user of that library would write. Each library is loaded through its own
public importer, unmodified:

    snntorch      snntorch.import_nir.import_from_nir(graph)            state in the modules (snntorch.utils.reset)
    sinabs        sinabs.from_nir(graph, batch_size=N)                   all steps at once, (N·T, ...) squeezed input
    norse         norse.torch.from_nir(graph, dt=1e-3)                   (output, state) = model(x, state) per step
    spikingjelly  nir_exchange.import_from_nir(graph, dt=1e-4)          (output, state) = model(x, state) per step
    nirtorch      nirtorch.nir_to_torch(graph, NIR-equation node map)    (output, state) = model(x, state) per step

``nirtorch`` has no neurons of its own; its row uses node definitions written from NIR's equations
(dt = 1), as ``bench/nir_independent_check.py`` does, and runs the exact ``nir`` export.

Modes:
    run:    interop_consumer.py run LIBRARY FILE.nir IMAGES.npz --timesteps T --out RESULT.json
            the graph's output summed over steps; accuracy after each step t = 1..T.
    probe:  interop_consumer.py probe LIBRARY --out RESULT.json
            tiny graphs that expose the importer's conventions (threshold test, reset, initial
            membrane, spikes per step, membrane floor, per-neuron thresholds, Flatten, residual order).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

VERSIONS = ("nir", "nirtorch", "snntorch", "sinabs", "norse", "spikingjelly", "torch")
SJ_DT = 1e-4
NORSE_DT = 1e-3


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


# --- one stepper per library: steps(x [T, N, ...]) -> outputs [T, N, ...] ----------------------------------------------


def _snntorch(graph):
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(graph)

    def steps(x):
        snntorch.utils.reset(net)
        outputs = []
        for t in range(x.shape[0]):
            out = net(x[t])
            outputs.append(out[0] if isinstance(out, tuple) else out)
        return torch.stack(outputs)

    return steps


def _sinabs(graph):
    import sinabs

    def steps(x):
        count, batch = x.shape[0], x.shape[1]
        model = sinabs.from_nir(graph, batch_size=batch)
        squeezed = x.transpose(0, 1).reshape(batch * count, *x.shape[2:])  # sinabs squeezes (batch, time) batch-major
        out = model(squeezed)
        out = out[0] if isinstance(out, tuple) else out
        return out.reshape(batch, count, *out.shape[1:]).transpose(0, 1)

    return steps


def _stateful(model):
    def steps(x):
        state, outputs = None, []
        for t in range(x.shape[0]):
            out, state = model(x[t], state)
            outputs.append(out)
        return torch.stack(outputs)

    return steps


def _norse(graph):
    from norse.torch import from_nir

    return _stateful(from_nir(graph, dt=NORSE_DT))


def _spikingjelly(graph):
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    return _stateful(import_from_nir(graph, dt=SJ_DT))


def _nirtorch(graph):
    import nirtorch

    return _stateful(nirtorch.nir_to_torch(graph, _nir_equation_map()))


def _nir_equation_map():
    """Node definitions from NIR's equations (dt = 1, forward Euler); nirtorch's own defaults for the rest, with
    its Affine (bias left random) and Flatten (batch flattened too) replaced."""
    from torch import nn

    def t(value):
        return torch.as_tensor(np.asarray(value, dtype=np.float32))

    class Integrator(nn.Module):
        def __init__(self, node, fire):
            super().__init__()
            self.r = t(node.r)
            self.tau = t(node.tau) if hasattr(node, "tau") else None
            self.v_leak = t(node.v_leak) if hasattr(node, "v_leak") else None
            self.fire = fire
            if fire:
                self.v_threshold, self.v_reset = t(node.v_threshold), t(node.v_reset)

        def forward(self, x, state=None):
            v = torch.zeros_like(x) if state is None else state
            v = v + self.r * x if self.tau is None else v + (self.v_leak - v + self.r * x) / self.tau
            if not self.fire:
                return v, v
            z = (v > self.v_threshold).to(x.dtype)
            return z, torch.where(z.bool(), self.v_reset.expand_as(v), v)

    class Threshold(nn.Module):
        def __init__(self, node):
            super().__init__()
            self.threshold = t(node.threshold)

        def forward(self, x):
            return (x > self.threshold).to(x.dtype)

    class Scale(nn.Module):
        def __init__(self, node):
            super().__init__()
            self.scale = t(node.scale)

        def forward(self, x):
            return self.scale * x

    def affine(node):
        layer = nn.Linear(node.weight.shape[1], node.weight.shape[0])
        layer.weight.data, layer.bias.data = t(node.weight), t(node.bias)
        return layer

    return {
        nir.I: lambda n: Integrator(n, False), nir.LI: lambda n: Integrator(n, False),
        nir.IF: lambda n: Integrator(n, True), nir.LIF: lambda n: Integrator(n, True),
        nir.Threshold: Threshold, nir.Scale: Scale,
        nir.Affine: affine,
        nir.Flatten: lambda n: nn.Flatten(int(n.start_dim) + 1, int(n.end_dim) + 1 if int(n.end_dim) >= 0 else int(n.end_dim)),
    }  # fmt: skip


LIBRARIES = {"snntorch": _snntorch, "sinabs": _sinabs, "norse": _norse, "spikingjelly": _spikingjelly, "nirtorch": _nirtorch}


def stepper(library: str, graph):
    return LIBRARIES[library](graph)


# --- run: accuracy after each step ----------------------------------------------------------------------------------------


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    graph = nir.read(args.nir)
    data = np.load(args.images)
    images, labels = torch.from_numpy(data["x"]), torch.from_numpy(data["y"]).long()
    steps = stepper(args.library, graph)
    correct = torch.zeros(args.timesteps)
    readouts = []
    with torch.no_grad():
        for start in range(0, len(images), args.batch):
            x = images[start : start + args.batch]
            out = steps(x.unsqueeze(0).expand(args.timesteps, *x.shape).contiguous())
            out = out.reshape(args.timesteps, x.shape[0], -1)
            total = out if args.accumulated else out.cumsum(0)  # the exact file's readout is an I: already the sum
            readouts.append(total)
            correct += (total.argmax(-1) == labels[start : start + args.batch]).sum(1).float()
    accuracy = [round(100.0 * float(c) / len(images), 2) for c in correct]
    if args.readout:
        np.save(args.readout, torch.cat(readouts, 1).numpy())
    return {"library": args.library, "versions": versions(), "images": len(images), "accuracy": accuracy}


# --- probe: conventions, from tiny graphs ---------------------------------------------------------------------------------


def _neuron(library: str, shape, threshold, v_reset=0.0):
    """The neuron node this library's importer maps for an integrate-and-fire neuron (r as it requires; ``plain``: IF, r = 1)."""
    ones = np.ones(shape, np.float32)
    th = np.broadcast_to(np.asarray(threshold, np.float32), shape).copy()
    reset = np.full(shape, v_reset, np.float32)
    if library == "snntorch":  # its IF map returns (spikes, membrane), which its graph executor cannot pass on: LIF, τ → ∞
        tau = np.full(shape, 1e4, np.float32)
        return nir.LIF(tau=tau, r=tau / np.float32(1e-4), v_leak=0 * ones, v_threshold=th, v_reset=reset)
    r = ones / np.float32(SJ_DT) if library == "spikingjelly" else ones
    if "v_reset" not in nir.IF.__dataclass_fields__:  # nir <= 1.0.4 (what sinabs 3.1.3 installs): IF has no v_reset
        return nir.IF(r=r, v_threshold=th)
    return nir.IF(r=r, v_threshold=th, v_reset=reset)


def _graph(nodes: dict, edges: list):
    """A NIRGraph without type checking (nir <= 1.0.4 has no type check to turn off)."""
    if "type_check" in nir.NIRGraph.__dataclass_fields__:
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _identity_graph(library: str, width: int, threshold, v_reset=0.0):
    eye = np.eye(width, dtype=np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([width])}),
        "w": nir.Affine(weight=eye, bias=np.zeros(width, np.float32)),
        "n": _neuron(library, (width,), threshold, v_reset),
        "out": nir.Affine(weight=eye, bias=np.zeros(width, np.float32)),
        "output": nir.Output(output_type={"output": np.array([width])}),
    }
    edges = [("input", "w"), ("w", "n"), ("n", "out"), ("out", "output")]
    return _graph(nodes, edges)


PROBE_INPUT = np.array([  # one column per question; rows are steps; threshold 1
    # at θ   soft/hard  2.5θ   floor   below θ
    [1.0, 0.7, 2.5, -3.0, 0.999],
    [0.0, 0.7, 0.0, 2.5, 0.0],
    [0.0, 0.7, 0.0, 0.0, 0.0],
    [0.0, 0.7, 0.0, 0.0, 0.0],
], dtype=np.float32)  # fmt: skip


def _spikes(library: str, graph, x: np.ndarray) -> list | str:
    try:
        with torch.no_grad():
            out = stepper(library, graph)(torch.from_numpy(x).unsqueeze(1))  # [T, 1, width]
        return out.reshape(x.shape[0], -1).tolist()
    except Exception as exc:  # the importer's own refusal is a finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


def probe(args) -> dict:
    lib = args.library
    found = {"library": lib, "versions": versions()}
    width = PROBE_INPUT.shape[1]
    found["dynamics"] = _spikes(lib, _identity_graph(lib, width, 1.0), PROBE_INPUT)
    init = np.array([[0.8], [0.0], [0.8], [0.0]], np.float32)
    found["v_reset_0.3"] = _spikes(lib, _identity_graph(lib, 1, 1.0, v_reset=0.3), init)
    found["plain_if"] = _spikes(lib, _identity_graph("plain", 1, 1.0), np.array([[1.5], [0.0]], np.float32))  # IF(r=1)
    found["per_neuron_threshold"] = _spikes(lib, _identity_graph(lib, 2, [1.0, 2.0]), np.array([[1.5, 1.5]], np.float32))
    found["flatten"] = _flatten_probe(lib)
    found["residual"] = _residual_probe(lib, shortcut_layer=False)
    found["residual_with_shortcut_layer"] = _residual_probe(lib, shortcut_layer=True)
    return found


def _flatten_probe(lib: str) -> list | str:
    """Input [2, 1, 1] → Flatten(start_dim=0) → identity Affine, batch of 3: a batch-preserving Flatten gives [3, 2]."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 1, 1])}),
        "flat": nir.Flatten(input_type={"input": np.array([2, 1, 1])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    graph = _graph(nodes, [("input", "flat"), ("flat", "fc"), ("fc", "output")])
    try:
        with torch.no_grad():
            out = stepper(lib, graph)(torch.arange(6, dtype=torch.float32).reshape(1, 3, 2, 1, 1))
        return list(out.shape[1:])
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


def _residual_probe(lib: str, shortcut_layer: bool) -> list | str:
    """y = a(x) + s(x) with a = two affine layers in a row and s = identity (or one affine layer): is the join computed
    after both branches within a step? Input 1 at step 1 only: a correct order gives 2 at step 1, 0 after."""
    one = np.ones((1, 1), np.float32)
    zero = np.zeros(1, np.float32)
    nodes = {"input": nir.Input(input_type={"input": np.array([1])}), "a1": nir.Affine(weight=one, bias=zero),
             "a2": nir.Affine(weight=one, bias=zero), "join": nir.Affine(weight=one, bias=zero),
             "output": nir.Output(output_type={"output": np.array([1])})}  # fmt: skip
    edges = [("input", "a1"), ("a1", "a2"), ("a2", "join"), ("join", "output")]
    if shortcut_layer:
        nodes["s"] = nir.Affine(weight=one, bias=zero)
        edges += [("input", "s"), ("s", "join")]
    else:
        edges += [("input", "join")]
    graph = _graph(nodes, edges)
    try:
        with torch.no_grad():
            out = stepper(lib, graph)(torch.tensor([[[1.0]], [[0.0]], [[0.0]]]))
        return out.reshape(3).tolist()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("library", choices=sorted(LIBRARIES))
    r.add_argument("nir", type=Path)
    r.add_argument("images", type=Path)
    r.add_argument("--timesteps", type=int, default=8)
    r.add_argument("--batch", type=int, default=250)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--readout", type=Path, default=None, help="also save the accumulated readout [T, N, K] as .npy")
    r.add_argument("--accumulated", action="store_true", help="the graph's output is the accumulated readout (the exact nir file)")
    r.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("probe")
    p.add_argument("library", choices=sorted(LIBRARIES))
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run(args) if args.mode == "run" else probe(args)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
