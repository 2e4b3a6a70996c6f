"""Simulation and training throughput of spikeconv on one device: the GPU rows of docs/benchmarks.md.

For the shipped Fashion-MNIST CNN (converted with ``calibrated``) and torchvision's ResNet-18 with random
weights on 3x32x32 inputs (converted with ``rate``):

* simulation: images per second of ``snn(x, T)`` for T = 4 and 32 at batch 256 (median of repeats,
  after a warm-up, synchronised);
* training: one train-snn epoch (SRIF, T = 4, batch 128) on synthetic images of the network's input
  size, in images per second.

The inputs are random (the throughput does not depend on the pixels). bench/gpu_check.sh runs this
with ``--device cuda``; ``--device cpu --quick`` is a smoke run for tests.

Usage:
    python bench/gpu_bench.py [--device cuda] [--batch 256] [--timesteps 4,32] [--train-samples 10240] [--out J]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import torchvision

import spikeconv
from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.runtime import resolve_device
from spikeconv.training import train_snn
from spikeconv.workflows import load_ann, pretrained_path, snn_training_from_options

NETS = {"fmnist-cnn": (1, 28, 28), "resnet18": (3, 32, 32)}


def build(name: str) -> tuple[torch.nn.Module, str]:
    """The ANN and its conversion method: the shipped CNN, or a seeded random ResNet-18."""
    if name == "fmnist-cnn":
        return load_ann(pretrained_path()).model.eval(), "calibrated"
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval(), "rate"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def simulation_rate(snn: torch.nn.Module, shape: tuple[int, ...], batch: int, timesteps: int, repeats: int,
                    device: torch.device) -> float:  # fmt: skip
    x = torch.rand(batch, *shape, device=device)
    times = []
    with torch.inference_mode():
        snn(x, timesteps)  # warm-up (kernels, allocator)
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            snn(x, timesteps)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def training_rate(ann: torch.nn.Module, shape: tuple[int, ...], samples: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.rand(samples, *shape, generator=generator), torch.randint(0, 10, (samples,), generator=generator),
                        num_classes=10, name="synthetic")  # fmt: skip
    config = snn_training_from_options(neuron="srif", mpr=False, timesteps=4, epochs=1, batch_size=128, lr=None, optimizer=None,
                                       schedule="cosine", loss=None, tdbn=None, augment="none", seed=0)  # fmt: skip
    model = ann.to(device).train()
    synchronize(device)
    start = time.perf_counter()
    train_snn(model, data, config=config, progress=False)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": round(seconds, 2), "img_per_s": round(samples / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
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
    device = resolve_device(args.device)
    results = {}
    for name in args.nets.split(","):
        shape = NETS[name]
        ann, method = build(name)
        calibration = [torch.rand(64, *shape, generator=torch.Generator().manual_seed(1))]
        snn = spikeconv.convert(ann, calibration, method=method, timesteps=4, correction_samples=64, device=device).eval()
        row = {"method": method, "input": list(shape), "batch": args.batch}
        for steps in (int(t) for t in args.timesteps.split(",")):
            row[f"sim_img_per_s_T{steps}"] = round(simulation_rate(snn, shape, args.batch, steps, args.repeats, device), 1)
        row["train_snn_T4"] = training_rate(build(name)[0], shape, args.train_samples, device)
        results[name] = row
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    report = {"date": date.today().isoformat(), "device": str(device), "gpu": gpu, "torch": torch.__version__,
              "machine": platform.platform(), "threads": torch.get_num_threads(), "results": results}  # fmt: skip
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
