"""Figures of a comparison report: accuracy vs T, spike rate per layer, energy vs accuracy.

Built like :mod:`spikeconv.evaluation.plots`: plain ``Figure`` objects with an Agg canvas, no
pyplot, so notebooks display them and nothing global is touched.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from spikeconv._io import atomic_write
from spikeconv.errors import ConfigError

__all__ = ["accuracy_figure", "energy_figure", "save_figure", "spike_rate_figure"]


def _figure(width: float = 6.4, height: float = 4.4) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _models(report: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    models = report.get("models") or []
    if not models:
        raise ConfigError("the report holds no models to plot")
    return [m for m in models if m["kind"] != "ann"], [m for m in models if m["kind"] == "ann"]


def _log2_x(ax: Any) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))


def accuracy_figure(report: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Accuracy (%) vs timesteps for every spiking network, each ANN as a dashed horizontal line.

    Lines follow the accuracy after every simulated step; markers sit on the reported budgets.
    """
    snns, anns = _models(report)
    fig = _figure()
    ax = fig.add_subplot()
    for model in snns:
        curve = model["curve"]
        (line,) = ax.plot(curve["timesteps"], curve["accuracy"], linewidth=1.2, label=model["label"])
        points = model["points"]
        ax.plot([p["timesteps"] for p in points], [p["accuracy"] for p in points], "o", markersize=4, color=line.get_color())
    for ann in anns:
        accuracy = ann["points"][0]["accuracy"]
        ax.axhline(accuracy, linestyle="--", color="black", linewidth=1, label=f"{ann['label']} ({accuracy:.2f}%)")
    if snns:
        _log2_x(ax)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "accuracy vs timesteps")
    return fig


def spike_rate_figure(report: Mapping[str, Any], *, timesteps: int | None = None, title: str | None = None) -> Figure:
    """Spikes per neuron per timestep of every spiking layer, one line per spiking network.

    Args:
        report: A comparison report.
        timesteps: The budget T whose rates to show (default: the largest reported).
    """
    snns, _ = _models(report)
    if not snns:
        raise ConfigError("the report holds no spiking networks, so there are no spike rates to plot")
    t = timesteps if timesteps is not None else max(p["timesteps"] for m in snns for p in m["points"])
    fig = _figure(max(6.4, 1.0 + 0.9 * max(len(m["points"][0]["spike_rates"]) for m in snns)), 4.4)
    ax = fig.add_subplot()
    names: list[str] = []
    for model in snns:
        point = next((p for p in model["points"] if p["timesteps"] == t), None)
        if point is None:
            raise ConfigError(f"{model['label']} has no point at T = {t}")
        rates = point["spike_rates"]
        ax.plot(range(1, len(rates) + 1), list(rates.values()), marker="o", label=model["label"])
        names = names if len(names) >= len(rates) else list(rates)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_xlabel("spiking layer")
    ax.set_ylabel("spikes per neuron per timestep")
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize="small")
    ax.set_title(title or f"spike rate per layer at T = {t}")
    return fig


def energy_figure(report: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Accuracy vs estimated energy per inference (µJ, log scale); each SNN point is labelled with its T."""
    snns, anns = _models(report)
    fig = _figure()
    ax = fig.add_subplot()
    for model in snns:
        points = model["points"]
        energy = [p["energy_pj"] / 1e6 for p in points]
        (line,) = ax.plot(energy, [p["accuracy"] for p in points], marker="o", markersize=4, label=model["label"])
        for p, e in zip(points, energy, strict=True):
            ax.annotate(f"{p['timesteps']}", (e, p["accuracy"]), textcoords="offset points", xytext=(3, 3),
                        fontsize="x-small", color=line.get_color())  # fmt: skip
    for ann in anns:
        p = ann["points"][0]
        ax.plot([p["energy_pj"] / 1e6], [p["accuracy"]], marker="*", markersize=12, linestyle="none", color="black",
                label=f"{ann['label']}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("estimated energy per inference (µJ)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    formula = report.get("energy_model", {}).get("formula", "")
    ax.set_title(title or f"accuracy vs energy ({formula}; numbers: T)", fontsize="small")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> None:
    """Write ``fig`` as a PNG atomically (rendered in memory first, so an error leaves no file).

    Raises:
        ConfigError: ``path`` cannot be written.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    try:
        with atomic_write(path, "wb") as handle:
            handle.write(buffer.getvalue())
    except OSError as err:
        raise ConfigError(f"cannot write plot to {os.fspath(path)}: {err.strerror}; pass a writable path") from None
