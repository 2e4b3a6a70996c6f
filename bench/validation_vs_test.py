"""How well auto's validation split predicts the test-set drop: counted and expected drops on three sets of images.

For one converted SNN file (Fashion-MNIST), simulated at each T given, this scores the SNN against its ANN on
(1) the 2,000 validation images auto used before the expected drop (calibration seed 0, 2,000 calibration images),
(2) 10,000 other training images, disjoint from both, and (3) the 10,000 test images; on each it reports the counted
drop (ANN accuracy minus SNN accuracy, with the standard error of the paired difference) and the expected drop
(:mod:`spikeconv.search.expected_drop`, with the temperature fitted on set 1, as auto fits it on its search samples).
The expected drop on the test images needs no test labels; it is printed to show that the estimate carries over.

Usage (about 1-5 minutes per network on one thread; docs/benchmarks.md, "Validation vs test: the expected drop"):
    python bench/validation_vs_test.py SNN_FILE --timesteps 4,5,6,7,8 --json bench/results/validation_vs_test/NAME.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from datetime import date
from pathlib import Path

import torch

from spikeconv.data import Split, calibration_indices, load_dataset
from spikeconv.files import load_snn
from spikeconv.search.expected_drop import ExpectedDrop
from spikeconv.search.splits import validation_indices


def held_out_sets(train, test, limit: int | None = None) -> dict[str, tuple]:
    """The three image sets: (dataset, indices), each cut to its first ``limit`` images when given (a smoke run)."""
    validation = validation_indices(len(train), calibration_samples=2000, calibration_seed=0, samples=2000)
    used = torch.zeros(len(train), dtype=torch.bool)
    used[validation] = True
    used[calibration_indices(len(train), num_samples=2000, seed=0)] = True
    free = torch.nonzero(~used).flatten()
    other = free[torch.randperm(len(free), generator=torch.Generator().manual_seed(7))[:10000]].sort().values
    sets = {"validation": (train, validation), "other_training": (train, other), "test": (test, torch.arange(len(test)))}
    return {name: (dataset, indices[:limit]) for name, (dataset, indices) in sets.items()}


def predictions(snn, ann, images: torch.Tensor, timesteps: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The ANN's outputs, and the SNN's class after each T in ``timesteps`` (one simulation of the largest T)."""
    with torch.inference_mode():
        logits = torch.cat([ann(images[i : i + 500]) for i in range(0, len(images), 500)])
        found: dict[int, list[torch.Tensor]] = {t: [] for t in timesteps}
        for i in range(0, len(images), 250):
            summed = snn(images[i : i + 250], max(timesteps)).cumsum(dim=0)
            for t in timesteps:
                found[t].append(summed[t - 1].argmax(dim=1))
    return logits, {t: torch.cat(v) for t, v in found.items()}


def counted(logits: torch.Tensor, labels: torch.Tensor, snn: torch.Tensor) -> dict[str, float]:
    ann_right, snn_right = logits.argmax(dim=1) == labels, snn == labels
    lost, gained, n = float((ann_right & ~snn_right).sum()), float((~ann_right & snn_right).sum()), labels.numel()
    se = 100.0 * math.sqrt(max(lost + gained - (lost - gained) ** 2 / n, 0.0)) / n
    return {"drop": round(100.0 * (lost - gained) / n, 2), "drop_se": round(se, 2),
            "changed": round(100.0 * float((logits.argmax(dim=1) != snn).float().mean()), 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snn", type=Path)
    parser.add_argument("--timesteps", required=True, help="comma-separated T, e.g. 4,5,6")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set only (a smoke run)")
    args = parser.parse_args()
    timesteps = sorted({int(t) for t in args.timesteps.split(",")})
    loaded = load_snn(args.snn)
    snn, ann = loaded.snn.eval(), loaded.ann.eval()
    sets = held_out_sets(load_dataset("fashion-mnist", split=Split.TRAIN), load_dataset("fashion-mnist", split=Split.TEST),
                         args.limit)  # fmt: skip
    read = {}
    for name, (dataset, indices) in sets.items():
        images, labels = zip(*(dataset[int(i)] for i in indices), strict=True)
        logits, by_t = predictions(snn, ann, torch.stack(images), timesteps)
        read[name] = (logits, torch.tensor(labels), by_t)
    beta = ExpectedDrop(read["validation"][0], read["validation"][1]).inverse_temperature
    rows = []
    for t in timesteps:
        row = {"timesteps": t}
        for name, (logits, labels, by_t) in read.items():
            expected = ExpectedDrop(logits, labels)
            expected.inverse_temperature = beta  # fitted on the validation images, as auto fits it on its own
            expected.probabilities = torch.softmax(logits.double() * beta, dim=1).float()
            row[name] = {**counted(logits, labels, by_t[t]), **expected.score(by_t[t])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    record = {"snn": str(args.snn), "inverse_temperature": round(beta, 4), "rows": rows,
              "ann_accuracy": {name: round(100.0 * float((r[0].argmax(1) == r[1]).float().mean()), 2) for name, r in read.items()},
              "machine": platform.platform(), "date": str(date.today()), "threads": torch.get_num_threads()}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
