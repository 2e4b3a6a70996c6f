"""``--method hybrid``: the calibrated conversion for the target T, then a short fine-tune at exactly that T.

The converted network already computes nearly the ANN's function; what it lacks at T = 1-4 is
timing (Rathi et al., ICLR 2020; DIET-SNN, Rathi & Roy 2021). Hybrid conversion trains the SNN
itself from there, briefly: its IF neurons become :class:`~spikeconv.neurons.finetune_if.TrainableIF`
(θ, and any measured per-channel bias or per-neuron initial charge, are parameters), the weights stay
the converted ones, and :func:`spikeconv.training.train_network` — train-snn's loop, loss and
surrogates — runs BPTT at T with a small learning rate. Afterwards the neurons are IF neurons again,
so the result is an ordinary converted SNN file: same kernels, same counters, same export.

Neurons converted with the signed SIN correction are trained as signed neurons (their retractions get
a surrogate gradient too) and stay signed, because on deep networks the signed conversion is the one
worth starting from: on a MobileNetV2 the plain neuron simulated 15-67 points below its rate code and
``calibrated + per-channel + signed`` within about 1.5 at T = 8. ``--method auto --allow-finetune``
therefore fine-tunes the best conversion variant it simulated (:func:`spikeconv.search.choose._hybrid_start`);
``--method hybrid`` fine-tunes ``calibrated`` with the user's ``--per-channel`` / ``--sin-correction signed``.

A long fine-tune is resumable as train-snn is: with a ``checkpoint`` path the loop rewrites it after
every epoch (train-snn's checkpoint format, keyed by a digest of the converted network, T and the
budget), and ``resume`` continues from it to exactly the weights of an uninterrupted run.
``convert --method hybrid`` keeps it beside ``--out`` (:func:`checkpoint_path`) and deletes it once
the SNN file is written. Everything trainable is trained: training only the neurons' θ, bias and
initial charge (the knobs of the timing error, docs/gap_analysis.md) made no measurable difference
on the residual net.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from spikeconv.errors import ConfigError
from spikeconv.neurons import SpikingNetwork, check_timesteps
from spikeconv.neurons.finetune_if import make_inference_, make_trainable_
from spikeconv.training.config import Optimizer, Schedule
from spikeconv.training.snn.config import SnnTrainConfig
from spikeconv.training.snn.loop import SnnTrainOutputs, train_network

__all__ = ["FinetuneBudget", "checkpoint_path", "finetune_converted"]


@dataclass(frozen=True)
class FinetuneBudget:
    """How much training hybrid may spend: ``epochs`` passes over the first ``samples`` training samples.

    The defaults were chosen by measurement (docs/benchmarks.md, "Hybrid conversion"): Adam at lr 3e-4
    took the shipped CNN's T = 2 conversion from 90.40 % to 92.35 % on the first 2,000 test images with
    20,000 samples (lr 1e-4: 91.70 %); on a residual net with max pooling 20,000 samples left its T = 4
    gap at 1.35 points and one whole epoch brought it to 0.91 on the full test set; on a held-out CNN at
    T = 2 one epoch left 1.10 points and two epochs 0.47 (213 s on 2 cores). So the default is two passes
    over the whole training set (``samples=None``).
    """

    epochs: int = 2
    samples: int | None = None
    lr: float = 3e-4
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_timesteps(self.epochs)
        if self.samples is not None:
            check_timesteps(self.samples)
        if not self.lr > 0:
            raise ConfigError(f"the fine-tune learning rate must be > 0, got {self.lr!r}")
        check_timesteps(self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint_path(out: str | Path) -> Path:
    """Where the fine-tune of a hybrid conversion written to ``out`` keeps its per-epoch checkpoint."""
    out = Path(out)
    return out.with_name(out.name + ".finetune.ckpt")


def _fingerprint(snn: SpikingNetwork) -> str:
    """A digest of the converted network's tensors: a checkpoint resumes only the fine-tune of the same conversion."""
    digest = hashlib.sha256()
    for name, value in sorted(snn.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:32]


def finetune_converted(snn: SpikingNetwork, train_data: Dataset, *, timesteps: int, budget: FinetuneBudget,
                       eval_data: Dataset | None = None, progress: bool = False, checkpoint: Path | None = None,
                       resume: bool = False, on_epoch_end: Callable[[Any], None] | None = None,
                       ) -> tuple[SpikingNetwork, dict[str, Any]]:  # fmt: skip
    """A fine-tuned copy of the converted ``snn`` (left untouched) and the record of what the fine-tune cost.

    Args:
        checkpoint: Rewritten atomically after every epoch (train-snn's checkpoint format), or None.
        resume: Continue from ``checkpoint`` if it exists: it must come from the same conversion, T and budget,
            and the result then equals an uninterrupted run's.
        on_epoch_end: Called with each new epoch's record (after its checkpoint is written).

    Raises:
        ConfigError: A neuron that cannot be fine-tuned (bistable, burst, ISI-corrected), named; bad budget.
        CheckpointError: ``resume`` from a checkpoint of another conversion, T or budget.
        DataError: ``train_data`` is empty.
    """
    check_timesteps(timesteps)
    origin = {"kind": "hybrid fine-tune", "conversion": _fingerprint(snn), "timesteps": timesteps, "budget": budget.to_dict()}
    trained = copy.deepcopy(snn)
    neurons = make_trainable_(trained.body)
    for parameter in trained.parameters():  # weights, θ, bias corrections, initial charge (docs/gap_analysis.md: why all)
        parameter.requires_grad_(True)
    trainable = sum(p.numel() for p in trained.parameters())
    used = train_data if budget.samples is None or budget.samples >= len(train_data) else Subset(train_data, range(budget.samples))
    config = SnnTrainConfig(timesteps=timesteps, epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                            optimizer=Optimizer.ADAM, schedule=Schedule.COSINE, seed=budget.seed)  # fmt: skip
    outputs = SnnTrainOutputs(checkpoint=checkpoint, arch=origin, metadata={"purpose": "resume a hybrid fine-tune"})
    resumed = resume and checkpoint is not None and Path(checkpoint).exists()
    new_epochs: list[int] = []

    def epoch_done(record: Any) -> None:
        new_epochs.append(record.epoch)
        if on_epoch_end is not None:
            on_epoch_end(record)

    start = time.perf_counter()
    result = train_network(trained, used, config=config, eval_data=eval_data, progress=progress, outputs=outputs,
                           resume=resumed, on_epoch_end=epoch_done)  # fmt: skip
    seconds = time.perf_counter() - start
    make_inference_(trained.body)
    for parameter in trained.parameters():
        parameter.requires_grad_(False)
    trained.eval()
    last = result.history.records[-1]
    record = {
        "timesteps": timesteps,
        "budget": budget.to_dict(),
        "samples_seen": len(used) * budget.epochs,  # type: ignore[arg-type]
        "seconds": round(seconds, 1),
        "epoch_seconds": [round(r.seconds, 1) for r in result.history.records],  # resumed epochs included
        **({"resumed_after_epoch": len(result.history.records) - len(new_epochs)} if resumed else {}),
        "neurons": neurons,
        "trained_values": trainable,
        "train_loss": last.train_loss,
        "train_accuracy": last.train_accuracy,
        **({"eval_accuracy": last.eval_accuracy} if last.eval_accuracy is not None else {}),
    }
    trained.metadata = {**trained.metadata, "hybrid": record}
    return trained, record
