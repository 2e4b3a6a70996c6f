"""Direct SNN training: BPTT through the spikified network, with resumable checkpoints.

``train_snn`` turns the caller's ReLU network into a SpikingNetwork (:func:`spikify`), then
trains it on the readout of ``T`` steps: autograd unrolls every neuron's time loop, and the
surrogate gradients of the neuron configuration stand in for the spikes' derivatives. Every
random draw comes from ``config.seed`` inside a forked RNG; after each epoch the checkpoint
saves weights, optimizer, scheduler and both RNG states, so an interrupted run resumed from it
ends with exactly the weights of an uninterrupted one (on the same device and thread count).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spikeconv._io import atomic_write, output_set
from spikeconv.errors import CheckpointError, ConfigError, DataError, first_line
from spikeconv.neurons import SpikingNetwork
from spikeconv.runtime.device import Precision, autocast, check_precision
from spikeconv.runtime.distributed import barrier, is_main_process
from spikeconv.runtime.memory import stage
from spikeconv.training.ann import _cuda_indices, _make_optimizer, _make_scheduler, _model_device, _progress, _train_loader, share_of_batch
from spikeconv.training.parallel import GradientScaler, parallel, reduced_counts, sharded_batches
from spikeconv.training.snn.checkpoint import SnnCheckpoint, load_snn_checkpoint, save_snn_checkpoint
from spikeconv.training.snn.config import SnnTrainConfig
from spikeconv.training.snn.history import SnnEpochRecord, SnnTrainHistory
from spikeconv.training.snn.losses import readout_loss, readout_predictions
from spikeconv.training.snn.micro_batches import micro_batches, planned_eval_batch, planned_micro_batch
from spikeconv.training.snn.spikify import spikify
from spikeconv.training.snn.tdbn import apply_tdbn_

__all__ = ["SnnTrainOutputs", "SnnTrainResult", "evaluate_snn", "train_network", "train_snn"]

logger = logging.getLogger("spikeconv")
SNN_LOG_FORMAT = "spikeconv-snn-log"


@dataclass(frozen=True)
class SnnTrainOutputs:
    """Where a run writes, and what its checkpoint records about the architecture.

    Attributes:
        checkpoint: Checkpoint path, rewritten atomically after every epoch (None: no file).
        log: Per-epoch JSON log path, rewritten atomically after every epoch (None: no file).
        arch: Opaque JSON-like dict the caller needs to rebuild the ANN (e.g. the
            ``build_model`` arguments); stored in the checkpoint untouched.
        metadata: Extra JSON-like facts for the checkpoint (dataset, command, ...).
        ann_source: The source record of a user's ANN whose own graph is trained (stored in the
            checkpoint so that it rebuilds without ``arch`` naming a preset), or None.
    """

    checkpoint: Path | None = None
    log: Path | None = None
    arch: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    ann_source: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SnnTrainResult:
    """The trained network (eval mode) and the history of all its epochs."""

    snn: SpikingNetwork
    history: SnnTrainHistory


@dataclass
class _Run:
    """The mutable objects of one training run, gathered so that they can be checkpointed."""

    snn: SpikingNetwork
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    device: torch.device
    records: list[SnnEpochRecord]
    trained: nn.Module  # the SNN, or its DistributedDataParallel wrapper under torchrun
    precision: Precision = Precision.FP32
    micro_batch: int | None = None  # batches larger than this run as micro-batches (training/snn/micro_batches.py)


def train_snn(
    model: nn.Module,
    train_data: Dataset,
    *,
    config: SnnTrainConfig,
    eval_data: Dataset | None = None,
    outputs: SnnTrainOutputs | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[SnnEpochRecord], None] | None = None,
    precision: str | Precision = Precision.FP32,
) -> SnnTrainResult:
    """Spikify ``model`` with ``config.neuron`` and train it directly by BPTT.

    ``model`` is not modified (spikify works on a copy); the SNN lives on ``model``'s device.
    ``precision`` autocasts each training forward and loss (``32``, ``bf16``, ``16``). Inside a torchrun
    process group every global batch is split over the ranks (DistributedDataParallel, each rank's
    neurons reset at every forward); rank 0 alone writes the checkpoint and the log.

    Args:
        model: ReLU classifier ``[N, C, H, W] -> [N, K]`` (e.g. from ``build_model``).
        train_data: Dataset of ``(image in [0, 1], int label)``.
        config: Neuron, T, optimisation and seed.
        eval_data: Optional held-out set, scored at the training T after every epoch.
        outputs: Checkpoint/log paths and the ``arch`` dict to store.
        resume: Continue from ``outputs.checkpoint`` if that file exists (its configuration
            must equal ``config``); start fresh if it does not.
        progress: Show a tqdm bar per epoch on stderr.
        on_epoch_end: Called with each new epoch's record.

    Raises:
        DataError: ``train_data`` or ``eval_data`` is empty.
        ConfigError: Bad options, the loss became NaN/inf, or ``resume`` without a checkpoint path.
        CheckpointError: The checkpoint to resume from is unreadable or was made with another
            configuration.
    """
    snn = spikify(model, config.neuron, timesteps=config.timesteps)
    if config.tdbn:
        apply_tdbn_(snn, threshold=config.neuron.threshold, alpha=config.tdbn_alpha)
    return train_network(snn, train_data, config=config, eval_data=eval_data, outputs=outputs, resume=resume, progress=progress,
                         on_epoch_end=on_epoch_end, precision=precision)  # fmt: skip


def train_network(
    snn: SpikingNetwork,
    train_data: Dataset,
    *,
    config: SnnTrainConfig,
    eval_data: Dataset | None = None,
    outputs: SnnTrainOutputs | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[SnnEpochRecord], None] | None = None,
    precision: str | Precision = Precision.FP32,
) -> SnnTrainResult:
    """Train an SNN that already exists (``train_snn``'s spikified network, or a converted one made trainable for
    hybrid conversion) by BPTT at ``config.timesteps``, in place; ``config.neuron`` is not used here.

    Arguments and errors as :func:`train_snn`.
    """
    outputs = outputs or SnnTrainOutputs()
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise DataError("train_data is empty; nothing to train on")
    if resume and outputs.checkpoint is None:
        raise ConfigError("resume needs a checkpoint path (SnnTrainOutputs.checkpoint)")
    device = _model_device(snn)
    precision = check_precision(precision, device)
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        loader = _train_loader(train_data, config, generator)  # type: ignore[arg-type]
        optimizer = _make_optimizer(snn, config)  # type: ignore[arg-type]
        scheduler = _make_scheduler(optimizer, config, steps=config.epochs * len(loader))  # type: ignore[arg-type]
        run = _Run(snn, optimizer, scheduler, generator, device, [], parallel(snn, device), precision)
        run.micro_batch = planned_micro_batch(snn, _first_sample(train_data, device), config.timesteps, config.batch_size,
                                              lambda readout, labels: _loss(readout, labels, config))  # fmt: skip
        if resume and outputs.checkpoint is not None and Path(outputs.checkpoint).exists():
            _restore_(run, load_snn_checkpoint(outputs.checkpoint), config, outputs.checkpoint, arch=outputs.arch)
        for epoch in range(len(run.records) + 1, config.epochs + 1):
            with stage(f"train epoch {epoch}"):
                record = _run_epoch(run, loader, config, eval_data, epoch, progress)
            run.records.append(record)
            if is_main_process():
                _write_outputs(run, config, outputs)
            barrier()  # no rank starts the next epoch (or reads the checkpoint) before it is written
            if on_epoch_end is not None:
                on_epoch_end(record)
    snn.eval()
    return SnnTrainResult(snn=snn, history=SnnTrainHistory(records=tuple(run.records)))


def evaluate_snn(snn: SpikingNetwork, data: Dataset | Iterable, *, timesteps: int, batch_size: int = 256) -> float:
    """Top-1 accuracy (percent) of the accumulated readout after ``timesteps`` steps.

    Runs in eval mode without gradients and restores the training flag. ``data`` is a Dataset
    of samples or an iterable of ``(x, y)`` batches. Under torchrun every rank scores every W-th
    batch and the counts are summed, so every rank returns the single-process accuracy.

    Raises:
        DataError: ``data`` holds no samples.
    """
    batches = sharded_batches(data, batch_size)
    device = _model_device(snn)
    was_training = snn.training
    snn.eval()
    correct = total = 0
    size = None
    try:
        with torch.no_grad():
            for images, labels in batches:
                images, labels = images.to(device), torch.as_tensor(labels).long()
                size = size or planned_eval_batch(snn, images, timesteps, batch_size)
                for start in range(0, images.shape[0], size):  # a batch the budget cannot hold runs in parts
                    predictions = readout_predictions(snn(images[start : start + size], timesteps))
                    correct += int((predictions.cpu() == labels[start : start + size]).sum())
                total += len(labels)
    finally:
        snn.train(was_training)
    correct, total = (int(v) for v in reduced_counts(correct, total))
    if total == 0:
        raise DataError("evaluation data is empty; cannot compute an accuracy")
    return 100.0 * correct / total


def _loss(readout: torch.Tensor, labels: torch.Tensor, config: SnnTrainConfig) -> torch.Tensor:
    return readout_loss(readout, labels, config.loss, label_smoothing=config.label_smoothing)


def _first_sample(data: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One training sample as a batch of one, on ``device`` (what the micro-batch plan is measured on)."""
    x, y = data[0]
    return torch.as_tensor(x)[None].to(device), torch.as_tensor(y).reshape(1).long().to(device)


