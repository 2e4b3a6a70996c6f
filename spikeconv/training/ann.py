"""Train and evaluate an ANN classifier (the network that conversion starts from).

A plain supervised loop: cross-entropy, Adam or SGD, a per-batch learning-rate schedule and
optional batch augmentation. Every random draw (shuffling, augmentation, dropout) comes from
``config.seed`` inside a forked RNG, so a run is reproducible on CPU and the caller's global
RNG state is left untouched.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from spikeconv.errors import ConfigError, DataError
from spikeconv.runtime.device import Precision, autocast, check_precision
from spikeconv.training.augment import augment_batch
from spikeconv.training.config import AnnTrainConfig, Augment, Optimizer, Schedule
from spikeconv.training.parallel import GradientScaler, local_share, min_trailing_batch, parallel, reduced_counts, sharded_batches

__all__ = ["EpochRecord", "TrainHistory", "evaluate_classifier", "train_ann"]

logger = logging.getLogger("spikeconv")


@dataclass(frozen=True)
class EpochRecord:
    """Statistics of one training epoch (accuracies in percent).

    Attributes:
        epoch: 1-based epoch number.
        train_loss: Mean cross-entropy over the epoch's training samples.
        train_accuracy: Accuracy on the training batches as seen during training (train mode,
            augmented).
        eval_accuracy: Accuracy on ``eval_data`` after the epoch, or None without eval data.
        seconds: Wall-clock time of the epoch, evaluation included.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    eval_accuracy: float | None
    seconds: float


@dataclass(frozen=True)
class TrainHistory:
    """All epoch records of one :func:`train_ann` run."""

    records: tuple[EpochRecord, ...]

    @property
    def final_eval_accuracy(self) -> float | None:
        """Eval accuracy (percent) after the last epoch, or None without eval data."""
        return self.records[-1].eval_accuracy if self.records else None

    @property
    def final_train_loss(self) -> float | None:
        """Mean training loss of the last epoch."""
        return self.records[-1].train_loss if self.records else None


