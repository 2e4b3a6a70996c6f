"""Side-by-side comparison of networks: accuracy, spikes, operations and energy per timestep budget.

Pure functions over plain dicts, so a notebook gets the same numbers and tables as the CLI:

* :func:`snn_result` / :func:`ann_result` turn one evaluation (a curve and its operation counts)
  into a JSON-ready *model result*: one point per requested T with accuracy, spikes, spike rates
  and operations per sample;
* :func:`build_report` prices every point with an :class:`EnergyModel` and adds the run's facts;
* :func:`report_markdown` renders the report as markdown tables.

Energy is not stored in model results, only operation counts, so a report can be rebuilt with
other constants (``--e-ac``, ``--e-mac``) without simulating anything again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spikeconv.errors import ConfigError
from spikeconv.evaluation.curve import CurveResult
from spikeconv.evaluation.energy import EnergyModel
from spikeconv.evaluation.op_counts import OperationCounts

__all__ = ["RESULT_FORMAT", "REPORT_FORMAT", "accuracy_table", "ann_result", "build_report", "report_markdown", "snn_result"]

RESULT_FORMAT = "spikeconv.compare-result"
REPORT_FORMAT = "spikeconv.compare-report"
VERSION = 1


def _check_points(timesteps: Sequence[int], simulated: int) -> list[int]:
    points = sorted(set(timesteps))
    if not points or any(isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= simulated for t in points):
        raise ConfigError(f"timesteps must be integers in 1..{simulated} (the steps simulated), got {list(timesteps)!r}")
    return points


def snn_result(*, method: str, kind: str, label: str, curve: CurveResult, counts: OperationCounts,
               timesteps: Sequence[int], model: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The model result of a spiking network simulated once for ``curve.max_timesteps`` steps.

    Args:
        method: Short name (``calibrated``, ``srif-mpr``, ...).
        kind: ``"conversion"`` or ``"direct"``.
        label: Name in tables and plots.
        curve: Accuracy after every step from :func:`timestep_accuracy_curve`.
        counts: Spikes and operations counted during that same simulation.
        timesteps: The budgets T to report (each <= the steps simulated).
        model: JSON facts on where the network came from.

    Raises:
        ConfigError: A T outside the simulated range, or counts from a different run length.
    """
    if counts.timesteps != curve.max_timesteps or not counts.spiking:
        raise ConfigError(f"counts cover {counts.timesteps} steps of a {'spiking' if counts.spiking else 'non-spiking'} "
                          f"network but the curve {curve.max_timesteps}; count during the curve's simulation")  # fmt: skip
    cost = curve.extra.get("step_cost") if isinstance(curve.extra, Mapping) else None
    bits = float(cost["bits_per_neuron_step"]) if isinstance(cost, Mapping) else 1.0
    points = [{"timesteps": t, "accuracy": curve.accuracy_at(t), **counts.totals(t), "bits_per_neuron_step": bits,
               "binary_equivalent_timesteps": round(bits * t, 3)}
              for t in _check_points(timesteps, curve.max_timesteps)]  # fmt: skip
    return {
        "format": RESULT_FORMAT, "version": VERSION, "method": method, "kind": kind, "label": label,
        "num_samples": curve.num_samples, "simulated_timesteps": curve.max_timesteps,
        "curve": {"timesteps": list(curve.timesteps), "accuracy": list(curve.accuracy)},
        "ann_accuracy": curve.ann_accuracy, "points": points, "counts": counts.to_dict(), "model": dict(model or {}),
        **({"step_cost": dict(cost)} if isinstance(cost, Mapping) else {}),
    }  # fmt: skip