def _run_epoch(
    run: _Run, loader: DataLoader, config: SnnTrainConfig, eval_data: Dataset | None, epoch: int, progress: bool
) -> SnnEpochRecord:
    start = time.perf_counter()
    run.snn.train()
    loss_sum, correct, total = 0.0, 0, 0
    scaler = GradientScaler(run.precision, run.device)
    for batch_images, batch_labels in _progress(loader, epoch, config.epochs, progress):
        images, labels = share_of_batch(batch_images, batch_labels, config.augment, run.generator, run.device)
        run.optimizer.zero_grad(set_to_none=True)
        for part_images, part_labels, weight in micro_batches(run.trained, images, labels, run.micro_batch or images.shape[0]):
            with autocast(run.device, run.precision):
                readout = run.trained(part_images, config.timesteps)
                loss = _loss(readout, part_labels, config)
            if not math.isfinite(loss.item()):
                raise ConfigError(f"training loss became {loss.item()} in epoch {epoch}; lower lr (now {config.lr:g}) or check the data")
            scaler.backward(loss * weight if weight != 1.0 else loss)
            loss_sum += loss.item() * part_labels.shape[0]
            correct += int((readout_predictions(readout.detach()) == part_labels).sum())
            del readout, loss
        scaler.step(run.optimizer)
        if run.scheduler is not None:
            run.scheduler.step()
        total += labels.shape[0]
    loss_sum, correct, total = reduced_counts(loss_sum, correct, total)
    eval_accuracy = None if eval_data is None else evaluate_snn(run.snn, eval_data, timesteps=config.timesteps)
    record = SnnEpochRecord(
        epoch=epoch,
        train_loss=loss_sum / total,
        train_accuracy=100.0 * correct / total,
        eval_accuracy=eval_accuracy,
        seconds=time.perf_counter() - start,
        lr=float(run.optimizer.param_groups[0]["lr"]),
    )
    evaluated = "-" if eval_accuracy is None else f"{eval_accuracy:.2f}%"
    logger.info("snn epoch %d/%d: loss %.4f, train %.2f%%, eval %s (%.1f s)", epoch, config.epochs, record.train_loss,
                record.train_accuracy, evaluated, record.seconds)  # fmt: skip
    return record


