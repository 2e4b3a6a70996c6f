"""End-to-end jobs composed from the packages: train an ANN, convert it.

Each job takes a frozen description of the work, validates inputs before doing any, and writes
every output atomically at the end, so a failure leaves no half-written file. The curve job is
:mod:`spikeconv.workflows.curve`; the :class:`DataSource` and output helpers here serve every job.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from spikeconv._io import atomic_write, output_set
from spikeconv._outputs import check_outputs
from spikeconv.calibration import CalibrationConfig, ThresholdPlan, calibrate, plan_of, prepare
from spikeconv.convert import ConvertConfig, CorrectionConfig, convert, correct
from spikeconv.data import ImageFolderOptions, NpzSource, Split, calibration_subset, dataset_info, load_dataset, make_loader
from spikeconv.data.checks import check_data_fits, sample_shape_of
from spikeconv.errors import ConfigError, OutputError
from spikeconv.files import LoadedAnn, ModelSpec, canonical_graph, load_ann, save_snn
from spikeconv.ingest.preprocessing import describe_preprocessing
from spikeconv.models import build_model
from spikeconv.models.activations import ActivationKind, ActivationSpec, apply_activation_, init_qcfs_thresholds_
from spikeconv.neurons import SpikingNetwork, check_timesteps
from spikeconv.runtime import BatchesOn, Precision, barrier, check_precision, is_main_process, resolve_device
from spikeconv.runtime.memory import stage
from spikeconv.search import AutoConfig, auto_calibration_samples, choose_conversion, finetune_split, validation_split
from spikeconv.training import (
    AnnTrainConfig,
    FinetuneBudget,
    TrainHistory,
    checkpoint_path,
    evaluate_classifier,
    finetune_converted,
    save_ann_checkpoint,
    train_ann,
)


@dataclass(frozen=True)
class DataSource:
    """Where a job's data comes from: a data set name, an optional root, and ``--download``."""

    name: str = "fashion-mnist"
    root: Path | None = None
    download: bool = False

    @property
    def has_split(self) -> bool:
        """False for an ``npz:`` file, whose one set of samples serves calibration and evaluation alike."""
        return not self.name.startswith("npz:")

    def input_files(self) -> list[Path]:
        """The data files read, which no output may replace: an ``npz:`` file (data sets by name are left out)."""
        return [NpzSource.from_name(self.name).path] if self.name.startswith("npz:") else []

    def load(self, split: Split, limit: int | None = None, *, input_shape: tuple[int, ...] | None = None):
        """One split; an image folder's images are resized to ``input_shape`` (C, H, W) when given."""
        options = None
        if input_shape is not None and self.name.startswith("imagefolder:") and len(input_shape) == 3:
            options = ImageFolderOptions(image_size=(int(input_shape[1]), int(input_shape[2])), channels=int(input_shape[0]))
        return load_dataset(self.name, split=split, root=self.root, download=self.download,
                            limit=limit, image_options=options)  # fmt: skip


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
    device: str = "cpu"  # auto, cpu, cuda, cuda:N; the checkpoint holds CPU tensors either way
    precision: str = Precision.FP32.value  # 32, bf16, 16: autocast of the training forward

    def __post_init__(self) -> None:
        check_precision(self.precision, resolve_device(self.device))


@dataclass(frozen=True)
class TrainAnnResult:
    history: TrainHistory
    test_accuracy: float
    path: Path


