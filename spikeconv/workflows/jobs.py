"""End-to-end jobs composed from the packages: train an ANN, convert it, measure its curve.

Each job takes a frozen description of the work, validates inputs before doing any, and writes
every output atomically at the end, so a failure leaves no half-written file.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spikeconv._io import atomic_write
from spikeconv.calibration import CalibrationConfig, ThresholdPlan, calibrate, plan_of, prepare
from spikeconv.convert import ConvertConfig, CorrectionConfig, convert, correct
from spikeconv.data import Split, calibration_subset, dataset_info, load_dataset, make_loader
from spikeconv.evaluation import CurveResult, plot_curves, timestep_accuracy_curve, write_curve_json
from spikeconv.models import build_model
from spikeconv.models.activations import ActivationKind, ActivationSpec, apply_activation_, init_qcfs_thresholds_
from spikeconv.neurons import SpikingNetwork, check_timesteps
from spikeconv.training import (
    AnnTrainConfig,
    TrainHistory,
    evaluate_classifier,
    save_ann_checkpoint,
    train_ann,
)
from spikeconv.workflows.ann_files import LoadedAnn, canonical_graph, load_ann
from spikeconv.workflows.data_checks import check_data_fits
from spikeconv.workflows.snn_files import LoadedSnn, load_snn, save_snn


@dataclass(frozen=True)
class DataSource:
    """Where a job's data comes from: a data set name, an optional root, and ``--download``."""

    name: str = "fashion-mnist"
    root: Path | None = None
    download: bool = False

    def load(self, split: Split, limit: int | None = None):
        return load_dataset(self.name, split=split, root=self.root, download=self.download,
                            limit=limit)  # fmt: skip


# ---------------------------------------------------------------- train-ann
@dataclass(frozen=True)
class TrainAnnJob:
    """Train a ReLU ANN from the model registry and save a self-describing checkpoint."""

    arch: str
    out: Path
    data: DataSource = field(default_factory=DataSource)
    train: AnnTrainConfig = field(default_factory=AnnTrainConfig)
    dropout: float = 0.0
    batch_norm: bool = True
    normalize: bool = True
    train_limit: int | None = None
    activation: ActivationSpec = field(default_factory=ActivationSpec)
    command: str = ""


@dataclass(frozen=True)
class TrainAnnResult:
    history: TrainHistory
    test_accuracy: float
    path: Path


def train_ann_job(job: TrainAnnJob, *, progress: bool = True) -> TrainAnnResult:
    """Train, evaluate on the full test split, and write the checkpoint."""
    info = dataset_info(job.data.name) if ":" not in job.data.name else None
    train_data = job.data.load(Split.TRAIN, job.train_limit)
    test_data = job.data.load(Split.TEST)
    input_shape = tuple(train_data.sample_shape)
    mean = info.mean if (info and job.normalize) else None
    std = info.std if (info and job.normalize) else None
    model = build_model(job.arch, input_shape=input_shape, num_classes=train_data.num_classes,
                        mean=mean, std=std, batch_norm=job.batch_norm, dropout=job.dropout)  # fmt: skip
    apply_activation_(model, job.activation)
    if job.activation.kind is ActivationKind.QCFS:
        probe = calibration_subset(train_data, num_samples=512, seed=job.train.seed)
        x, _ = next(iter(make_loader(probe, batch_size=512, shuffle=False)))
        init_qcfs_thresholds_(model, x)
    history = train_ann(model, train_data, config=job.train, eval_data=test_data,
                        progress=progress)  # fmt: skip
    accuracy = evaluate_classifier(model, test_data)
    metadata = {
        "dataset": job.data.name,
        "test_accuracy": accuracy,
        "test_samples": len(test_data),
        "train_samples": len(train_data),
        "train_config": job.train.to_dict(),
        "dropout": job.dropout,
        "command": job.command,
        "epochs_seconds": [round(r.seconds, 2) for r in history.records],
        "machine": platform.platform(),
    }
    save_ann_checkpoint(job.out, model=model, arch=job.arch, input_shape=input_shape,
                        num_classes=train_data.num_classes, mean=mean, std=std,
                        metadata=metadata,
                        activation=None if job.activation.kind is ActivationKind.RELU else job.activation.to_dict())  # fmt: skip
    return TrainAnnResult(history=history, test_accuracy=accuracy, path=job.out)


