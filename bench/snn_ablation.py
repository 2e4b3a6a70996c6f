"""Direct-training ablation (issue 5): IF / LIF / SRIF / SRIF+MPR at T = 2 and 4, one budget.

Runs ``bench/train_snn_fmnist.py`` once per (neuron, T) with the same data, epochs, optimizer
(SGD momentum 0.9, lr 0.1, cosine), loss (cross-entropy on the mean readout) and seed, and prints a
Markdown table of full-test-set accuracy (10,000 images) with the training wall time. Each run's
JSON is kept in ``--out-dir``; a run whose JSON exists is not repeated (rerun to resume).

Usage:
    OMP_NUM_THREADS=1 python bench/snn_ablation.py --epochs 1 --limit-train 10000 --out-dir bench/results/ablation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import train_snn_fmnist  # noqa: E402

VARIANTS = (("if", False), ("lif", False), ("srif", False), ("srif", True))
"""The ablation's neurons as (train-snn --neuron, --mpr); bench/reproduce_seeds.py runs the same four."""


def variant_name(neuron: str, mpr: bool) -> str:
    """``srif+mpr`` style name of one variant, used in file names and tables."""
    return f"{neuron}{'+mpr' if mpr else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", default="2,4")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--augment", default="none")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    steps = [int(t) for t in args.timesteps.split(",")]
    results: dict[tuple[str, int], dict] = {}
    for t in steps:
        for neuron, mpr in VARIANTS:
            name = variant_name(neuron, mpr)
            path = args.out_dir / f"{name}_t{t}.json"
            if not path.exists():
                argv = ["--neuron", neuron, "--timesteps", str(t), "--epochs", str(args.epochs), "--augment", args.augment,
                        "--threads", str(args.threads), "--seed", str(args.seed), "--out-json", str(path)]  # fmt: skip
                argv += ["--mpr"] if mpr else []
                argv += ["--limit-train", str(args.limit_train)] if args.limit_train else []
                train_snn_fmnist.main(argv)
            results[(name, t)] = json.loads(path.read_text())
    print(f"\n{args.epochs} epoch(s), {next(iter(results.values()))['train_samples']} training images, seed {args.seed}\n")
    print("| neuron | " + " | ".join(f"T={t} (train s)" for t in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for neuron, mpr in VARIANTS:
        name = variant_name(neuron, mpr)
        cells = [f"{results[(name, t)]['test_accuracy']:.2f} ({results[(name, t)]['total_seconds']:.0f})" for t in steps]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
