"""End-to-end jobs (train, convert, curve, demo) composed from the packages below."""

from spikeconv.evaluation import format_curve_table
from spikeconv.workflows.ann_files import LoadedAnn, load_ann, rebuild_ann
from spikeconv.workflows.demo import DemoJob, DemoResult, demo_job, pretrained_path
from spikeconv.workflows.jobs import (
    ConvertJob,
    ConvertResult,
    CurveJob,
    DataSource,
    TrainAnnJob,
    TrainAnnResult,
    convert_job,
    curve_job,
    train_ann_job,
)
from spikeconv.workflows.options import (
    ACTIVATIONS,
    AUGMENTS,
    ENCODINGS,
    OPTIMIZERS,
    RESETS,
    SCHEDULES,
    THRESHOLD_RULES,
    activation_from_options,
    ann_training_from_options,
    calibration_from_options,
    convert_from_options,
)
from spikeconv.workflows.snn_files import LoadedSnn, build_snn, load_snn, save_snn

__all__ = [
    "ACTIVATIONS",
    "activation_from_options",
    "AUGMENTS",
    "ENCODINGS",
    "OPTIMIZERS",
    "RESETS",
    "SCHEDULES",
    "THRESHOLD_RULES",
    "ann_training_from_options",
    "calibration_from_options",
    "convert_from_options",
    "format_curve_table",
    "ConvertJob",
    "ConvertResult",
    "CurveJob",
    "DataSource",
    "DemoJob",
    "DemoResult",
    "LoadedAnn",
    "LoadedSnn",
    "TrainAnnJob",
    "TrainAnnResult",
    "build_snn",
    "convert_job",
    "curve_job",
    "demo_job",
    "load_ann",
    "load_snn",
    "pretrained_path",
    "rebuild_ann",
    "save_snn",
    "train_ann_job",
]
