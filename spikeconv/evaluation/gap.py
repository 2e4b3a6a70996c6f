"""Where a converted SNN's error comes from, per layer: quantisation (the T-step code) or timing (the simulation).

For every spiking layer three signals are compared on the same samples (shapes ``[N, C, ...]``):

- ``a``: the ANN's activation clipped at the layer's threshold, ``clip(z, 0, θ)``;
- ``r``: the ideal T-step rate code, the count an IF neuron with a steady input would emit
  (:class:`~spikeconv.convert.RateCodeQuantizer`) times θ/T;
- ``s``: the SNN's measured mean output over T steps, ``θ · spikes / T``.

Errors are relative to the layer's activation norm, ``‖e‖₂ / ‖a‖₂`` over every sample and unit, in
two readings:

- *accumulated*: each network runs on its own inputs (the ANN on the ANN's, the rate-code network
  on its own quantised activations, the SNN on its spikes): quantisation ``‖r − a‖``, timing
  ``‖s − r‖``, total ``‖s − a‖``; each layer inherits the error of the layers before it;
- *local*: what the layer itself adds. Clipping: ``‖relu(z_ANN) − a‖``, the code's range (part of
  the quantisation, and the whole of it as T grows; the other errors are measured against the
  clipped ANN). Quantisation: the layer's code applied to the ANN's own pre-activation,
  ``‖q(z_ANN) − a‖``. Timing: the SNN layer against the ideal code of its *own* mean input
  current, ``‖s − q(z̄_SNN)‖``: both receive the same charge over T steps, so the difference is
  only when it arrived (late charge left in the membrane, early spikes that later negative input
  contradicts). Fed the ANN's inputs, a layer's input would be steady and its IF neuron would emit
  exactly the rate code, so local timing is measured on the SNN's own inputs. The signed
  ``timing bias``, ``Σ(s − q(z̄_SNN))/Σa``, says whether the layer fires too little (< 0) or too
  much (> 0) for its charge.

This module holds the tallies, the result and its table; :mod:`spikeconv.workflows.gap` runs the
three networks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["GapResult", "GapTally", "LayerGap", "format_gap_table"]

READOUT = "readout"
"""Name of the last row: the logits (ANN, rate code) against the SNN's mean readout current."""


@dataclass(frozen=True)
class LayerGap:
    """One layer's signals and errors (see the module docstring); ``None`` where a reading does not apply."""

    name: str
    threshold: float  # θ (mean over channels for per-channel thresholds)
    units: int  # per sample
    mean_ann: float
    mean_rate_code: float
    mean_snn: float
    quantisation: float  # accumulated ‖r − a‖/‖a‖
    timing: float  # accumulated ‖s − r‖/‖a‖
    total: float  # ‖s − a‖/‖a‖
    clip_local: float | None = None  # ‖relu(z_ANN) − a‖/‖a‖: what clipping at θ alone takes from the ANN
    quantisation_local: float | None = None  # ‖q(z_ANN) − a‖/‖a‖
    timing_local: float | None = None  # ‖s − q(z̄_SNN)‖/‖a‖
    timing_bias: float | None = None  # Σ(s − q(z̄_SNN))/Σa

    @property
    def timing_dominates(self) -> bool:
        """Local timing error above local quantisation error (accumulated errors for the readout row)."""
        if self.timing_local is None or self.quantisation_local is None:
            return self.timing > self.quantisation
        return self.timing_local > self.quantisation_local