def train_ann(
    model: nn.Module,
    train_data: Dataset,
    *,
    config: AnnTrainConfig,
    eval_data: Dataset | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    precision: str | Precision = Precision.FP32,
) -> TrainHistory:
    """Train ``model`` in place with cross-entropy and leave it in eval mode.

    This deliberately trains the module it is given (it is the user's own training run, not a
    graph pass): parameters and BN statistics of ``model`` change. Batches go to the device of
    the model's parameters. ``precision`` (``32``, ``bf16``, ``16``) autocasts each forward and loss.
    Inside a torchrun process group each global batch is split over the ranks and the model is
    trained with DistributedDataParallel (:mod:`spikeconv.training.parallel`).

    Args:
        model: Classifier mapping ``[N, C, H, W]`` images to ``[N, classes]`` logits.
        train_data: Dataset yielding ``(image [C, H, W] float in [0, 1], int label)``.
        config: Epochs, optimiser, schedule, augmentation and seed.
        eval_data: Optional held-out dataset, evaluated after every epoch.
        progress: Show a tqdm bar per epoch on stderr.
        on_epoch_end: Called with each epoch's record (e.g. to log or save).

    Returns:
        The history of per-epoch records.

    Raises:
        DataError: ``train_data`` is empty.
        ConfigError: The loss became NaN or infinite (lower ``lr``).
    """
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise DataError("train_data is empty; nothing to train on")
    device = _model_device(model)
    precision = check_precision(precision, device)
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        loader = _train_loader(train_data, config, generator)
        optimizer = _make_optimizer(model, config)
        scheduler = _make_scheduler(optimizer, config, steps=config.epochs * len(loader))
        trained = parallel(model, device)
        records = []
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            loss, accuracy = _train_epoch(
                trained,
                _progress(loader, epoch, config.epochs, progress),
                optimizer,
                scheduler,
                config=config,
                generator=generator,
                device=device,
                epoch=epoch,
                precision=precision,
            )
            eval_accuracy = None if eval_data is None else evaluate_classifier(model, eval_data)
            record = EpochRecord(epoch, loss, accuracy, eval_accuracy, time.perf_counter() - start)
            _log_epoch(record, config.epochs)
            records.append(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
    model.eval()
    return TrainHistory(records=tuple(records))


def evaluate_classifier(model: nn.Module, data: Dataset, *, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``data`` in percent.

    Runs in eval mode under ``torch.no_grad`` and restores the model's previous training flag.
    Under torchrun every rank scores every W-th batch and the counts are summed: the same accuracy.

    Raises:
        DataError: ``data`` is empty.
    """
    if len(data) == 0:  # type: ignore[arg-type]
        raise DataError("evaluation data is empty; cannot compute an accuracy")
    device = _model_device(model)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.no_grad():
            for images, labels in sharded_batches(data, batch_size):
                logits = model(images.to(device))
                correct += int((logits.argmax(1).cpu() == labels.long()).sum())
                total += labels.shape[0]
    finally:
        model.train(was_training)
    correct, total = (int(v) for v in reduced_counts(correct, total))
    return 100.0 * correct / total


def _train_epoch(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    config: AnnTrainConfig,
    generator: torch.Generator,
    device: torch.device,
    epoch: int,
    precision: Precision = Precision.FP32,
) -> tuple[float, float]:
    """One pass over the loader; returns (mean loss, accuracy in percent) over all ranks."""
    model.train()
    loss_sum = 0.0
    correct = total = 0
    scaler = GradientScaler(precision, device)
    for batch_images, batch_labels in batches:
        images, labels = share_of_batch(batch_images, batch_labels, config.augment, generator, device)
        with autocast(device, precision):
            logits = model(images)
            loss = nn.functional.cross_entropy(logits, labels)
        if not math.isfinite(loss.item()):
            raise ConfigError(
                f"training loss became {loss.item()} in epoch {epoch}; lower --lr "
                f"(now {config.lr:g}) or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.backward_step(loss, optimizer)
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.item() * labels.shape[0]
        correct += int((logits.detach().argmax(1) == labels).sum())
        total += labels.shape[0]
    loss_sum, correct, total = reduced_counts(loss_sum, correct, total)
    return loss_sum / total, 100.0 * correct / total


def share_of_batch(images: torch.Tensor, labels: torch.Tensor, augment: Augment, generator: torch.Generator,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """This rank's share of a global batch, on ``device`` and augmented.

    With augmentation the whole batch is augmented before it is split, so every rank draws the same numbers and
    the generator (which also shuffles) stays the same on all ranks; without, only the share is moved.
    """
    if augment is Augment.NONE:
        images, labels = local_share(images, labels)
        return augment_batch(images.to(device), augment, generator=generator), labels.to(device).long()
    images = augment_batch(images.to(device), augment, generator=generator)
    images, labels = local_share(images, labels.to(device).long())
    return images, labels


def _log_epoch(record: EpochRecord, epochs: int) -> None:
    evaluated = "-" if record.eval_accuracy is None else f"{record.eval_accuracy:.2f}%"
    logger.info(
        "epoch %d/%d: loss %.4f, train %.2f%%, eval %s (%.1f s)",
        record.epoch,
        epochs,
        record.train_loss,
        record.train_accuracy,
        evaluated,
        record.seconds,
    )


def _train_loader(data: Dataset, config: AnnTrainConfig, generator: torch.Generator) -> DataLoader:
    """Seeded, shuffling loader; drops a trailing batch of one (of fewer than two per rank under torchrun), which
    BatchNorm cannot train on."""
    trailing = len(data) % config.batch_size  # type: ignore[arg-type]
    drop_last = len(data) > 1 and (trailing == 1 or 0 < trailing < min_trailing_batch())  # type: ignore[arg-type]
    return DataLoader(
        data,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=0,
        drop_last=drop_last,
    )


def _make_optimizer(model: nn.Module, config: AnnTrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    if config.optimizer is Optimizer.SGD:
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: AnnTrainConfig, *, steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.schedule is Schedule.ONE_CYCLE:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
    if config.schedule is Schedule.COSINE:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return None


def _progress(loader: DataLoader, epoch: int, epochs: int, enabled: bool) -> tqdm:
    return tqdm(
        loader, desc=f"epoch {epoch}/{epochs}", file=sys.stderr, leave=False, disable=not enabled
    )


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for an empty model)."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _cuda_indices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
