"""SNN simulation speed relative to the ANN it came from (issue 2's speed goal).

Reports, on one batch of Fashion-MNIST test images in one process:

    ratio = time(SNN forward for T steps) / (T × time(ANN forward))

The dense-simulation floor is about 1.0 (every step runs every layer once); the first layer's
constant input current is computed once per sample, not per step, which is what lets the ratio
approach or beat 1.0. Median over repeated runs, after warm-up, with a fixed number of threads.

Usage:
    python bench/sim_speed.py [--model CKPT] [--timesteps 32] [--batch 256] [--threads 2] [--repeats 7]
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

import spikeconv
from spikeconv.workflows import ConvertJob, DataSource, convert_job, load_snn, pretrained_path


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="spikeconv ANN checkpoint (default: shipped fmnist-cnn)")
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_path = args.model or pretrained_path()
    snn_path = Path("/tmp/spikeconv-bench-speed.snn.pt")
    convert_job(ConvertJob(model=model_path, out=snn_path, data=DataSource("fashion-mnist"), calib_samples=2000),
                progress=False)  # fmt: skip
    loaded = load_snn(snn_path)
    x = spikeconv.load_dataset("fashion-mnist", split=spikeconv.Split.TEST, limit=args.batch).as_tensors()[0]

    with torch.inference_mode():
        ann_s = _median_seconds(lambda: loaded.ann(x), args.repeats)
        snn_s = _median_seconds(lambda: loaded.snn(x, args.timesteps), args.repeats)
    result = {
        "model": str(model_path.name),
        "timesteps": args.timesteps,
        "batch": args.batch,
        "threads": args.threads,
        "repeats": args.repeats,
        "ann_forward_ms": round(ann_s * 1e3, 3),
        "snn_forward_ms": round(snn_s * 1e3, 3),
        "ratio": round(snn_s / (args.timesteps * ann_s), 3),
        "torch": str(torch.__version__),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({torch.get_num_threads()} threads)".strip(),
        "date": date.today().isoformat(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