def train_ann_job(job: TrainAnnJob, *, progress: bool = True) -> TrainAnnResult:
    """Train, evaluate on the full test split, and write the checkpoint (whose path is checked first)."""
    check_outputs({"--out": job.out}, job.data.input_files())
    info = dataset_info(job.data.name) if ":" not in job.data.name else None
    train_data = job.data.load(Split.TRAIN, job.train_limit)
    test_data = job.data.load(Split.TEST)
    input_shape = tuple(train_data.sample_shape)
    mean = info.mean if (info and job.normalize) else None
    std = info.std if (info and job.normalize) else None
    with torch.random.fork_rng(devices=[]):  # the initial weights follow the seed; the caller's RNG is untouched
        torch.manual_seed(job.train.seed)
        model = build_model(job.arch, input_shape=input_shape, num_classes=train_data.num_classes,
                            mean=mean, std=std, batch_norm=job.batch_norm, dropout=job.dropout)  # fmt: skip
        apply_activation_(model, job.activation)
    device = resolve_device(job.device)
    model = model.to(device)
    if job.activation.kind is ActivationKind.QCFS:
        probe = calibration_subset(train_data, num_samples=512, seed=job.train.seed)
        x, _ = next(iter(make_loader(probe, batch_size=512, shuffle=False)))
        init_qcfs_thresholds_(model, x.to(device))
    history = train_ann(model, train_data, config=job.train, eval_data=test_data,
                        progress=progress, precision=job.precision)  # fmt: skip
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
    activation = None if job.activation.kind is ActivationKind.RELU else job.activation.to_dict()

    def write() -> None:
        with output_set():  # a write failure (disk full, ...) is one OutputError line, not an internal error
            save_ann_checkpoint(job.out, model=model, arch=job.arch, input_shape=input_shape,
                                num_classes=train_data.num_classes, mean=mean, std=std,
                                metadata=metadata, activation=activation)  # fmt: skip

    write_main(write)
    return TrainAnnResult(history=history, test_accuracy=accuracy, path=job.out)


# ---------------------------------------------------------------- convert
@dataclass(frozen=True)
class ConvertJob:
    """Calibrate a trained ANN on training data and write the SNN file.

    ``model`` is the model file (None only for a factory that loads its own weights);
    ``model_spec`` says what the file does not (see :class:`~spikeconv.workflows.ModelSpec`).
    """

    model: Path | None
    out: Path
    data: DataSource = field(default_factory=DataSource)
    calib_samples: int = 2000
    calib_seed: int = 0
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    correction: CorrectionConfig | None = None
    method: str = "rate"
    plan_json: Path | None = None
    model_spec: ModelSpec = field(default_factory=ModelSpec)
    command: str = ""
    auto: AutoConfig | None = None  # method "auto": search methods x T for this budget (spikeconv/search)
    auto_timesteps: bool = True  # with auto, store the chosen T as the SNN's default length (else convert.timesteps)
    device: str = "cpu"  # where calibration, corrections and auto's simulations run; the SNN file holds CPU tensors
    finetune: FinetuneBudget | None = None  # method hybrid: train the converted SNN at finetune_timesteps afterwards
    finetune_timesteps: int = 4
    resume: bool = False  # hybrid: continue the fine-tune from its checkpoint beside --out (training/snn/finetune.py)

    def __post_init__(self) -> None:
        resolve_device(self.device)
        if self.resume and self.finetune is None:
            raise ConfigError(f"--resume continues an interrupted --method hybrid fine-tune; method {self.method} has none")

    @property
    def checkpoint(self) -> Path | None:
        """The fine-tune's per-epoch checkpoint beside ``out`` (hybrid only)."""
        return checkpoint_path(self.out) if self.finetune is not None else None


@dataclass(frozen=True)
class ConvertResult:
    """The SNN, its plan, the ANN as read, and one line on the calibration data."""

    snn: SpikingNetwork
    plan: ThresholdPlan
    ann: LoadedAnn
    calibration_data: str = ""
    auto: dict | None = None  # the --method auto report (candidates, choice), None for explicit methods
    hybrid: dict | None = None  # what the hybrid fine-tune cost (budget, seconds), None for other methods


def load_model_and_data(job: ConvertJob) -> tuple[LoadedAnn, object]:
    """The ANN and its calibration data, checked against each other before any work.

    The data is read first because its sample shape is the input shape of last resort (for a
    state_dict or factory without ``--input-shape``); an image folder is then re-read at the
    model's input shape.
    """
    train = job.data.load(Split.TRAIN)
    ann = load_ann(job.model, job.model_spec, data_shape=sample_shape_of(train) if len(train) else None)
    if job.data.name.startswith("imagefolder:") and tuple(sample_shape_of(train)) != tuple(ann.input_shape):
        train = job.data.load(Split.TRAIN, input_shape=ann.input_shape)
    check_data_fits(train, input_shape=ann.input_shape, num_classes=ann.num_classes,
                    what=f"calibration ({job.data.name})", model=_model_name(job))  # fmt: skip
    return ann, train


