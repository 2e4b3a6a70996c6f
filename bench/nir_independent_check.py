"""Does an exported NIR file mean what spikeconv means? Simulate it with a reader spikeconv did not write.

The reader is nirtorch's graph executor (``nirtorch.nir_to_torch``: it wires the NIR graph, sums
fan-in and feeds every edge that closes a cycle with its source's previous-step output), with node
definitions written here from NIR's documented equations, discretised with dt = 1 (forward Euler):

    I:         v <- v + r*x                          output v
    LI:        v <- v + (v_leak - v + r*x) / tau     output v
    IF / LIF:  as I / LI, then z = v > v_threshold, v <- v_reset where z; output z
    Threshold: z = x > threshold
    Scale:     s*x

Nothing here imports spikeconv's NIR reader or its neurons. For each SNN file the script exports
the NIR file with ``spikeconv export``'s writer, runs spikeconv's own simulation and the nirtorch
one on the same test images, and reports per step: the largest relative difference of the
accumulated readout, the share of images whose prediction agrees, and both accuracies.

nirtorch is not a spikeconv dependency: run the script with the nirtorch venv ``make interop`` makes
(``bench/interop_check.py``; it sees spikeconv through the host's site-packages).

Usage:
    /tmp/spikeconv-interop/nirtorch/bin/python bench/nir_independent_check.py SNN_FILE [SNN_FILE ...]
        [--dataset fashion-mnist] [--limit 256] [--timesteps 8] [--json bench/results/nir_independent_check.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import date
from pathlib import Path

import nir
import nirtorch
import numpy as np
import torch
from torch import nn

from spikeconv.data import Split, load_dataset
from spikeconv.files import load_snn
from spikeconv.files.snn_exports import export_snn


def _t(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


class Integrator(nn.Module):
    """NIR ``I`` and ``LI`` (``tau=None``: no leak)."""

    def __init__(self, r, tau=None, v_leak=None) -> None:
        super().__init__()
        self.r, self.tau = _t(r), None if tau is None else _t(tau)
        self.v_leak = None if v_leak is None else _t(v_leak)

    def forward(self, x: torch.Tensor, state=None):
        v = torch.zeros_like(x) if state is None else state
        v = v + self.r * x if self.tau is None else v + (self.v_leak - v + self.r * x) / self.tau
        return v, v


class Firing(Integrator):
    """NIR ``IF`` and ``LIF``: integrate, fire on v > v_threshold, reset to v_reset."""

    def __init__(self, r, v_threshold, v_reset, tau=None, v_leak=None) -> None:
        super().__init__(r, tau, v_leak)
        self.v_threshold, self.v_reset = _t(v_threshold), _t(v_reset)

    def forward(self, x: torch.Tensor, state=None):
        v, _ = super().forward(x, state)
        z = (v > self.v_threshold).to(x.dtype)
        v = torch.where(z.bool(), self.v_reset.expand_as(v), v)
        return z, v


class Threshold(nn.Module):
    def __init__(self, threshold) -> None:
        super().__init__()
        self.threshold = _t(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Scale(nn.Module):
    def __init__(self, scale) -> None:
        super().__init__()
        self.scale = _t(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


def _conv(node: nir.Conv2d) -> nn.Conv2d:
    weight = _t(node.weight)
    conv = nn.Conv2d(weight.shape[1] * int(node.groups), weight.shape[0], tuple(weight.shape[2:]),
                     stride=tuple(int(s) for s in node.stride), padding=tuple(int(p) for p in node.padding),
                     dilation=tuple(int(d) for d in node.dilation), groups=int(node.groups))
    conv.weight.data, conv.bias.data = weight, _t(node.bias)
    return conv


def _affine(node) -> nn.Linear:
    weight = _t(node.weight)
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
    linear.weight.data = weight
    if isinstance(node, nir.Affine):
        linear.bias.data = _t(node.bias)
    return linear


NODE_MAP = {
    # nirtorch 2.6's default Affine map assigns the bias to ``weight.bias``, leaving the layer's bias random: defined here
    nir.Affine: _affine,
    nir.Linear: _affine,
    nir.I: lambda n: Integrator(n.r),
    nir.LI: lambda n: Integrator(n.r, n.tau, n.v_leak),
    nir.IF: lambda n: Firing(n.r, n.v_threshold, n.v_reset),
    nir.LIF: lambda n: Firing(n.r, n.v_threshold, n.v_reset, n.tau, n.v_leak),
    nir.Threshold: lambda n: Threshold(n.threshold),
    nir.Scale: lambda n: Scale(n.scale),
    nir.Conv2d: _conv,
    # NIR's dimensions exclude the batch; nirtorch's default maps start_dim literally, which would flatten the batch too
    nir.Flatten: lambda n: nn.Flatten(start_dim=int(n.start_dim) + 1, end_dim=int(n.end_dim) if int(n.end_dim) < 0 else int(n.end_dim) + 1),
}


def nirtorch_readouts(path: Path, images: torch.Tensor, timesteps: int) -> torch.Tensor:
    """The NIR output (the readout integrator) after each step, ``[T, N, K]``, from nirtorch."""
    module = nirtorch.nir_to_torch(nir.read(path), NODE_MAP)
    state, outputs = None, []
    with torch.no_grad():
        for _ in range(timesteps):
            out, state = module(images, state) if state is not None else module(images)
            outputs.append(out.clone())
    return torch.stack(outputs)


def check(snn_path: Path, dataset: str, limit: int, timesteps: int) -> dict:
    loaded = load_snn(snn_path)
    data = load_dataset(dataset, split=Split.TEST, limit=limit)
    images = torch.stack([data[i][0] for i in range(limit)])
    labels = torch.tensor([int(data[i][1]) for i in range(limit)])
    with tempfile.TemporaryDirectory() as folder:
        nir_path = Path(folder) / "net.nir"
        export_snn(loaded.snn, nir_path, format="nir", info=loaded.info)
        theirs = nirtorch_readouts(nir_path, images, timesteps)
    with torch.no_grad():
        ours = loaded.snn(images, timesteps).cumsum(0)
    rows = []
    for t in range(timesteps):
        scale = ours[t].abs().max().clamp_min(1e-12)
        rows.append({
            "t": t + 1,
            "max_rel_diff": float((theirs[t] - ours[t]).abs().max() / scale),
            "prediction_agreement": float((theirs[t].argmax(1) == ours[t].argmax(1)).float().mean() * 100),
            "accuracy_spikeconv": float((ours[t].argmax(1) == labels).float().mean() * 100),
            "accuracy_nirtorch": float((theirs[t].argmax(1) == labels).float().mean() * 100),
        })  # fmt: skip
    return {"snn": str(snn_path), "method": loaded.info.get("method", loaded.info.get("model_format")), "samples": limit, "steps": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("snns", nargs="+", type=Path)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--limit", type=int, default=256)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    results = [check(path, args.dataset, args.limit, args.timesteps) for path in args.snns]
    for result in results:
        print(f"\n{result['snn']} ({result['method']}), {result['samples']} test images")
        print("| t | max rel. diff of readout | predictions agree | acc. spikeconv | acc. nirtorch |\n|--:|--:|--:|--:|--:|")
        for row in result["steps"]:
            print(f"| {row['t']} | {row['max_rel_diff']:.2e} | {row['prediction_agreement']:.2f} % | {row['accuracy_spikeconv']:.2f} | "
                  f"{row['accuracy_nirtorch']:.2f} |")
    if args.json:
        record = {"date": date.today().isoformat(), "machine": platform.platform(), "nir": nir.version, "nirtorch": nirtorch.__version__,
                  "torch": torch.__version__, "results": results}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