# ---------------------------------------------------------------- convert
@dataclass(frozen=True)
class ConvertJob:
    """Calibrate a trained ANN on training data and write the SNN file."""

    model: Path
    out: Path
    data: DataSource = field(default_factory=DataSource)
    calib_samples: int = 2000
    calib_seed: int = 0
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    correction: CorrectionConfig | None = None
    method: str = "rate"
    plan_json: Path | None = None


@dataclass(frozen=True)
class ConvertResult:
    snn: SpikingNetwork
    plan: ThresholdPlan
    ann: LoadedAnn


def convert_job(job: ConvertJob, *, progress: bool = True) -> ConvertResult:
    """ANN file -> calibrated SNN file (and optionally the threshold plan as JSON)."""
    ann = load_ann(job.model)
    graph = canonical_graph(ann.source, ann.model)
    train = job.data.load(Split.TRAIN)
    check_data_fits(train, input_shape=ann.input_shape, num_classes=ann.num_classes,
                    what=f"calibration ({job.data.name})")  # fmt: skip
    subset = calibration_subset(train, num_samples=job.calib_samples, seed=job.calib_seed)
    extra = {"dataset": job.data.name, "split": "train", "seed": job.calib_seed}
    calibrated = calibrate(prepare(graph, job.calibration), make_loader(subset, batch_size=256, shuffle=False),
                           progress=progress, extra=extra)  # fmt: skip
    if job.correction is not None:
        calibrated = correct(calibrated, make_loader(subset, batch_size=256, shuffle=False), job.correction, job.convert)
    snn = convert(calibrated, job.convert)
    plan = plan_of(calibrated)
    info = {
        "input_shape": list(ann.input_shape),
        "num_classes": ann.num_classes,
        "preprocessing": ann.preprocessing,
        "method": job.method,
        "calibration": {"dataset": job.data.name, "samples": plan.num_samples, "seed": job.calib_seed,
                        "config": job.calibration.to_dict()},  # fmt: skip
        "ann_metadata": {k: v for k, v in ann.metadata.items() if k in ("test_accuracy", "dataset")},
        "torch_version": str(torch.__version__),
    }
    save_snn(job.out, snn, ann_source=ann.source, info=info)
    if job.plan_json is not None:
        plan.save(job.plan_json)
    return ConvertResult(snn=snn, plan=plan, ann=ann)


# ---------------------------------------------------------------- curve
@dataclass(frozen=True)
class CurveJob:
    """Simulate a saved SNN once for T steps and record the accuracy after every step."""

    snn: Path
    timesteps: int
    data: DataSource = field(default_factory=DataSource)
    limit: int | None = None
    batch_size: int = 256
    time_chunk: int | None = None
    json_path: Path | None = None
    plot_path: Path | None = None

    def __post_init__(self) -> None:
        check_timesteps(self.timesteps)


def curve_job(job: CurveJob, *, progress: bool = True) -> CurveResult:
    """Timestep-accuracy curve of an SNN file on a test split, with its ANN (if converted) as the reference."""
    loaded = load_snn(job.snn)
    return curve_of_loaded(loaded, job, progress=progress)


def curve_of_loaded(loaded: LoadedSnn, job: CurveJob, *, progress: bool = True) -> CurveResult:
    test = job.data.load(Split.TEST, job.limit)
    check_data_fits(test, input_shape=tuple(loaded.info["input_shape"]),
                    num_classes=int(loaded.info["num_classes"]), what=f"test ({job.data.name})")  # fmt: skip
    snn = loaded.snn
    if job.time_chunk is not None:
        snn.time_chunk = check_timesteps(job.time_chunk)
    result = timestep_accuracy_curve(snn, test, timesteps=job.timesteps, ann=loaded.ann,
                                     batch_size=job.batch_size, progress=progress,
                                     label=f"SNN ({job.snn.name})")  # fmt: skip
    if job.json_path is not None:
        write_curve_json(result, job.json_path)
    if job.plot_path is not None:
        plot_curves([result], job.plot_path, title=f"{job.snn.name} on {job.data.name}")
    return result


def write_json(path: Path, payload: dict) -> None:
    """Write a JSON document atomically."""
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2)