def ann_result(*, accuracy: float, num_samples: int, counts: OperationCounts, label: str = "ANN", method: str = "ann",
               model: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The model result of an ordinary ANN: one point (no timesteps) with its dense MACs."""
    if counts.spiking:
        raise ConfigError("ann_result needs the counts of an ANN, got those of a spiking network")
    return {
        "format": RESULT_FORMAT, "version": VERSION, "method": method, "kind": "ann", "label": label,
        "num_samples": int(num_samples), "simulated_timesteps": None, "curve": None, "ann_accuracy": float(accuracy),
        "points": [{"timesteps": None, "accuracy": float(accuracy), **counts.totals()}],
        "counts": counts.to_dict(), "model": dict(model or {}),
    }  # fmt: skip


def build_report(results: Sequence[Mapping[str, Any]], *, energy: EnergyModel, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Price every point of every model result and gather them into one report.

    Each point gains ``energy_pj`` and, when an ANN result is present, ``energy_vs_ann`` (the
    ratio to the ANN's energy per inference).

    Raises:
        ConfigError: No results, or two with the same method name.
    """
    if not results:
        raise ConfigError("no model results to report")
    names = [r["method"] for r in results]
    if len(set(names)) != len(names):
        raise ConfigError(f"each method may appear once in a report, got {names}")
    ann = next((r for r in results if r["kind"] == "ann"), None)
    ann_energy = None if ann is None else energy.energy_pj(ac=ann["points"][0]["ac"], mac=ann["points"][0]["mac"])
    models = []
    for result in results:
        points = []
        for point in result["points"]:
            e = energy.energy_pj(ac=point["ac"], mac=point["mac"])
            ratio = None if not ann_energy else e / ann_energy
            points.append({**point, "energy_pj": e, "energy_vs_ann": ratio, "energy_static_once_pj": _once(point, energy)})
        models.append({**result, "points": points})
    return {"format": REPORT_FORMAT, "version": VERSION, "meta": dict(meta or {}), "energy_model": energy.to_dict(),
            "models": models}  # fmt: skip


def _once(point: Mapping[str, Any], energy: EnergyModel) -> float:
    """Energy if the layers with a time-invariant input (before the first neuron of a direct-encoded
    SNN) ran once and their output current were held, instead of being charged at every step."""
    t = point.get("timesteps") or 1
    static_ac, static_mac = point.get("static_ac", 0.0), point.get("static_mac", 0.0)
    return energy.energy_pj(ac=point["ac"] - static_ac * (1 - 1 / t), mac=point["mac"] - static_mac * (1 - 1 / t))


# ---------------------------------------------------------------- markdown
def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def _spiking(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in report["models"] if m["kind"] != "ann"]


def accuracy_table(report: Mapping[str, Any]) -> str:
    """Markdown table of accuracy (%): one row per budget T, one column per spiking network, then the ANN row."""
    snns = _spiking(report)
    budgets = sorted({p["timesteps"] for m in snns for p in m["points"]})
    header = ["T", *(m["label"] for m in snns)]
    rows = []
    for t in budgets:
        cells = [next((f"{p['accuracy']:.2f}" for p in m["points"] if p["timesteps"] == t), "-") for m in snns]
        rows.append([str(t), *cells])
    for ann in (m for m in report["models"] if m["kind"] == "ann"):
        rows.append([ann["label"], *([f"{ann['points'][0]['accuracy']:.2f}"] * len(snns))])
    return _table(header, rows) if snns else ""


def _cost_table(model: Mapping[str, Any]) -> str:
    header = ["T", "bits/neuron-step", "accuracy (%)", "spikes", "spike rate", "SOPs (AC)", "MACs", "energy (µJ)", "× ANN energy",
              "energy, 1st layer once (µJ)"]  # fmt: skip
    rows = []
    for p in model["points"]:
        bits = "-" if model["kind"] == "ann" else f"{p.get('bits_per_neuron_step', 1.0):.2f}"
        ratio = "-" if p.get("energy_vs_ann") is None else f"{p['energy_vs_ann']:.3g}"
        t = "-" if p["timesteps"] is None else str(p["timesteps"])
        rate = "-" if model["kind"] == "ann" else f"{p['spike_rate']:.4f}"
        spikes = "-" if model["kind"] == "ann" else _si(p["spikes"])
        once = "-" if model["kind"] == "ann" else f"{p['energy_static_once_pj'] / 1e6:.4g}"
        rows.append([t, bits, f"{p['accuracy']:.2f}", spikes, rate, _si(p["ac"]), _si(p["mac"]),
                     f"{p['energy_pj'] / 1e6:.4g}", ratio, once])  # fmt: skip
    return _table(header, rows)


def _rate_table(report: Mapping[str, Any]) -> tuple[int | None, str]:
    snns = _spiking(report)
    if not snns:
        return None, ""
    t = max(p["timesteps"] for m in snns for p in m["points"])
    names: list[str] = []
    for m in snns:
        names += [n for n in next(p for p in m["points"] if p["timesteps"] == t)["spike_rates"] if n not in names]
    rows = []
    for name in names:
        rates = [next(p for p in m["points"] if p["timesteps"] == t)["spike_rates"].get(name) for m in snns]
        rows.append([name, *("-" if r is None else f"{r:.4f}" for r in rates)])
    return t, _table(["spiking layer", *(m["label"] for m in snns)], rows)


def _facts(meta: Mapping[str, Any]) -> str:
    versions = meta.get("versions") or {}
    facts = [
        ("command", f"`{meta['command']}`" if meta.get("command") else None),
        ("test samples", meta.get("samples")),
        ("test data sha256", f"`{meta['data_sha256']}`" if meta.get("data_sha256") else None),
        ("seed", meta.get("seed")),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or None),
        ("machine", meta.get("machine")),
        ("torch threads", meta.get("torch_threads")),
        ("created", meta.get("created")),
        ("wall time of this run (s)", meta.get("wall_seconds")),
        ("time to make and evaluate every network, over all runs (s)", meta.get("total_model_seconds")),
    ]
    lines = [f"- {name}: {value}" for name, value in facts if value is not None]
    return "\n".join(lines) + "\n" if lines else ""


