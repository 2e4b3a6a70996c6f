"""Plots of timestep–accuracy curves against their ANN references.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas attached directly, so the
library never selects a backend or touches pyplot's global figure registry (which would leak
figures in long-running processes and clash with the user's own backend choice).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from spikeconv._io import atomic_write
from spikeconv.errors import ConfigError
from spikeconv.evaluation.curve import CurveResult, as_curve_list

__all__ = ["curve_figure", "plot_curves"]


def curve_figure(
    results: CurveResult | Iterable[CurveResult],
    *,
    title: str | None = None,
    log_x: bool = True,
) -> Figure:
    """Build a figure of accuracy (%) versus timesteps, one line per curve.

    Each distinct ANN accuracy (at two decimals) adds a dashed horizontal line labelled
    ``"ANN (xx.xx%)"`` in the colour of the first curve that has it. With ``log_x`` the x axis
    is logarithmic in base 2, which spreads the usual power-of-two T values evenly.

    The figure has an Agg canvas, so ``fig.savefig`` works and notebooks display it.

    Raises:
        ConfigError: No curves were given.
    """
    curves = as_curve_list(results)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    seen: set[str] = set()
    for curve in curves:
        marker = "." if len(curve.timesteps) <= 32 else None  # dots would hide a dense curve
        (line,) = ax.plot(curve.timesteps, curve.accuracy, marker=marker, label=curve.label)
        if curve.ann_accuracy is None:
            continue
        ann_label = f"ANN ({curve.ann_accuracy:.2f}%)"
        if ann_label not in seen:
            seen.add(ann_label)
            ax.axhline(curve.ann_accuracy, linestyle="--", color=line.get_color(), label=ann_label)
    if log_x:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 1, 2, 4, not 2^0, 2^1, 2^2
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("accuracy (%)")
    if title is not None:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.4)
    ax.legend(loc="lower right")
    return fig


def plot_curves(
    results: CurveResult | Iterable[CurveResult],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    log_x: bool = True,
) -> None:
    """Write :func:`curve_figure` as a PNG file, atomically.

    The PNG is rendered in memory first, so a rendering error leaves no file behind.

    Raises:
        ConfigError: No curves were given, or ``path`` cannot be written (e.g. it is a folder).
    """
    fig = curve_figure(results, title=title, log_x=log_x)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    try:
        with atomic_write(path, "wb") as handle:
            handle.write(buffer.getvalue())
    except OSError as err:
        raise ConfigError(
            f"cannot write plot to {os.fspath(path)}: {err.strerror}; pass a writable file path"
        ) from None
