"""SNN simulation speed relative to the ANN it came from (issue 2's speed goal).

Reports, on one batch of Fashion-MNIST test images in one process:

    ratio = time(SNN forward for T steps) / (T × time(ANN forward))

The dense-simulation floor is about 1.0 (every step runs every layer once); the first layer's
constant input current is computed once per sample, not per step, which is what lets the ratio
approach or beat 1.0. ANN and SNN forwards alternate (round-robin, so a change in machine load
hits both alike); the ratio is the median of the per-round ratios, after a warm-up, with a fixed
number of threads. The load average is recorded with the result.

Usage:
    python bench/sim_speed.py [--model CKPT] [--method rate] [--sin-correction none] [--timesteps 32]
        [--batch 256] [--threads 2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch

import spikeconv
from spikeconv.convert import ConvertConfig
from spikeconv.data import calibration_subset
from spikeconv.neurons import SinCorrection
from spikeconv.workflows import load_ann, pretrained_path


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _round_robin(ann, snn, repeats: int) -> tuple[list[float], list[float]]:
    """Per-round (ANN seconds, SNN seconds), the two forwards alternating after one warm-up of each."""
    ann()
    snn()
    pairs = [(_seconds(ann), _seconds(snn)) for _ in range(repeats)]
    return [a for a, _ in pairs], [s for _, s in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="spikeconv ANN checkpoint (default: shipped fmnist-cnn)")
    parser.add_argument("--method", default="rate", help="conversion method (spikeconv convert --method)")
    parser.add_argument("--target-timesteps", type=int, default=8, help="the T that calibrated methods optimise for")
    parser.add_argument("--sin-correction", default="none", choices=["none", "signed", "isi"])
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_path = args.model or pretrained_path()
    ann = load_ann(model_path)
    ann.model.eval()
    subset = calibration_subset(spikeconv.load_dataset("fashion-mnist", split=spikeconv.Split.TRAIN), num_samples=2000, seed=0)
    calib = torch.stack([subset[i][0] for i in range(len(subset))])
    config = ConvertConfig(sin_correction=SinCorrection.from_name(args.sin_correction))
    snn = spikeconv.convert(ann, list(calib.split(250)), method=args.method, timesteps=args.target_timesteps, config=config).eval()
    x = spikeconv.load_dataset("fashion-mnist", split=spikeconv.Split.TEST, limit=args.batch).as_tensors()[0]

    load = os.getloadavg()
    with torch.inference_mode():
        ann_times, snn_times = _round_robin(lambda: ann.model(x), lambda: snn(x, args.timesteps), args.repeats)
    ann_s, snn_s = statistics.median(ann_times), statistics.median(snn_times)
    ratio = statistics.median(s / (args.timesteps * a) for a, s in zip(ann_times, snn_times, strict=True))
    result = {
        "model": str(model_path.name),
        "method": args.method,
        "sin_correction": args.sin_correction,
        "timesteps": args.timesteps,
        "batch": args.batch,
        "threads": args.threads,
        "repeats": args.repeats,
        "ann_forward_ms": round(ann_s * 1e3, 3),
        "snn_forward_ms": round(snn_s * 1e3, 3),
        "snn_img_per_s": round(args.batch / snn_s, 1),
        "ratio": round(ratio, 3),
        "load_average": [round(v, 2) for v in load],
        "torch": str(torch.__version__),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({torch.get_num_threads()} threads)".strip(),
        "date": date.today().isoformat(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
