"""Tables of ``bench/reproduce_seeds.py``: mean ± std over seeds and paired differences, from the logs finished so far.

A cell's value is the test accuracy after the run's last epoch (the full test set at the training T, as
``train-snn`` logs it). Means and sample standard deviations (n − 1) are over the finished seeds only,
and every cell says its n; a paired difference ``A − B`` is taken per seed where both runs finished, so
the seed's shared initialisation and data order cancel. Missing, partial and mismatched runs are named
in their cells, never counted, so a report of a half-done table is honest about what it holds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CLAIMS", "accuracy_of", "summary", "write_report"]

CLAIMS: dict[str, dict[str, Any]] = {
    "mtlif": {
        "title": "Multi-threshold LIF on Fashion-MNIST, recipe xu2021-mtlif (seed 002: 93.08 % at T = 2, mean of 5 runs)",
        "reference": 93.08,
        "pairs": (),
    },
    "ablation": {
        "title": "IF / LIF / SRIF / SRIF + MPR, recipe guo2022-inflor, same budget (seed 000: SRIF + MPR > SRIF > IF, LIF)",
        "reference": None,
        "pairs": (("srif+mpr", "srif"), ("srif", "if"), ("srif", "lif"), ("lif", "if")),
    },
}


def accuracy_of(run: Any, state: str, log: Mapping[str, Any] | None) -> float | None:
    """The final test accuracy of a finished run, else None."""
    if state != "finished" or log is None:
        return None
    return float(log["epochs"][run.epochs - 1]["eval_accuracy"])


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None below two values) and n."""
    n = len(values)
    return {"mean": statistics.fmean(values) if n else None, "std": statistics.stdev(values) if n > 1 else None, "n": n}


def _record(run: Any, state: str, log: Mapping[str, Any] | None, out_dir: Path) -> dict[str, Any]:
    epochs = log.get("epochs", []) if log is not None and state != "mismatch" else []
    finished = state == "finished"
    return {"method": run.method, "timesteps": run.timesteps, "seed": run.seed, "epochs": run.epochs, "state": state,
            "epochs_done": len(epochs), "test_accuracy": accuracy_of(run, state, log),
            "train_seconds": sum(e["seconds"] for e in epochs[: run.epochs]) if finished else None,
            "log": str(run.log(out_dir))}  # fmt: skip


def _cell_text(record: Mapping[str, Any]) -> str:
    if record["state"] == "finished":
        return f"{record['test_accuracy']:.2f}"
    if record["state"] == "partial":
        return f"partial {record['epochs_done']}/{record['epochs']}"
    return "other options" if record["state"] == "mismatch" else "missing"


def _stat_text(stats: Mapping[str, Any], signed: bool = False) -> str:
    if not stats["n"]:
        return "—"
    mean = f"{stats['mean']:+.2f}" if signed else f"{stats['mean']:.2f}"
    spread = f" ± {stats['std']:.2f}" if stats["std"] is not None else ""
    return f"{mean}{spread} (n = {stats['n']})"


def _groups(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], dict[int, Mapping[str, Any]]]:
    groups: dict[tuple[str, int], dict[int, Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["method"], record["timesteps"]), {})[record["seed"]] = record
    return groups


def _cells(records: list[dict[str, Any]], seeds: list[int], reference: float | None) -> tuple[list[dict], list[str]]:
    rows = [f"| method | T | epochs | {' | '.join(f'seed {s}' for s in seeds)} | mean ± std |"
            + (f" mean − {reference:.2f} |" if reference is not None else "")]  # fmt: skip
    rows.append("|---|---|---|" + "---|" * len(seeds) + "---|" + ("---|" if reference is not None else ""))
    cells = []
    for (method, t), by_seed in _groups(records).items():
        values = [by_seed[s]["test_accuracy"] for s in seeds if s in by_seed and by_seed[s]["test_accuracy"] is not None]
        stats = summary(values)
        cells.append({"method": method, "timesteps": t, **stats,
                      "by_seed": {str(s): by_seed[s]["test_accuracy"] if s in by_seed else None for s in seeds}})  # fmt: skip
        texts = [_cell_text(by_seed[s]) if s in by_seed else "missing" for s in seeds]
        epochs = next(iter(by_seed.values()))["epochs"]
        gap = "" if reference is None else (f" {stats['mean'] - reference:+.2f} |" if stats["n"] else " — |")
        rows.append(f"| {method} | {t} | {epochs} | {' | '.join(texts)} | {_stat_text(stats)} |{gap}")
    return cells, rows


def _paired(records: list[dict[str, Any]], seeds: list[int], pairs: Sequence[tuple[str, str]]) -> tuple[list[dict], list[str]]:
    groups = _groups(records)
    rows = [f"| difference (points) | T | {' | '.join(f'seed {s}' for s in seeds)} | mean ± std | seeds > 0 |",
            "|---|---|" + "---|" * len(seeds) + "---|---|"]  # fmt: skip
    paired = []
    for t in sorted({t for _, t in groups}):
        for a, b in pairs:
            if (a, t) not in groups or (b, t) not in groups:
                continue
            by_seed: dict[str, float | None] = {}
            for seed in seeds:
                first, second = (groups[(m, t)].get(seed, {}).get("test_accuracy") for m in (a, b))
                by_seed[str(seed)] = None if first is None or second is None else first - second
            values = [v for v in by_seed.values() if v is not None]
            stats = {**summary(values), "positive": sum(v > 0 for v in values)}
            paired.append({"a": a, "b": b, "timesteps": t, "by_seed": by_seed, **stats})
            texts = ["—" if v is None else f"{v:+.2f}" for v in by_seed.values()]
            count = f"{stats['positive']}/{stats['n']}" if stats["n"] else "—"
            rows.append(f"| {a} − {b} | {t} | {' | '.join(texts)} | {_stat_text(stats, signed=True)} | {count} |")
    return paired, rows


def write_report(states: Mapping[str, list[tuple[Any, str, Mapping[str, Any] | None]]], out_dir: Path) -> str:
    """Write ``out_dir/report.md`` and ``report.json`` for the tables in ``states``; return the Markdown.

    ``states`` maps a table name to its ``(run, state, log)`` triples (``reproduce_seeds.run_state``).
    """
    markdown, tables = [], {}
    for table, entries in states.items():
        claim = CLAIMS[table]
        records = [_record(run, state, log, out_dir) for run, state, log in entries]
        seeds = sorted({record["seed"] for record in records})
        cells, rows = _cells(records, seeds, claim["reference"])
        markdown += [f"### {claim['title']}", "", *rows, ""]
        paired, paired_rows = _paired(records, seeds, claim["pairs"])
        if paired:
            markdown += ["Paired differences, same seed (test accuracy points):", "", *paired_rows, ""]
        finished = sum(record["state"] == "finished" for record in records)
        markdown += [f"{finished} of {len(records)} runs finished.", ""]
        tables[table] = {"title": claim["title"], "reference": claim["reference"], "runs": records, "cells": cells, "paired": paired}
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "\n".join(markdown)
    (out_dir / "report.md").write_text(text)
    (out_dir / "report.json").write_text(json.dumps({"format": "reproduce-seeds-report", "tables": tables}, indent=2) + "\n")
    return text
