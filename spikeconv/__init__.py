"""spikeconv: convert trained ReLU networks into spiking neural networks, and measure them honestly.

The public API, re-exported here; nothing else is public::

    import spikeconv
    snn = spikeconv.convert(model, calibration_batches, method="calibrated", timesteps=4)
    curve = spikeconv.evaluate_curve(snn, test_loader, timesteps=32, ann=model)

``spikeconv.convert`` is the conversion function; the subpackage of the same name stays importable
as ``from spikeconv.convert import ...``.
"""

import logging

from spikeconv.calibration import (
    CalibrationConfig,
    MaxThreshold,
    PercentileThreshold,
    ThresholdPlan,
    attach_plan,
    calibrate,
    plan_of,
    prepare,
)
from spikeconv.convert import ConvertConfig
from spikeconv.data import Split, available_datasets, load_dataset
from spikeconv.errors import (
    CalibrationError,
    CheckpointError,
    ConfigError,
    ConversionError,
    DataError,
    DatasetNotFoundError,
    OutputError,
    SpikeconvError,
    UnsupportedLayerError,
)
from spikeconv.evaluation import CurveResult, plot_curves, timestep_accuracy_curve, write_curve_json
from spikeconv.files.snn_exports import available_snn_exports, export_snn
from spikeconv.ingest import activation_sites, ingest_module
from spikeconv.models import available_models, build_model
from spikeconv.neurons import DirectEncoding, IFNeuron, PoissonEncoding, Reset, SpikingNetwork
from spikeconv.workflows import (
    METHODS,
    ConversionMethod,
    LoadedAnn,
    LoadedSnn,
    ModelSpec,
    Preprocessing,
    load_ann,
    load_snn,
    save_snn,
)
from spikeconv.workflows.api import convert, convert_model, evaluate_curve  # noqa: F811  (the function shadows the subpackage)

logging.getLogger("spikeconv").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "available_snn_exports",
    "export_snn",
    "METHODS",
    "CalibrationConfig",
    "CalibrationError",
    "CheckpointError",
    "ConfigError",
    "ConversionError",
    "ConversionMethod",
    "ConvertConfig",
    "CurveResult",
    "DataError",
    "DatasetNotFoundError",
    "DirectEncoding",
    "IFNeuron",
    "LoadedAnn",
    "LoadedSnn",
    "MaxThreshold",
    "ModelSpec",
    "OutputError",
    "PercentileThreshold",
    "PoissonEncoding",
    "Preprocessing",
    "Reset",
    "SpikeconvError",
    "SpikingNetwork",
    "Split",
    "ThresholdPlan",
    "UnsupportedLayerError",
    "activation_sites",
    "attach_plan",
    "available_datasets",
    "available_models",
    "build_model",
    "calibrate",
    "convert",
    "convert_model",
    "evaluate_curve",
    "ingest_module",
    "load_ann",
    "load_dataset",
    "load_snn",
    "plan_of",
    "plot_curves",
    "prepare",
    "save_snn",
    "timestep_accuracy_curve",
    "write_curve_json",
]
