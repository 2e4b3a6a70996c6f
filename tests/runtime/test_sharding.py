"""Sharding without a process group: every rank's batches together are the single-process batches, and the counts
of the shards add up to the single-process counts exactly (what torchrun's all-reduce relies on)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.evaluation import batches as batch_module
from spikeconv.evaluation import count_operations, timestep_accuracy_curve
from spikeconv.evaluation import counters as counter_module
from spikeconv.evaluation import curve as curve_module
from spikeconv.neurons import IFNeuron, SpikingNetwork


class _Body(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3)
        self.neuron = IFNeuron(torch.tensor(0.5))
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x, num_steps):
        return self.fc(self.neuron(self.conv(x), num_steps, static=True).flatten(1))


def _data(n: int = 37) -> ArrayDataset:
    generator = torch.Generator().manual_seed(1)
    return ArrayDataset(torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 3, (n,), generator=generator), num_classes=3,
                        name="random")


def _as_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(batch_module, "rank", lambda: rank)
    monkeypatch.setattr(batch_module, "world_size", lambda: world)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("as_list", [False, True])
def test_the_shards_are_the_single_process_batches(monkeypatch, world, as_list):
    data = _data()
    source = [(data.images[i : i + 8], data.labels[i : i + 8]) for i in range(0, 37, 8)] if as_list else data
    whole = [y.tolist() for _, y in batch_module.iter_batches(source, batch_size=8, device=torch.device("cpu"), progress=False,
                                                              desc="", shard=True)]  # fmt: skip
    shards = []
    for rank in range(world):
        _as_rank(monkeypatch, rank, world)
        shards.append([y.tolist() for _, y in batch_module.iter_batches(source, batch_size=8, device=torch.device("cpu"),
                                                                        progress=False, desc="", shard=True)])  # fmt: skip
    interleaved = [shards[i % world][i // world] for i in range(len(whole))]
    assert interleaved == whole and sum(len(s) for s in shards) == len(whole)


def test_sharded_curves_and_counts_sum_to_the_single_process_ones(monkeypatch):
    snn, data = SpikingNetwork(_Body()), _data()
    with count_operations(snn) as counter:
        whole = timestep_accuracy_curve(snn, data, timesteps=6, batch_size=8, progress=False)
    whole_counts = counter.result()
    states, correct = [], torch.zeros(6, dtype=torch.int64)
    reduced = {}

    def keep(tensor):  # the all-reduce of rank r: remember this rank's counts, return them as they are
        reduced.setdefault("parts", []).append(tensor.clone())
        return tensor

    monkeypatch.setattr(curve_module, "all_reduce_sum", keep)
    for rank in range(2):
        _as_rank(monkeypatch, rank, 2)
        reduced.clear()
        with count_operations(snn, shard=False) as counter:
            timestep_accuracy_curve(snn, data, timesteps=6, batch_size=8, progress=False, shard=True)
        states.append(counter._state())
        (hits_total, per_step) = reduced["parts"]
        correct += per_step
    assert [100.0 * c / 37 for c in correct.tolist()] == list(whole.accuracy)
    monkeypatch.setattr(counter_module, "all_gather_objects", lambda _value: states)
    merged = counter_module.OperationCounter(snn, shard=True).result()
    assert merged == whole_counts
