"""The train-snn job: train a spiking network directly (BPTT, surrogate gradients) from a preset or a user's ANN file.

Follows :mod:`spikeconv.workflows.jobs`' train-ann job: the data come from a :class:`DataSource`,
the model is normalised with the data set's mean/std, and everything is validated before the
first batch, so a bad option costs nothing and leaves no file. Unlike an ANN run, the checkpoint
(and a JSON log beside it) is rewritten after every epoch, so ``resume=True`` continues an
interrupted run exactly and returns at once for a finished one; without ``resume`` an existing
checkpoint is replaced only when ``overwrite=True`` says so. The checkpoint is read back by
:func:`spikeconv.workflows.load_snn`, so ``spikeconv curve`` measures it like a converted SNN.

A network the user brought (``model``: any file ``convert`` reads) is trained as its own ingested
graph: the same source record conversion embeds is rebuilt, spikify turns every ReLU call site into
the trainable neuron, and the record goes into the checkpoint so that it reloads without a preset.
``init="scratch"`` re-draws every layer's parameters with PyTorch's default initialisation (the
graph's layers, not its learned values); ``init="ann"`` starts from the ANN's trained weights. A graph
whose exporter folded its BatchNorm gets one after each conv/linear layer that feeds a neuron
(:mod:`spikeconv.training.snn.batchnorm`, recorded in the checkpoint's ``arch``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from spikeconv._io import file_sha256
from spikeconv._outputs import check_outputs
from spikeconv.data import Split, dataset_info
from spikeconv.data.checks import check_data_fits
from spikeconv.errors import ConfigError, OutputError
from spikeconv.files import ModelSpec, load_ann, model_from_arch
from spikeconv.files.ann_record import rebuild_ann
from spikeconv.models.initialization import reset_parameters_
from spikeconv.neurons import SpikingNetwork
from spikeconv.runtime import Precision, check_precision, resolve_device
from spikeconv.training import SnnTrainConfig, SnnTrainHistory, SnnTrainOutputs, evaluate_snn, train_snn
from spikeconv.training.snn.batchnorm import add_batchnorm, match_ann_
from spikeconv.training.snn.spikify import spikify
from spikeconv.workflows.jobs import DataSource

__all__ = ["INITS", "TrainSnnJob", "TrainSnnResult", "train_snn_job"]

MATCH_SAMPLES = 512  # training samples whose statistics set the added BatchNorm of a graph trained from its ANN's weights
INITS = ("scratch", "ann")
"""Where a user's network starts: re-initialised (its layers' default initialisation), or its trained weights."""


@dataclass(frozen=True)
class TrainSnnJob:
    """Train a registered architecture (or layer notation, or a user's ANN file) as an SNN and checkpoint every epoch.

    Attributes:
        arch: Model preset name (``fmnist-cnn``, ``digits-cnn``, ...) or layer notation; None with ``model``.
        out: Checkpoint path (rewritten atomically after every epoch).
        data: Training and test data.
        train: Neuron, T, epochs and optimisation (see ``snn_training_from_options`` for the
            per-neuron recipes behind the CLI defaults).
        normalize: Build the data set's mean/std normalisation into the model.
        train_limit: Train on the first N training samples only.
        resume: Continue from ``out`` if it exists (same options required); a finished run
            returns without training.
        overwrite: Train anew even if ``out`` exists; the old file is replaced after the first
            epoch. Without ``resume`` or ``overwrite`` an existing ``out`` is refused.
        log: Per-epoch JSON log; None means ``<out>.log.json``.
        command: The command line, recorded in the checkpoint.
        model: A user's ANN file (any format ``convert`` reads) whose own graph is trained, instead of ``arch``.
        model_spec: What ``model`` does not say itself (``--mean``/``--std``, ``--trust-pickle``, ...).
        init: ``scratch`` or ``ann`` (``model`` only): re-initialised layers, or the ANN's trained weights.
    """

    arch: str | None
    out: Path
    data: DataSource = field(default_factory=DataSource)
    train: SnnTrainConfig = field(default_factory=SnnTrainConfig)
    normalize: bool = True
    train_limit: int | None = None
    resume: bool = False
    log: Path | None = None
    overwrite: bool = False
    command: str = ""
    device: str = "cpu"  # auto, cpu, cuda, cuda:N; the checkpoint holds CPU tensors either way
    precision: str = Precision.FP32.value  # 32, bf16, 16: autocast of the training forward
    model: Path | None = None
    model_spec: ModelSpec = field(default_factory=ModelSpec)
    init: str = "scratch"

    def __post_init__(self) -> None:
        check_precision(self.precision, resolve_device(self.device))
        if self.model is not None:
            if self.arch is not None:
                raise ConfigError("give --arch or a MODEL file to train, not both: each says which network to train")
            object.__setattr__(self, "model", Path(self.model))
        elif not isinstance(self.arch, str) or not self.arch.strip():
            raise ConfigError(f"arch must name a model preset or layer notation, got {self.arch!r}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.init == "ann" and self.model is None:
            raise ConfigError("--init ann starts from a trained ANN's weights; pass its file as MODEL")
        if not isinstance(self.train, SnnTrainConfig):
            raise ConfigError(f"train must be an SnnTrainConfig (see snn_training_from_options), got {type(self.train).__name__}")
        limit = self.train_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"train_limit must be an integer >= 1 or None, got {limit!r}")
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "log", Path(self.log) if self.log is not None else self.out.with_name(self.out.name + ".log.json"))
        for what, path in (("checkpoint", self.out), ("log", self.log)):
            if path.is_dir():
                raise ConfigError(f"{what} path {path} is a folder; pass a file name, e.g. {path / 'snn.pt'}")
        if self.log == self.out:
            raise ConfigError(f"the log and the checkpoint are both {self.out}; pass another log path")
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the checkpoint at --out and --overwrite replaces it; pass only one")


@dataclass(frozen=True)
class TrainSnnResult:
    """What a train-snn job produced.

    Attributes:
        snn: The trained network (eval mode).
        history: Every epoch of the run, resumed ones included.
        test_accuracy: Accuracy (%) on the full test split at the training T.
        path: The checkpoint.
        log: The per-epoch JSON log.
        epochs_run: Epochs trained by this call (0 when resuming a finished run).
    """

    snn: SpikingNetwork
    history: SnnTrainHistory
    test_accuracy: float
    path: Path
    log: Path
    epochs_run: int


def train_snn_job(job: TrainSnnJob, *, progress: bool = True) -> TrainSnnResult:
    """Train (or resume), score the full test split at the trained T, and keep the checkpoint.

    Raises:
        ConfigError: Unknown architecture or invalid options.
        DataError: Missing data, or data that does not fit the architecture.
        CheckpointError: ``resume`` from a foreign checkpoint or one made with other options.
        OutputError: ``out`` exists without ``resume`` or ``overwrite``, or ``out``/``log`` cannot be
            written (checked before the data is read).
    """
    check_outputs({"--out": job.out, "--log": job.log}, [*job.data.input_files(), *([job.model] if job.model else [])])
    if not job.resume and not job.overwrite and os.path.lexists(job.out):
        raise OutputError(f"--out {job.out} already exists and training would replace it; pass --resume to continue that "
                          "run, --overwrite to train anew over it, or another --out path")  # fmt: skip
    info = dataset_info(job.data.name) if ":" not in job.data.name else None
    train_data = job.data.load(Split.TRAIN, job.train_limit)
    test_data = job.data.load(Split.TEST)
    input_shape = tuple(int(v) for v in train_data.sample_shape)
    check_data_fits(test_data, input_shape=input_shape, num_classes=train_data.num_classes,
                    what=f"test ({job.data.name})")  # fmt: skip
    if job.model is not None:
        model, arch, ann_source = _user_network(job, train_data)
    else:
        normalized = info is not None and job.normalize
        arch = {
            "name": job.arch,
            "input_shape": list(input_shape),
            "num_classes": int(train_data.num_classes),
            "mean": list(info.mean) if normalized else None,
            "std": list(info.std) if normalized else None,
            "batch_norm": True,
        }
        ann_source = None
        with torch.random.fork_rng(devices=[]):  # the initial weights follow the seed, the caller's RNG is untouched
            torch.manual_seed(job.train.seed)
            model = model_from_arch(arch)
    model = model.to(resolve_device(job.device))
    metadata = {
        "dataset": job.data.name,
        "train_samples": len(train_data),
        "test_samples": len(test_data),
        "command": job.command,
        "machine": platform.platform(),
    }
    outputs = SnnTrainOutputs(checkpoint=job.out, log=job.log, arch=arch, metadata=metadata, ann_source=ann_source)
    new_epochs: list[int] = []
    result = train_snn(model, train_data, config=job.train, eval_data=test_data, outputs=outputs,
                       resume=job.resume, progress=progress, on_epoch_end=lambda record: new_epochs.append(record.epoch),
                       precision=job.precision)  # fmt: skip
    records = result.history.records
    accuracy = records[-1].eval_accuracy if records and records[-1].eval_accuracy is not None else None
    if accuracy is None:  # a resumed checkpoint written without evaluation data
        accuracy = evaluate_snn(result.snn, test_data, timesteps=job.train.timesteps)
    return TrainSnnResult(snn=result.snn, history=result.history, test_accuracy=accuracy, path=job.out, log=job.log,
                          epochs_run=len(new_epochs))  # fmt: skip



def _user_network(job: TrainSnnJob, train_data) -> tuple[torch.nn.Module, dict, dict]:
    """The user's ANN as its own trainable graph, its ``arch`` record and the source record that rebuilds it.

    The graph is rebuilt from the source record (not taken from the loaded module), so that the
    checkpoint's reader, which rebuilds it the same way, finds the same parameter names.
    """
    assert job.model is not None
    loaded = load_ann(job.model, job.model_spec, data_shape=tuple(int(v) for v in train_data.sample_shape))
    check_data_fits(train_data, input_shape=loaded.input_shape, num_classes=loaded.num_classes, what=f"train ({job.data.name})",
                    model=str(job.model))  # fmt: skip
    model, added = add_batchnorm(rebuild_ann(loaded.source, label=f"{job.model} ({loaded.description})"))
    if job.init == "scratch":
        with torch.random.fork_rng(devices=[]):  # the fresh weights follow the seed, the caller's RNG is untouched
            torch.manual_seed(job.train.seed)
            try:
                reset_parameters_(model)
            except ValueError as error:
                raise ConfigError(f"{job.model}: {error}") from None
    elif added:  # set on a spikified copy, whose layers see the spikes they will see in training
        samples = next(iter(DataLoader(train_data, batch_size=MATCH_SAMPLES, shuffle=False)))[0]
        probe = spikify(model, job.train.neuron, timesteps=job.train.timesteps)
        match_ann_(probe, added, samples.to(torch.float32))
        for name in added:
            model.get_submodule(name).load_state_dict(probe.body.get_submodule(name).state_dict())
    arch = {
        "source": "model-file",
        "file": job.model.name,
        "sha256": file_sha256(job.model),
        "description": loaded.description,
        "input_shape": [int(v) for v in loaded.input_shape],
        "num_classes": int(loaded.num_classes),
        "init": job.init,
        "batch_norm_added": added,
    }
    return model, arch, dict(loaded.source)
