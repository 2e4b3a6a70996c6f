"""Curve results as JSON files and as plain-text tables.

File layout (``format`` and ``version`` let later readers tell old files apart):

* one curve: ``{"format": "spikeconv.curve", "version": 1, "label", "timesteps", "accuracy",
  "ann_accuracy", "num_samples", "meta"}``, so scripts can read the numbers at top level;
* several: ``{"format": "spikeconv.curves", "version": 1, "curves": [<one curve each>]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spikeconv._io import atomic_write
from spikeconv.errors import ConfigError, DataError
from spikeconv.evaluation.curve import CurveResult, as_curve_list

__all__ = ["format_curve_table", "read_curve_json", "read_curves_json", "write_curve_json"]

_SINGLE = "spikeconv.curve"
_MULTI = "spikeconv.curves"
_VERSION = 1


def write_curve_json(
    results: CurveResult | Iterable[CurveResult], path: str | os.PathLike[str]
) -> None:
    """Write one curve (top-level keys) or several (under ``"curves"``) as JSON, atomically.

    A single :class:`CurveResult` gives the single-curve layout; any sequence, even of one,
    gives the ``"curves"`` layout, so :func:`read_curve_json` returns the same shape back.

    Raises:
        ConfigError: ``results`` is empty, or ``path`` cannot be written (e.g. it is a folder).
    """
    if isinstance(results, CurveResult):
        document: dict[str, Any] = {"format": _SINGLE, "version": _VERSION, **results.to_dict()}
    else:
        curves = [r.to_dict() for r in as_curve_list(results)]
        document = {"format": _MULTI, "version": _VERSION, "curves": curves}
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    try:
        with atomic_write(path, "w") as handle:
            handle.write(text)
    except OSError as err:
        raise ConfigError(
            f"cannot write curve JSON to {os.fspath(path)}: {err.strerror}; "
            "pass a writable file path"
        ) from None


def read_curve_json(path: str | os.PathLike[str]) -> CurveResult | list[CurveResult]:
    """Read a file from :func:`write_curve_json`: one result, or a list for a multi-curve file.

    Raises:
        DataError: The file is missing, is not JSON, or does not hold curve results.
    """
    document = _load(path)
    try:
        if "curves" in document:
            curves = document["curves"]
            if not isinstance(curves, list) or not curves:
                raise DataError("key 'curves' must be a non-empty list")
            return [CurveResult.from_dict(item) for item in curves]
        return CurveResult.from_dict(document)
    except DataError as err:
        raise DataError(f"{os.fspath(path)}: {err}") from None


def read_curves_json(path: str | os.PathLike[str]) -> list[CurveResult]:
    """Like :func:`read_curve_json`, but always a list (one item for a single-curve file)."""
    loaded = read_curve_json(path)
    return [loaded] if isinstance(loaded, CurveResult) else loaded


def _load(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(
            f"cannot read curve JSON {os.fspath(path)}: {err.strerror}; check the path"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{os.fspath(path)} is not valid JSON ({err.msg}, line {err.lineno})"
        ) from None
    if not isinstance(document, dict):
        raise DataError(f"{os.fspath(path)} must hold a JSON object, not {type(document).__name__}")
    fmt = document.get("format")
    if fmt is not None and fmt not in (_SINGLE, _MULTI):
        raise DataError(f"{os.fspath(path)} holds {fmt!r}, not spikeconv curves")
    return document


def default_table_points(max_timesteps: int) -> list[int]:
    """Powers of two up to ``max_timesteps``, plus ``max_timesteps`` itself."""
    points, t = [], 1
    while t < max_timesteps:
        points.append(t)
        t *= 2
    return [*points, max_timesteps]


def _check_points(points: Sequence[int]) -> list[int]:
    if any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in points) or not points:
        raise ConfigError(f"table points must be a non-empty list of ints >= 1, got {points!r}")
    return sorted(set(points))


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _table_rows(curves: list[CurveResult], points: list[int]) -> list[list[str]]:
    header = ["T"]
    for curve in curves:
        header.append(curve.label)
        if curve.ann_accuracy is not None:
            header.append(f"{curve.label} gap to ANN")
    rows = [header]
    for t in points:
        row = [str(t)]
        for curve in curves:
            acc = curve.accuracy_at(t) if t in curve.timesteps else None
            row.append(_cell(acc))
            if curve.ann_accuracy is not None:
                gap = None if acc is None else acc - curve.ann_accuracy
                row.append(_cell(gap, signed=True))
        rows.append(row)
    if all(curve.ann_accuracy is None for curve in curves):
        return rows  # e.g. directly trained SNNs: no ANN to compare with
    ann_row = ["ANN"]
    for curve in curves:
        ann_row.append(_cell(curve.ann_accuracy))
        if curve.ann_accuracy is not None:
            ann_row.append("")
    return [*rows, ann_row]


def format_curve_table(
    results: CurveResult | Iterable[CurveResult], *, points: Sequence[int] | None = None
) -> str:
    """A markdown table of accuracy (%) per timestep, one column per curve.

    Rows are the timesteps in ``points`` (default: powers of two up to the largest T, plus
    that T), then an ``ANN`` row unless no curve has an ANN accuracy. Each curve with an ANN accuracy also gets a
    ``"<label> gap to ANN"`` column holding SNN − ANN in points (negative while the SNN is
    behind). Values have two decimals; ``-`` marks a timestep the curve did not record.

    Raises:
        ConfigError: No curves, or ``points`` is empty or holds values < 1.
    """
    curves = as_curve_list(results)
    if points is None:
        chosen = default_table_points(max(c.max_timesteps for c in curves))
    else:
        chosen = _check_points(points)
    rows = _table_rows(curves, chosen)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([lines[0], rule, *lines[1:], *_cost_notes(curves)]) + "\n"


def _cost_notes(curves: list[CurveResult]) -> list[str]:
    """One line per curve whose neurons send more than one bit per step, so that its T is not read as binary T."""
    notes = []
    for curve in curves:
        cost = curve.extra.get("step_cost") if isinstance(curve.extra, Mapping) else None
        if isinstance(cost, Mapping) and not cost.get("binary", True):
            bits = float(cost["bits_per_neuron_step"])
            notes.append(f"\n{curve.label}: up to {cost['max_levels']} output levels per neuron and step, {bits:.2f} bits per "
                         f"neuron-step: T steps carry what {bits:.2f}·T binary steps would")  # fmt: skip
    return notes
