"""Five-line Python API: convert any nn.Module with any iterable of batches, then measure it.

These are the same objects the CLI uses: ``convert_model`` is ingest -> prepare -> calibrate ->
convert; ``evaluate_curve`` is :func:`spikeconv.evaluation.timestep_accuracy_curve`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from spikeconv.calibration import CalibrationConfig, calibrate, prepare
from spikeconv.convert import ConvertConfig, convert
from spikeconv.evaluation import CurveResult, timestep_accuracy_curve
from spikeconv.ingest import ingest_module
from spikeconv.neurons import SpikingNetwork


def convert_model(
    model: nn.Module,
    calibration_data: Iterable[Any],
    *,
    calibration: CalibrationConfig | None = None,
    config: ConvertConfig | None = None,
    max_samples: int | None = None,
    progress: bool = False,
) -> SpikingNetwork:
    """Convert a trained ReLU ``model`` into a soft-reset SNN calibrated on ``calibration_data``.

    Args:
        model: The ANN; it is deep-copied and never modified.
        calibration_data: Batches of inputs: a DataLoader, a list of tensors, or ``(x, y)`` pairs.
        calibration: Threshold rules per activation site (default: 99.99th percentile per layer).
        config: Neuron and simulation settings (default: soft reset, θ/2 initial membrane,
            direct encoding).
        max_samples: Stop calibrating after this many samples.
        progress: Show a progress bar.

    Returns:
        A :class:`SpikingNetwork`; call ``snn(x, T)`` for the readout current ``[T, N, K]``.
    """
    prepared = prepare(ingest_module(model), calibration)
    calibrated = calibrate(prepared, calibration_data, max_samples=max_samples, progress=progress)
    return convert(calibrated, config)


def evaluate_curve(
    snn: nn.Module,
    data: Any,
    *,
    timesteps: int,
    ann: nn.Module | None = None,
    batch_size: int = 256,
    progress: bool = False,
    label: str = "snn",
) -> CurveResult:
    """Accuracy after every step 1..``timesteps`` from one simulation (see timestep_accuracy_curve)."""
    return timestep_accuracy_curve(snn, data, timesteps=timesteps, ann=ann, batch_size=batch_size,
                                   progress=progress, label=label)  # fmt: skip