def _training_state(run: _Run) -> dict[str, Any]:
    cuda = [torch.cuda.get_rng_state(i) for i in _cuda_indices(run.device)] if run.device.type == "cuda" else None
    return {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": None if run.scheduler is None else run.scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "generator": run.generator.get_state(), "cuda": cuda},
    }


def _restore_(run: _Run, checkpoint: SnnCheckpoint, config: SnnTrainConfig, path: Path, *, arch: Mapping[str, Any]) -> None:
    """Load weights, optimizer, scheduler, RNG states and history from ``checkpoint``."""
    if checkpoint.config != config:
        raise CheckpointError(f"{path} was written with other training options; resume with the same options or start a new run")
    if arch and checkpoint.arch != dict(arch):  # e.g. another model file whose weights happen to fit
        raise CheckpointError(f"{path} was trained from another network ({checkpoint.arch}); resume with the same network "
                              "or start a new run")  # fmt: skip
    state = checkpoint.training_state
    if state is None:
        raise CheckpointError(f"{path} holds no optimizer/RNG state, so the run cannot be resumed exactly")
    try:
        run.snn.load_state_dict(checkpoint.state_dict, strict=True)
        run.optimizer.load_state_dict(state["optimizer"])
        if run.scheduler is not None:
            run.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        run.generator.set_state(state["rng"]["generator"])
        for index, cuda_state in zip(_cuda_indices(run.device), state["rng"]["cuda"] or [], strict=False):
            torch.cuda.set_rng_state(cuda_state, index)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = first_line(error, empty="")
        raise CheckpointError(f"{path} does not fit this model or run ({type(error).__name__}: {first})") from None
    run.records[:] = checkpoint.history
    logger.info("resumed SNN training from %s after epoch %d", path, checkpoint.epoch)


def _write_outputs(run: _Run, config: SnnTrainConfig, outputs: SnnTrainOutputs) -> None:
    """Rewrite the checkpoint and the JSON log after an epoch: both are replaced, or neither."""
    with output_set():
        if outputs.checkpoint is not None:
            checkpoint = SnnCheckpoint(config=config, arch=dict(outputs.arch), state_dict=run.snn.state_dict(),
                                       epoch=len(run.records), history=tuple(run.records),
                                       training_state=_training_state(run), metadata=dict(outputs.metadata),
                                       ann_source=None if outputs.ann_source is None else dict(outputs.ann_source))  # fmt: skip
            save_snn_checkpoint(outputs.checkpoint, checkpoint)
        if outputs.log is not None:
            log = {"format": SNN_LOG_FORMAT, "config": config.to_dict(), "arch": dict(outputs.arch),
                   "epochs": [record.to_dict() for record in run.records]}  # fmt: skip
            with atomic_write(outputs.log, "w") as handle:
                json.dump(log, handle, indent=2)
                handle.write("\n")