def _models_section(report: Mapping[str, Any]) -> str:
    lines = ["\n## Where each network came from\n"]
    for m in report["models"]:
        model, seconds = m.get("model", {}), m.get("seconds") or {}
        made = f"; made in {seconds['make']:.0f} s, evaluated in {seconds['evaluate']:.0f} s" if seconds else ""
        lines.append(f"- **{m['label']}**: {model.get('source', '?')} `{model.get('path', '?')}`{made}")
        if model.get("command"):
            lines.append(f"  - made by: `{model['command']}`")
        if model.get("curve_command"):
            lines.append(f"  - same accuracies: `{model['curve_command']}`")
    return "\n".join(lines) + "\n"


def report_markdown(report: Mapping[str, Any], *, plots: Mapping[str, str] | None = None) -> str:
    """The report as markdown: accuracy per method and T, cost per method, spike rates, energy model.

    Args:
        report: Output of :func:`build_report`.
        plots: Optional ``{caption: relative path}`` of figures to link at the end.
    """
    meta, energy = report.get("meta", {}), report["energy_model"]
    parts = [f"# Conversion vs direct training: {meta.get('arch', 'model')} on {meta.get('dataset', 'data')}\n\n",
             _facts(meta), "\n## Accuracy (%) per timestep budget T\n\n",
             "Each spiking network is simulated once for the largest T; the accuracy at T is read after T steps.\n\n",
             accuracy_table(report), "\n## Cost per inference (averages per test sample)\n\n",
             f"Energy `{energy['formula']}` ({energy['source']}). SOPs are spike-driven accumulates; MACs are "
             "multiply-accumulates on analog values (the first layer of a direct-encoded SNN, every ANN layer).\n"]  # fmt: skip
    for model in report["models"]:
        trained = model.get("model", {}).get("train_timesteps")
        note = f" (trained at T = {trained})" if trained else ""
        parts.append(f"\n### {model['label']}{note}\n\n" + _cost_table(model))
    t, rates = _rate_table(report)
    if rates:
        parts.append(f"\n## Spike rate per layer at T = {t} (spikes per neuron per timestep)\n\n" + rates)
    parts.append(_caveats(energy))
    parts.append(_models_section(report))
    if plots:
        parts.append("\n## Figures\n\n" + "\n\n".join(f"![{caption}]({path})" for caption, path in plots.items()) + "\n")
    return "".join(parts)


def _caveats(energy: Mapping[str, Any]) -> str:
    return (
        "\n## How the numbers are counted\n\n"
        f"- `{energy['formula']}` with e_AC = {energy['e_ac_pj']:g} pJ, e_MAC = {energy['e_mac_pj']:g} pJ "
        f"({energy['source']}); change them with `--e-ac` / `--e-mac`.\n"
        "- A conv/linear layer fed spikes costs one AC per non-zero input per output unit it connects to "
        "(a burst or multi-spike value, or an average-pooled value, is one synaptic event). A layer fed the "
        "analog input costs its dense MACs at every step. Average pooling costs one AC per input event and window.\n"
        "- Layers before the first spiking neuron of a direct-encoded SNN see the same image at every step; they are "
        "charged their dense MACs at every step (the image is fed as an input current each step). The column "
        "*energy, 1st layer once* charges them once instead, as if their output current were computed once and held.\n"
        "- Connections to padding are not counted (conventional MAC counters include them; without padding the two agree).\n"
        "- Not counted: memory access (often the dominant cost), neuron membrane updates, biases, BatchNorm "
        "(folded into the layer before it), max pooling, data movement. The estimate compares arithmetic only.\n"
    )
