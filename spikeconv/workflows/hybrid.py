"""``--method hybrid``: the calibrated conversion for the target T, then a short fine-tune at exactly that T.

The converted network already computes nearly the ANN's function; what it lacks at T = 1-4 is
timing (Rathi et al., ICLR 2020; DIET-SNN, Rathi & Roy 2021). Hybrid conversion trains the SNN
itself from there, briefly: its IF neurons become :class:`~spikeconv.neurons.finetune_if.TrainableIF`
(θ, and any measured per-channel bias or per-neuron initial charge, are parameters), the weights stay
the converted ones, and :func:`spikeconv.training.train_network` — train-snn's loop, loss and
surrogates — runs BPTT at T with a small learning rate. Afterwards the neurons are IF neurons again,
so the result is an ordinary converted SNN file: same kernels, same counters, same export.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

from torch.utils.data import Dataset, Subset

from spikeconv.errors import ConfigError
from spikeconv.neurons import SpikingNetwork, check_timesteps
from spikeconv.neurons.finetune_if import make_inference_, make_trainable_
from spikeconv.training import SnnTrainConfig, train_network
from spikeconv.training.config import Optimizer, Schedule

__all__ = ["FinetuneBudget", "finetune_converted"]


@dataclass(frozen=True)
class FinetuneBudget:
    """How much training hybrid may spend: ``epochs`` passes over the first ``samples`` training samples.

    The defaults were chosen by measurement (docs/benchmarks.md, "Hybrid conversion"): one pass over
    20,000 samples with Adam at lr 3e-4 took the shipped CNN's T = 2 conversion from 90.40 % to 92.35 %
    on the first 2,000 test images (lr 1e-4: 91.70 %), and to 91.47 % on the full test set (ANN 92.34 %).
    """

    epochs: int = 1
    samples: int | None = 20000
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


def finetune_converted(snn: SpikingNetwork, train_data: Dataset, *, timesteps: int, budget: FinetuneBudget,
                       eval_data: Dataset | None = None, progress: bool = False) -> tuple[SpikingNetwork, dict[str, Any]]:  # fmt: skip
    """A fine-tuned copy of the converted ``snn`` (left untouched) and the record of what the fine-tune cost.

    Raises:
        ConfigError: A neuron that cannot be fine-tuned (bistable, burst, SIN-corrected), named; bad budget.
        DataError: ``train_data`` is empty.
    """
    check_timesteps(timesteps)
    trained = copy.deepcopy(snn)
    neurons = make_trainable_(trained.body)
    for parameter in trained.parameters():
        parameter.requires_grad_(True)
    used = train_data if budget.samples is None or budget.samples >= len(train_data) else Subset(train_data, range(budget.samples))
    config = SnnTrainConfig(timesteps=timesteps, epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                            optimizer=Optimizer.ADAM, schedule=Schedule.COSINE, seed=budget.seed)  # fmt: skip
    start = time.perf_counter()
    result = train_network(trained, used, config=config, eval_data=eval_data, progress=progress)
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
        "neurons": neurons,
        "train_loss": last.train_loss,
        "train_accuracy": last.train_accuracy,
        **({"eval_accuracy": last.eval_accuracy} if last.eval_accuracy is not None else {}),
    }
    trained.metadata = {**trained.metadata, "hybrid": record}
    return trained, record