def convert_inputs(job: ConvertJob) -> list[Path]:
    """Files convert reads, which no output may replace: the model (and an ONNX model's ``MODEL.data``
    weights), a ``FILE.py`` factory, an ``npz:`` data file."""
    files = job.data.input_files()
    if job.model is not None:
        model = Path(job.model)
        files += [model, model.with_name(model.name + ".data")] if model.suffix.lower() == ".onnx" else [model]
    factory = job.model_spec.factory or ""
    if ":" in factory and factory.rsplit(":", 1)[0].endswith(".py"):
        files.append(Path(factory.rsplit(":", 1)[0]))
    return files


def _model_name(job: ConvertJob) -> str:
    return str(job.model) if job.model is not None else f"the model of {job.model_spec.factory}"


def convert_job(job: ConvertJob, *, progress: bool = True) -> ConvertResult:
    """ANN file -> calibrated SNN file (and optionally the threshold plan as JSON).

    The output paths are checked before the model is read; the SNN file and the plan are written
    together or not at all (:func:`spikeconv._io.output_set`).
    """
    check_outputs({"--out": job.out, "--plan-json": job.plan_json, "the fine-tune checkpoint": job.checkpoint}, convert_inputs(job))
    if job.checkpoint is not None and not job.resume and os.path.lexists(job.checkpoint):
        raise OutputError(f"{job.checkpoint} holds an interrupted fine-tune of --out {job.out}; pass --resume to continue it "
                          "or delete it to start again")  # fmt: skip
    device = resolve_device(job.device)
    with stage("load model and data"):
        ann, train = load_model_and_data(job)
    with stage("ingest"):
        graph = canonical_graph(ann.source, ann.model).to(device)
    calib_samples = job.calib_samples if job.auto is None else auto_calibration_samples(len(train), job.calib_samples, job.auto)
    subset = calibration_subset(train, num_samples=calib_samples, seed=job.calib_seed)
    split = "train" if job.data.has_split else "all (no train/test split)"
    extra = {"dataset": job.data.name, "split": split, "seed": job.calib_seed}
    trained = hybrid = None
    if job.auto is not None:
        with stage("auto search"):
            calibrated, convert_config, method, auto_report, trained, hybrid = _auto_conversion(job, graph, train, subset,
                                                                                                 calib_samples, extra)  # fmt: skip
    else:
        batches = BatchesOn(make_loader(subset, batch_size=256, shuffle=False), device)
        calibrated = calibrate(prepare(graph, job.calibration), batches, progress=progress, extra=extra)  # each logs its stage
        if job.correction is not None:
            calibrated = correct(calibrated, batches, job.correction, job.convert)
        convert_config, method, auto_report = job.convert, job.method, None
    with stage("convert"):
        snn = convert(calibrated, convert_config) if trained is None else trained  # auto may have fine-tuned its choice
    if job.finetune is not None:  # hybrid: the converted SNN trained briefly at the target T (training/snn/finetune.py)
        with stage("fine-tune"):
            snn, hybrid = finetune_converted(snn, train, timesteps=job.finetune_timesteps, budget=job.finetune, progress=progress,
                                             checkpoint=job.checkpoint, resume=job.resume)  # rank 0 writes it; all resume  # fmt: skip
    snn = snn.cpu()  # files hold CPU tensors, readable on any machine
    plan = plan_of(calibrated)
    info = {
        "input_shape": list(ann.input_shape),
        "num_classes": ann.num_classes,
        "preprocessing": ann.preprocessing,
        "model_format": ann.description,
        "method": method,
        "calibration": {"dataset": job.data.name, "split": split, "samples": plan.num_samples, "seed": job.calib_seed,
                        "config": _calibration_record(job, plan, auto_report)},  # fmt: skip
        "ann_metadata": {k: v for k, v in ann.metadata.items() if k in ("test_accuracy", "dataset")},
        "torch_version": str(torch.__version__),
        "provenance": _provenance(job.command),
        **({"auto": auto_report} if auto_report is not None else {}),
        **({"hybrid": hybrid} if hybrid is not None else {}),
    }
    with stage("write"):
        write_main(lambda: _write_conversion(job, snn, ann, info, plan))
    where = f"{job.data.name} train" if job.data.has_split else f"{job.data.name} (no train/test split: evaluate on other data)"
    return ConvertResult(snn=snn, plan=plan, ann=ann, calibration_data=f"{plan.num_samples} samples of {where}", auto=auto_report,
                         hybrid=hybrid)  # fmt: skip


