"""Peak memory and wall time of every ``convert`` stage, and of a T = 8 ``curve`` batch, on deep torchvision networks.

Each network is built by torchvision with random weights for 10 classes and written as a ``.pt2`` program
(the input size fixed, the batch free); the data are ``synthetic:3xSxS`` images, made on demand, so nothing
but the samples of one batch is held. Every measurement is a separate process run under ``/usr/bin/time -v``
(its maximum resident set size is the peak) with ``spikeconv -v``, whose stage lines give each stage's wall
time and peak (``spikeconv/runtime/memory.py``). Accuracy means nothing here: the weights are random.

Rows (``--plan``):
- ``convert``: ``--method calibrated --target-timesteps 8`` with ``--calib-samples N`` (500 / 2,000 / 5,000)
  and ``--correction-samples C``: the peak must not grow with N;
- ``curve``: one batch of ``--curve-batch`` test images at T = 8 of the SNN just written;
- ``auto``: the no-flag ``convert`` (``--method auto``), its search bounded by ``--auto-val`` validation
  samples and ``--auto-max-t`` (the full search at 224x224 takes hours on 2 cores).

Usage:
    python bench/scale.py --archs resnet18 --sizes 224 --samples 500,2000,5000 --budget 4G --json bench/results/scale_r18_224.json
    python bench/scale.py --archs resnet18,resnet34,resnet50,vgg11_bn,vgg16_bn,mobilenet_v2,densenet121 --sizes 32 \\
        --samples 500,2000,5000 --json bench/results/scale_32.json
    python bench/scale.py --archs resnet18 --sizes 224 --plan auto --auto-val 200 --auto-max-t 2 --budget 4G --json J
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch
import torchvision

ARCHS = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "vgg11_bn": torchvision.models.vgg11_bn,
    "vgg16_bn": torchvision.models.vgg16_bn,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "densenet121": torchvision.models.densenet121,
}
STAGE = re.compile(r"stage (.+?): ([\d.]+) s, peak resident memory ([\d.]+) (GiB|MiB|KiB)")
UNITS = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10}


def write_model(arch: str, size: int, folder: Path) -> Path:
    """torchvision's ``arch`` with random weights (seed 0), exported for 3 x size x size inputs."""
    path = folder / f"{arch}_{size}.pt2"
    if not path.exists():
        torch.manual_seed(0)
        model = ARCHS[arch](num_classes=10).eval()
        torch.export.save(torch.export.export(model, (torch.zeros(1, 3, size, size),)), path)
    return path


def measure(argv: list[str], env: dict[str, str]) -> dict:
    """Run ``spikeconv -v ARGV`` under /usr/bin/time -v; its stages, peak resident memory and wall time."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "spikeconv", "-v", *argv]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    text = done.stderr + done.stdout
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.group(1).split(":")))) if wall else None
    stages = [{"stage": m.group(1), "seconds": float(m.group(2)), "peak_gib": round(float(m.group(3)) * UNITS[m.group(4)] / (1 << 30), 3)}
              for m in STAGE.finditer(text)]  # fmt: skip
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    return {"command": "spikeconv " + " ".join(argv), "exit": done.returncode,
            "peak_rss_gib": round(int(peak.group(1)) / (1 << 20), 3) if peak else None,
            "wall_s": round(seconds, 1) if seconds is not None else None, "stages": stages,
            "error": errors[0] if errors else None}  # fmt: skip


def run(args: argparse.Namespace) -> list[dict]:
    env = dict(os.environ)
    if args.budget:
        env["SPIKECONV_MEMORY_BUDGET"] = args.budget
    rows = []
    with tempfile.TemporaryDirectory(prefix="spikeconv-scale-") as scratch:
        folder = Path(args.models) if args.models else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            data = f"synthetic:3x{size}x{size}:{max(args.samples) + args.auto_val}"
            for arch in args.archs:
                model = write_model(arch, size, folder)
                snn = Path(scratch) / f"{arch}_{size}.snn.pt"
                for samples in args.samples if "convert" in args.plan else []:
                    argv = ["convert", str(model), "--dataset", data, "--method", "calibrated", "--target-timesteps", "8",
                            "--calib-samples", str(samples), "--correction-samples", str(args.correction_samples),
                            "--out", str(snn)]  # fmt: skip
                    rows.append({"arch": arch, "size": size, "kind": "convert", "samples": samples, **measure(argv, env)})
                    print(json.dumps(rows[-1]), flush=True)
                if "curve" in args.plan and snn.exists():
                    argv = ["curve", str(snn), "--dataset", data, "--timesteps", "8", "--limit", str(args.curve_batch),
                            "--batch-size", str(args.curve_batch)]  # fmt: skip
                    rows.append({"arch": arch, "size": size, "kind": "curve", "samples": args.curve_batch, **measure(argv, env)})
                    print(json.dumps(rows[-1]), flush=True)
                if "auto" in args.plan:
                    argv = ["convert", str(model), "--dataset", data, "--val-samples", str(args.auto_val), "--max-timesteps",
                            str(args.auto_max_t), "--correction-samples", str(args.correction_samples), "--out", str(snn)]  # fmt: skip
                    rows.append({"arch": arch, "size": size, "kind": "auto", "samples": args.auto_val, **measure(argv, env)})
                    print(json.dumps(rows[-1]), flush=True)
                snn.unlink(missing_ok=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=lambda s: s.split(","), default=list(ARCHS))
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[32, 224])
    parser.add_argument("--samples", type=lambda s: [int(v) for v in s.split(",")], default=[500, 2000, 5000])
    parser.add_argument("--plan", type=lambda s: s.split(","), default=["convert", "curve"], help="convert,curve,auto")
    parser.add_argument("--correction-samples", type=int, default=64)
    parser.add_argument("--curve-batch", type=int, default=64)
    parser.add_argument("--auto-val", type=int, default=500)
    parser.add_argument("--auto-max-t", type=int, default=4)
    parser.add_argument("--budget", default="", help="SPIKECONV_MEMORY_BUDGET for every run (empty: the default)")
    parser.add_argument("--models", default="", help="keep the exported programs in this folder")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    unknown = set(args.archs) - set(ARCHS)
    if unknown:
        parser.error(f"unknown architectures {sorted(unknown)}; choose from {sorted(ARCHS)}")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    rows = run(args)
    record = {"date": started, "machine": platform.platform(), "cpus": os.cpu_count(), "budget": args.budget or "default",
              "torch": torch.__version__, "argv": sys.argv[1:], "rows": rows}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
