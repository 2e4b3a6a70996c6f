"""Accuracy at T = 1, 2, 4, 8, 16, 32, 64 for every conversion method (issue 4's table).

Each method converts the same trained ANN through the same code path as `spikeconv convert
--method M` and is measured by ONE simulation of 64 steps over the test set (the accuracy after
every step comes from the accumulated readout), exactly as `spikeconv curve` does.

Usage:
    python bench/low_latency_table.py --ann spikeconv/models/pretrained/fmnist-cnn.pt \
        --methods rate,calibrated,calibrated-light,burst --out-json bench/results/low_latency_relu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from spikeconv.workflows import (
    ConvertJob,
    CurveJob,
    DataSource,
    convert_from_options,
    convert_job,
    curve_job,
    settings_from_options,
)

POINTS = (1, 2, 4, 8, 16, 32, 64)


def run_method(ann: Path, spec: str, *, target: int, limit: int | None, workdir: Path) -> dict:
    """``spec`` is a method name with optional ``+`` flags: ``+signed`` / ``+isi`` (SIN correction),
    ``+per-channel`` (one threshold per channel), e.g. ``calibrated+signed+per-channel``."""
    method, *flags = spec.split("+")
    sin = next((f for f in flags if f in ("signed", "isi")), None)
    base = convert_from_options(reset="subtract", v_init=0.5, encoding="direct", seed=0, timesteps=64)
    settings = settings_from_options(method, base, target_timesteps=target, correction_samples=512, threshold=None,
                                     percentile=None, per_channel="per-channel" in flags, max_spikes=None,
                                     sin_correction=sin)  # fmt: skip
    snn_path = workdir / f"{ann.stem}.{spec}.snn.pt"
    start = time.perf_counter()
    convert_job(ConvertJob(model=ann, out=snn_path, data=DataSource("fashion-mnist"), calib_samples=2000,
                           calibration=settings.calibration, convert=settings.convert,
                           correction=settings.correction, method=method), progress=False)  # fmt: skip
    converted = time.perf_counter()
    curve = curve_job(CurveJob(snn=snn_path, timesteps=max(POINTS), data=DataSource("fashion-mnist"), limit=limit),
                      progress=False)  # fmt: skip
    done = time.perf_counter()
    return {
        "method": spec,
        "ann": ann.name,
        "ann_accuracy": curve.ann_accuracy,
        "num_samples": curve.num_samples,
        "accuracy": {t: curve.accuracy_at(t) for t in POINTS},
        "convert_seconds": round(converted - start, 1),
        "curve_seconds": round(done - converted, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ann", type=Path, required=True)
    parser.add_argument("--methods", default="rate,calibrated,calibrated-light,burst")
    parser.add_argument("--target-timesteps", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="first N test images (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/spikeconv-bench"))
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    print("| ANN | method | " + " | ".join(f"T={t}" for t in POINTS) + " | ANN acc |")
    print("|---|---|" + "---|" * (len(POINTS) + 1))
    for method in args.methods.split(","):
        row = run_method(args.ann, method, target=args.target_timesteps, limit=args.limit, workdir=args.workdir)
        rows.append(row)
        cells = " | ".join(f"{row['accuracy'][t]:.2f}" for t in POINTS)
        print(f"| {args.ann.stem} | {method} | {cells} | {row['ann_accuracy']:.2f} |", flush=True)
        if args.out_json:
            args.out_json.parent.mkdir(parents=True, exist_ok=True)
            args.out_json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