def _write_conversion(job: ConvertJob, snn: SpikingNetwork, ann: LoadedAnn, info: dict, plan: ThresholdPlan) -> None:
    with output_set():
        save_snn(job.out, snn, ann_source=ann.source, info=info)
        if job.plan_json is not None:
            plan.save(job.plan_json)
    if job.checkpoint is not None:  # the SNN file holds the result now: the fine-tune's checkpoint is done with
        with contextlib.suppress(FileNotFoundError):
            job.checkpoint.unlink()


def _calibration_record(job: ConvertJob, plan: ThresholdPlan, auto_report: dict | None) -> dict:
    """The calibration settings as recorded: the job's, or for auto the chosen candidate's rule."""
    if auto_report is None:
        return job.calibration.to_dict()
    return {"default": dict(next(iter(plan.rules.values()), {})), "chosen_by": "auto"}


def _auto_conversion(job: ConvertJob, graph, train, subset, calib_samples: int, extra: dict):
    """``--method auto``: the calibrated graph, neuron settings, method name and evidence the search chose."""
    validation = validation_split(train, calibration_samples=calib_samples, calibration_seed=job.calib_seed,
                                  samples=job.auto.validation_samples)  # fmt: skip
    finetune_data = None
    if job.auto.allow_finetune:  # fine-tunes never see the validation samples they are scored on
        finetune_data = finetune_split(train, calibration_samples=calib_samples, calibration_seed=job.calib_seed,
                                       samples=job.auto.validation_samples)  # fmt: skip
    choice = choose_conversion(graph, subset, validation, job.convert, job.auto, extra=extra, train_data=finetune_data)
    convert_config = choice.convert if job.auto_timesteps else replace(choice.convert, timesteps=job.convert.timesteps)
    report = {**choice.report, "validation": {**choice.report["validation"], "seed": job.calib_seed + 1,
                                              "source": f"{job.data.name} train, disjoint from the calibration samples"}}  # fmt: skip
    trained = None
    if choice.snn is not None:
        trained = choice.snn if job.auto_timesteps else _with_timesteps(choice.snn, job.convert.timesteps)
    return choice.calibrated, convert_config, choice.variant.method, report, trained, choice.hybrid


def _with_timesteps(snn: SpikingNetwork, timesteps: int) -> SpikingNetwork:
    """``snn`` with another default simulation length (``--timesteps`` given with auto)."""
    snn.timesteps = check_timesteps(timesteps)
    snn.metadata = {**snn.metadata, "convert": {**snn.metadata["convert"], "timesteps": timesteps}}
    return snn


def _provenance(command: str) -> dict:
    """Who wrote an SNN file: the spikeconv version, the command line (if any) and the UTC time (``spikeconv info``)."""
    import datetime
    import importlib.metadata

    try:
        version = importlib.metadata.version("spikeconv")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        version = "unknown"
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"spikeconv_version": version, "command": command, "created": created}


def describe_conversion(result: ConvertResult) -> str:
    """What was converted, as the CLI's output line states it: format, input, preprocessing, data."""
    ann = result.ann
    shape = "x".join(str(s) for s in ann.input_shape)
    origin = {"file": "", "--input-shape": " from --input-shape", "data": " taken from the data"}[ann.input_shape_from]
    preprocessing = describe_preprocessing(ann.preprocessing)
    return (f"{ann.description}; input {shape}{origin}, {ann.num_classes} classes; preprocessing: {preprocessing}; "
            f"calibrated on {result.calibration_data}")  # fmt: skip


def write_main(write) -> None:
    """Run ``write`` on rank 0 only (under torchrun every rank holds the same result), then let all ranks go on."""
    if is_main_process():
        write()
    barrier()


def write_json(path: Path, payload: dict) -> None:
    """Write a JSON document atomically."""
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2)