@dataclass(frozen=True)
class GapResult:
    """The per-layer gap analysis of one SNN at T on ``samples`` samples, with the network-level accuracies (percent).

    ``ann_accuracy`` is the ANN as converted (None if unknown); ``clipped_accuracy`` the ANN the SNN
    approximates (its own weights, every activation clipped at θ); ``rate_code_accuracy`` its ideal
    T-step rate code; ``snn_accuracy`` the simulation after T steps.
    """

    timesteps: int
    samples: int
    clipped_accuracy: float
    rate_code_accuracy: float
    snn_accuracy: float
    layers: tuple[LayerGap, ...]
    ann_accuracy: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> LayerGap:
        """The row of layer ``name`` (``"readout"`` for the logits)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def spiking_layers(self) -> tuple[LayerGap, ...]:
        return tuple(row for row in self.layers if row.name != READOUT)

    def timing_layers(self) -> list[str]:
        """The spiking layers whose local timing error exceeds their local quantisation error."""
        return [row.name for row in self.spiking_layers if row.timing_dominates]

    def to_dict(self) -> dict[str, Any]:
        return {"format": "spikeconv-gap", "version": 1, "timesteps": self.timesteps, "samples": self.samples,
                "accuracy": {"ann": self.ann_accuracy, "clipped_ann": self.clipped_accuracy,
                             "rate_code": self.rate_code_accuracy, "snn": self.snn_accuracy},
                "layers": [asdict(row) for row in self.layers], "timing_layers": self.timing_layers(),
                "extra": dict(self.extra)}  # fmt: skip


class GapTally:
    """Running sums (float64) of the signals and squared errors of each layer, batch by batch."""

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, float]] = {}
        self._units: dict[str, int] = {}
        self._thresholds: dict[str, float] = {}
        self.samples = 0

    def _add(self, name: str, key: str, value: Tensor) -> None:
        row = self._sums.setdefault(name, {})
        row[key] = row.get(key, 0.0) + float(value.double().sum())

    def add_layer(self, name: str, *, threshold: Tensor, ann: Tensor, rate: Tensor, snn: Tensor,
                  local_code: Tensor | None = None, own_code: Tensor | None = None,
                  unclipped: Tensor | None = None) -> None:  # fmt: skip
        """One batch of one layer: ``ann`` = a, ``rate`` = r, ``snn`` = s, ``local_code`` = q(z_ANN), ``own_code`` = q(z̄_SNN),
        ``unclipped`` = relu(z_ANN)."""
        a, r, s = ann.double(), rate.double(), snn.double()
        self._units[name] = int(a[0].numel())
        self._thresholds[name] = float(threshold.double().mean())
        for key, value in (("a", a), ("r", r), ("s", s), ("aa", a * a), ("quant", (r - a) ** 2), ("timing", (s - r) ** 2),
                           ("total", (s - a) ** 2)):  # fmt: skip
            self._add(name, key, value)
        if local_code is not None:
            self._add(name, "quant_local", (local_code.double() - a) ** 2)
        if unclipped is not None:
            self._add(name, "clip_local", (unclipped.double() - a) ** 2)
        if own_code is not None:
            error = s - own_code.double()
            self._add(name, "timing_local", error * error)
            self._add(name, "timing_bias", error)

    def rows(self) -> tuple[LayerGap, ...]:
        return tuple(self._row(name, sums) for name, sums in self._sums.items())

    def _row(self, name: str, sums: dict[str, float]) -> LayerGap:
        norm = math.sqrt(sums["aa"]) or 1.0
        elements = max(self.samples * self._units[name], 1)

        def relative(key: str) -> float | None:
            return None if key not in sums else math.sqrt(sums[key]) / norm

        return LayerGap(name=name, threshold=self._thresholds[name], units=self._units[name], mean_ann=sums["a"] / elements,
                        mean_rate_code=sums["r"] / elements, mean_snn=sums["s"] / elements, quantisation=relative("quant"),
                        timing=relative("timing"), total=relative("total"), quantisation_local=relative("quant_local"),
                        clip_local=relative("clip_local"),
                        timing_local=relative("timing_local"),
                        timing_bias=None if "timing_bias" not in sums else sums["timing_bias"] / (sums["a"] or 1.0))  # fmt: skip


def _cell(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def format_gap_table(result: GapResult) -> str:
    """The per-layer table, the accuracies and which layers timing dominates, as ``spikeconv gap`` prints them."""
    lines = [f"gap analysis at T = {result.timesteps} on {result.samples} samples (errors relative to the layer's ANN "
             "activation norm; local = what the layer adds, accumulated = what reaches it)", "",
             "| layer | θ | mean ANN | mean rate code | mean SNN | clip local | quant. local | timing local | timing bias | "
             "quant. accum. | timing accum. | total |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in result.layers:
        threshold = "" if row.name == READOUT else f"{row.threshold:.4g}"
        bias = "" if row.timing_bias is None else f"{row.timing_bias:+.3f}"
        local = " | ".join(_cell(value) for value in (row.clip_local, row.quantisation_local, row.timing_local))
        lines.append(f"| {row.name} | {threshold} | {row.mean_ann:.4f} | {row.mean_rate_code:.4f} | {row.mean_snn:.4f} | "
                     f"{local} | {bias} | {row.quantisation:.3f} | {row.timing:.3f} | {row.total:.3f} |")  # fmt: skip
    ann = "n/a" if result.ann_accuracy is None else f"{result.ann_accuracy:.2f}"
    lines += ["", f"accuracy: ANN {ann} %, ANN clipped at θ {result.clipped_accuracy:.2f} %, ideal rate code "
              f"{result.rate_code_accuracy:.2f} %, SNN {result.snn_accuracy:.2f} % (T = {result.timesteps})"]  # fmt: skip
    timing = result.timing_layers()
    spiking = len(result.spiking_layers)
    lines.append(f"timing dominates (local) in {len(timing)} of {spiking} spiking layers" + (f": {', '.join(timing)}" if timing else ""))
    return "\n".join(lines)
