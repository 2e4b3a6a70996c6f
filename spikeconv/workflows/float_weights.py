"""``curve`` of an SNN converted with ``--weight-bits``: the same conversion with float weights beside it.

The SNN file holds the integer weights; its calibrated ANN graph, plan and settings rebuild the
float network exactly as it was before quantisation (the same folded thresholds and corrections),
which is then simulated on the same samples, so the table shows what the integer grid costs.
"""

from __future__ import annotations

from dataclasses import replace

from spikeconv.convert import ConvertConfig, convert
from spikeconv.evaluation import CurveResult
from spikeconv.files import LoadedSnn

__all__ = ["float_weights_curve", "integer_bits"]


def integer_bits(loaded: LoadedSnn) -> int | None:
    """The ``--weight-bits`` a converted SNN was made with (None: float weights, or not converted)."""
    record = (loaded.snn.metadata or {}).get("convert", {}) if isinstance(loaded.snn.metadata, dict) else {}
    bits = record.get("weight_bits") if isinstance(record, dict) else None
    return int(bits) if bits is not None and loaded.calibrated is not None else None


def float_weights_curve(loaded: LoadedSnn, job, result: CurveResult) -> CurveResult:
    """The curve of ``loaded``'s conversion with float weights, labelled beside ``result`` (same data, T, device)."""
    from spikeconv.workflows.curve import curve_of_loaded

    config = replace(ConvertConfig.from_dict(loaded.snn.metadata["convert"]), weight_bits=None)
    floats = convert(loaded.calibrated, config).eval()
    curve = curve_of_loaded(replace(loaded, snn=floats), job, progress=False)
    return replace(curve, label=f"{result.label} with float weights")
