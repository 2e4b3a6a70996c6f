"""The same throughput figures as bench/gpu_bench.py, with SpikingJelly 2.0 (its own venv; see bench/gpu_check.sh).

Networks of the same shapes, multi-step IF neurons with soft reset (``v_reset=None``), random weights and
inputs: the Fashion-MNIST CNN (32C5-P2-64C5-P2-1024, BatchNorm, average pooling) and SpikingJelly's
spiking ResNet-18 on 3x32x32. Simulation: images per second of one forward of T steps at batch 256 (the
static input repeated T times, as spikeconv's direct encoding). Training: one epoch, T = 4, batch 128, SGD,
cross-entropy on the mean readout, on synthetic images.

Usage (inside the SpikingJelly venv):
    python bench/spikingjelly_bench.py [--device cuda] [--batch 256] [--timesteps 4,32] [--out J]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import spikingjelly
import torch
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.model import spiking_resnet
from torch import nn

NETS = {"fmnist-cnn": (1, 28, 28), "resnet18": (3, 32, 32)}


def _if() -> nn.Module:
    return neuron.IFNode(v_reset=None, step_mode="m")


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "fmnist-cnn":
        net = nn.Sequential(
            layer.Conv2d(1, 32, 5, bias=False), layer.BatchNorm2d(32), _if(), layer.AvgPool2d(2),
            layer.Conv2d(32, 64, 5, bias=False), layer.BatchNorm2d(64), _if(), layer.AvgPool2d(2),
            layer.Flatten(), layer.Linear(1024, 1024, bias=False), layer.BatchNorm1d(1024), _if(), layer.Linear(1024, 10),
        )  # fmt: skip
    else:
        net = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.IFNode, num_classes=10, v_reset=None)
    functional.set_step_mode(net, "m")
    return net


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward(net: nn.Module, x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Readout ``[T, N, K]`` of a fresh simulation."""
    functional.reset_net(net)
    return net(x.unsqueeze(0).expand(timesteps, *x.shape))


def simulation_rate(net: nn.Module, shape, batch: int, timesteps: int, repeats: int, device: torch.device) -> float:
    x = torch.rand(batch, *shape, device=device)
    net.eval()
    times = []
    with torch.inference_mode():
        forward(net, x, timesteps)
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            forward(net, x, timesteps)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def training_rate(net: nn.Module, shape, samples: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(samples, *shape, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()
    synchronize(device)
    start = time.perf_counter()
    for first in range(0, samples, 128):
        x, y = images[first : first + 128].to(device), labels[first : first + 128].to(device)
        loss = nn.functional.cross_entropy(forward(net, x, 4).mean(0), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": round(seconds, 2), "img_per_s": round(samples / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--timesteps", default="4,32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-samples", type=int, default=10240)
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: a smoke run, not a measurement.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats, args.train_samples, args.timesteps = 4, 1, 256, "2"
    device = torch.device(args.device)
    results = {}
    for name in args.nets.split(","):
        shape = NETS[name]
        net = build(name).to(device)
        row = {"input": list(shape), "batch": args.batch}
        for steps in (int(t) for t in args.timesteps.split(",")):
            row[f"sim_img_per_s_T{steps}"] = round(simulation_rate(net, shape, args.batch, steps, args.repeats, device), 1)
        row["train_T4"] = training_rate(build(name).to(device), shape, args.train_samples, device)
        results[name] = row
    report = {"spikingjelly": getattr(spikingjelly, "__version__", "2.0"), "torch": torch.__version__, "device": str(device),
              "results": results}  # fmt: skip
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
