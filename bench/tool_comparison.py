"""spikeconv against SpikingJelly's ann2snn and sinabs on the same ANN, images and timesteps.

The shipped Fashion-MNIST CNN (spikeconv/models/pretrained/fmnist-cnn.pt) is converted by each
tool with its own threshold rules, calibrated on the same 2,000 training images (spikeconv's
``calibration_subset``, seed 0), and simulated on the full test set for ``--timesteps`` steps with
the analog image as input current at every step (direct encoding, each tool's default for
conversion). Accuracy after t steps is the argmax of the output layer's summed output over steps
1..t, for every tool.

The other tools are never spikeconv dependencies: run this script with a separate environment
that has them, e.g.::

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 sinabs spikingjelly
    /tmp/bench-venv/bin/pip install -e .
    /tmp/bench-venv/bin/python bench/tool_comparison.py --out bench/results/tool_comparison.json

What each tool gets (its documented conversion path, BatchNorm folded by the tool or before it):

- spikeconv: ``spikeconv.convert(model, batches, method=...)`` for ``rate``, ``calibrated``
  (MMSE thresholds + initial-potential correction for T = 4, and for T = 1 and 2, per layer and
  per channel), and ``calibrated`` with signed neurons (T = 4).
- SpikingJelly: ``ann2snn.FXConverter`` with ``RateCodingRecipe`` (``mode="Max"``, ``"99.9%"``,
  and channel-wise 99.9 % with half-threshold initial membranes) and
  ``LocalThresholdBalancingRecipe``; soft-reset ``IFNode`` neurons, ``functional.reset_net`` per batch.
- sinabs: Conv/Linear-BatchNorm pairs fused (``torch.ao.quantization.fuse_modules``), weights
  normalised layer by layer to the 99.99th percentile of each ReLU's output
  (``sinabs.utils.normalize_weights``; the classifier bias is rescaled by the same cumulative
  factor so the logits keep their ANN proportions), then ``sinabs.from_model`` with threshold 1,
  ``MembraneSubtract`` reset, with its default ``MultiSpike`` (several spikes per step) and with
  ``SingleSpike``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn

import spikeconv
from spikeconv.convert import ConvertConfig
from spikeconv.data import Split, calibration_subset, load_dataset, make_loader
from spikeconv.neurons import SinCorrection
from spikeconv.workflows import load_ann

ANN = Path(__file__).resolve().parents[1] / "spikeconv/models/pretrained/fmnist-cnn.pt"


def cumulative_accuracy(step_outputs: Callable[[torch.Tensor], torch.Tensor], test, steps: int, batch: int) -> list[float]:
    """Accuracy (%) after every t = 1..steps; ``step_outputs(x)`` returns ``[T, N, K]`` outputs."""
    correct = torch.zeros(steps, dtype=torch.long)
    seen = 0
    with torch.no_grad():
        for x, y in make_loader(test, batch_size=batch, shuffle=False):
            summed = step_outputs(x).cumsum(0)
            correct += (summed.argmax(-1) == y.unsqueeze(0)).sum(1)
            seen += y.numel()
    return [round(100.0 * int(c) / seen, 2) for c in correct]


def spikeconv_runner(model, calib_batches, method: str, signed: bool, steps: int, target: int = 4):
    config = ConvertConfig(sin_correction=SinCorrection.SIGNED if signed else SinCorrection.NONE)
    snn = spikeconv.convert(model, calib_batches, method=method, timesteps=target, config=config).eval()
    return lambda x: snn(x, steps)


def split_normalisation(model: nn.Sequential) -> tuple[nn.Module, nn.Sequential]:
    """(input normalisation, the rest): the other tools get normalised images, as their examples do."""
    children = list(model.named_children())
    return children[0][1], nn.Sequential(OrderedDict(children[1:]))


def spikeconv_per_channel_runner(model, calib_batches, steps: int, target: int):
    """``calibrated`` with per-channel MMSE thresholds (``convert --method calibrated --per-channel``)."""
    from spikeconv.calibration import CalibrationConfig, MseThreshold, calibrate, prepare
    from spikeconv.convert import Correction, CorrectionConfig, convert, correct
    from spikeconv.ingest import ingest_module

    graph = ingest_module(model)
    calibrated = calibrate(prepare(graph, CalibrationConfig(default=MseThreshold(target, per_channel=True))), calib_batches)
    corrected = correct(calibrated, calib_batches, CorrectionConfig(Correction.POTENTIAL, timesteps=target, max_samples=512))
    snn = convert(corrected, ConvertConfig()).eval()
    return lambda x: snn(x, steps)


def spikingjelly_runner(model, calib_loader, recipe_name: str, steps: int):
    from spikingjelly.activation_based import ann2snn, functional

    recipes = {
        "max": lambda: ann2snn.RateCodingRecipe(dataloader=calib_loader, mode="Max"),
        "p99.9": lambda: ann2snn.RateCodingRecipe(dataloader=calib_loader, mode="99.9%"),
        "p99.9-channel-half": lambda: ann2snn.RateCodingRecipe(dataloader=calib_loader, mode="99.9%", channel_wise=True,
                                                               half_threshold=True),  # fmt: skip
        "ltb": lambda: ann2snn.LocalThresholdBalancingRecipe(dataloader=calib_loader),
    }
    normalise, body = split_normalisation(model)
    snn = ann2snn.FXConverter(recipe=recipes[recipe_name](), device="cpu").convert(copy.deepcopy(body)).eval()

    def run(x):
        functional.reset_net(snn)
        x = normalise(x)
        return torch.stack([snn(x) for _ in range(steps)])

    return run


def _fused(model: nn.Sequential) -> nn.Sequential:
    names = [name for name, _ in model.named_children()]
    pairs = [[a, b] for a, b in zip(names, names[1:], strict=False)
             if isinstance(model.get_submodule(a), nn.Conv2d | nn.Linear)
             and isinstance(model.get_submodule(b), nn.BatchNorm2d | nn.BatchNorm1d)]  # fmt: skip
    return torch.ao.quantization.fuse_modules(copy.deepcopy(model).eval(), pairs)


def rueckauer_normalise_(ann: nn.Sequential, images: torch.Tensor, percentile: float) -> None:
    """Data-based normalisation with biases (Rueckauer et al. 2017): W_l ← W_l·λ_{l−1}/λ_l, b_l ← b_l/λ_l.

    λ_l is the percentile of ReLU l's output on ``images`` in the original network (λ_0 = 1); the
    layer after the last ReLU gets W ← W·λ_last, so the logits are unchanged.
    """
    names = [name for name, _ in ann.named_children()]
    relus = [n for n in names if isinstance(ann.get_submodule(n), nn.ReLU)]
    weighted = [n for n in names if isinstance(ann.get_submodule(n), nn.Conv2d | nn.Linear)]
    scales = [float(np.percentile(_output_of(ann, ann.get_submodule(r), images).numpy(), percentile)) for r in relus]
    previous = 1.0
    with torch.no_grad():
        for name in weighted:
            layer = ann.get_submodule(name)
            following = [r for r in relus if names.index(r) > names.index(name)]
            current = scales[relus.index(following[0])] if following else 1.0
            layer.weight.mul_(previous / current)
            if layer.bias is not None:
                layer.bias.div_(current)
            previous = current


def sinabs_runner(model, calib_images: torch.Tensor, single_spike: bool, steps: int, *, sinabs_helper: bool):
    import sinabs
    from sinabs.activation import MembraneSubtract, MultiSpike, SingleSpike
    from sinabs.utils import normalize_weights

    normalise, body = split_normalisation(model)
    calib_images = normalise(calib_images)
    ann = _fused(body)
    if sinabs_helper:  # sinabs.utils.normalize_weights scales each layer's weights *and* bias by 1/max only
        names = [name for name, _ in ann.named_children()]
        relus = [n for n in names if isinstance(ann.get_submodule(n), nn.ReLU)]
        params = [max((m for m in names[: names.index(r)] if isinstance(ann.get_submodule(m), nn.Conv2d | nn.Linear)),
                      key=names.index) for r in relus]  # fmt: skip
        last_relu = ann.get_submodule(relus[-1])
        before = _output_of(ann, last_relu, calib_images)
        normalize_weights(ann, calib_images, output_layers=relus, param_layers=params, percentile=99.99)
        scale = (_output_of(ann, last_relu, calib_images).sum() / before.sum()).item()
        with torch.no_grad():
            ann.get_submodule(names[-1]).bias.mul_(scale)  # keep the classifier's bias in proportion to its input
    else:
        rueckauer_normalise_(ann, calib_images, 99.99)
    network = sinabs.from_model(ann, input_shape=tuple(calib_images.shape[1:]), spike_threshold=torch.tensor(1.0),
                                spike_fn=SingleSpike if single_spike else MultiSpike, reset_fn=MembraneSubtract(),
                                num_timesteps=steps)  # fmt: skip
    snn = network.spiking_model.eval()

    def run(x):
        sinabs.reset_states(snn)
        x = normalise(x)
        repeated = x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).reshape(-1, *x.shape[1:])
        out = snn(repeated)
        return out.reshape(x.shape[0], steps, -1).transpose(0, 1)

    return run


def _output_of(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=64)
    parser.add_argument("--calib", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=None, help="first N test images (default: all)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=None, help="run names separated by semicolons")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_ann(ANN).model.eval()
    calib = calibration_subset(load_dataset("fashion-mnist", split=Split.TRAIN), num_samples=args.calib, seed=0)
    calib_images = torch.stack([calib[i][0] for i in range(len(calib))])
    normalise, _ = split_normalisation(model)
    with torch.no_grad():
        calib_loader = [(normalise(chunk), None) for chunk in calib_images.split(250)]
    calib_batches = list(calib_images.split(250))
    test = load_dataset("fashion-mnist", split=Split.TEST)
    if args.limit is not None:
        test = torch.utils.data.Subset(test, range(args.limit))
    steps = args.timesteps
    runs = {
        "spikeconv rate (p99.99)": lambda: spikeconv_runner(model, calib_batches, "rate", False, steps),
        "spikeconv calibrated (T=4)": lambda: spikeconv_runner(model, calib_batches, "calibrated", False, steps),
        "spikeconv calibrated + signed (T=4)": lambda: spikeconv_runner(model, calib_batches, "calibrated", True, steps),
        "spikeconv calibrated (T=1)": lambda: spikeconv_runner(model, calib_batches, "calibrated", False, steps, target=1),
        "spikeconv calibrated (T=2)": lambda: spikeconv_runner(model, calib_batches, "calibrated", False, steps, target=2),
        "spikeconv calibrated per-channel (T=1)": lambda: spikeconv_per_channel_runner(model, calib_batches, steps, 1),
        "spikeconv calibrated per-channel (T=2)": lambda: spikeconv_per_channel_runner(model, calib_batches, steps, 2),
        "SpikingJelly RateCoding Max": lambda: spikingjelly_runner(model, calib_loader, "max", steps),
        "SpikingJelly RateCoding 99.9%": lambda: spikingjelly_runner(model, calib_loader, "p99.9", steps),
        "SpikingJelly RateCoding 99.9% channel-wise, half threshold": lambda: spikingjelly_runner(
            model, calib_loader, "p99.9-channel-half", steps),
        "SpikingJelly LocalThresholdBalancing": lambda: spikingjelly_runner(model, calib_loader, "ltb", steps),
        "sinabs p99.99, MultiSpike (default)": lambda: sinabs_runner(model, calib_images, False, steps, sinabs_helper=True),
        "sinabs p99.99, SingleSpike": lambda: sinabs_runner(model, calib_images, True, steps, sinabs_helper=True),
        "sinabs p99.99 bias-aware normalisation, MultiSpike": lambda: sinabs_runner(model, calib_images, False, steps,
                                                                                     sinabs_helper=False),
        "sinabs p99.99 bias-aware normalisation, SingleSpike": lambda: sinabs_runner(model, calib_images, True, steps,
                                                                                      sinabs_helper=False),
    }
    if args.only:
        wanted = {name.strip() for name in args.only.split(";")}
        runs = {k: v for k, v in runs.items() if k in wanted}
    with torch.no_grad():
        ann_acc = cumulative_accuracy(lambda x: model(x).unsqueeze(0), test, 1, args.batch)[0]
    results = {}
    for name, make in runs.items():
        started = time.perf_counter()
        accuracy = cumulative_accuracy(make(), test, steps, args.batch)
        results[name] = {"accuracy": accuracy, "seconds": round(time.perf_counter() - started, 1)}
        points = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= steps]
        print(f"{name}: " + ", ".join(f"T={t} {accuracy[t - 1]:.2f}" for t in points) + f" ({results[name]['seconds']} s)",
              flush=True)
    versions = {"torch": torch.__version__}
    for package in ("sinabs", "spikingjelly"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001  (a tool that is not installed is simply not recorded)
            pass
    record = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {args.threads} threads",
              "versions": versions, "settings": {k: str(v) for k, v in vars(args).items()},
              "num_test_images": len(test), "ann_accuracy": ann_acc, "runs": results}  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
