"""The memory guard of timestep_accuracy_curve: measured footprints, automatic time chunks, one-line refusals."""

from __future__ import annotations

import pytest
import torch

import spikeconv
from spikeconv.data import Split, load_dataset
from spikeconv.errors import ConfigError
from spikeconv.evaluation import MemoryBudget, count_operations, measure_footprint, scoring, timestep_accuracy_curve
from spikeconv.evaluation import memory as memory_module
from spikeconv.evaluation.memory import SLACK, ChunkRequest, SimulationFootprint, plan_time_chunk, resolve_budget
from spikeconv.models import build_model
from spikeconv.neurons import SpikingNetwork, trainable_neuron_config
from spikeconv.runtime.memory import current_rss
from spikeconv.training.snn.spikify import spikify

SHAPE = (1, 8, 8)
T = 24


def _converted() -> SpikingNetwork:
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()
    return spikeconv.convert(model, [torch.rand(64, *SHAPE)], method="rate", timesteps=T)


def _trained() -> SpikingNetwork:
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=SHAPE, num_classes=10)
    return spikify(model, trainable_neuron_config("srif", mpr=True), timesteps=2).eval()


@pytest.fixture(params=["converted", "trained"])
def snn(request) -> SpikingNetwork:
    return _converted() if request.param == "converted" else _trained()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split=Split.TEST, limit=120)


def _footprint(snn: SpikingNetwork) -> SimulationFootprint:
    with torch.inference_mode():
        return measure_footprint(snn.eval(), torch.rand(1, *SHAPE))


def _budget_for(footprint: SimulationFootprint, steps: int, batch: int) -> int:
    """A budget in which exactly ``steps`` steps of the network fit beside the readout and the curve."""
    fixed = footprint.readout_bytes(T, batch) + T * memory_module.CURVE_BYTES_PER_STEP + batch * footprint.per_call + SLACK
    return fixed + steps * batch * footprint.per_step


def _body_calls(snn: SpikingNetwork) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    calls: list[int] = []
    handle = snn.body.register_forward_pre_hook(lambda module, args: calls.append(int(args[1])))
    return calls, handle


def test_footprint_grows_with_the_steps_of_the_network(snn):
    footprint = _footprint(snn)
    assert footprint.classes == 10 and footprint.per_step > 0
    # at least every neuron's output per step (digits-cnn: 16x8x8 + 32x4x4 + 64 float32 values)
    assert footprint.per_step >= 4 * (16 * 64 + 32 * 16 + 64)
    assert snn.time_chunk is None and all(n._v is None for _, n in snn.neurons() if hasattr(n, "_v"))


def test_auto_chunked_curve_equals_the_whole_run(snn, digits):
    whole = timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False)
    budget = _budget_for(_footprint(snn), steps=7, batch=50)
    calls, handle = _body_calls(snn)
    try:
        chunked = timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False,
                                          memory=MemoryBudget(limit=budget))  # fmt: skip
    finally:
        handle.remove()
    assert chunked.accuracy == whole.accuracy and chunked.num_samples == 120
    # the footprint probe (1 and 2 steps on one sample), then each batch of 50 as 7 + 7 + 7 + 3 steps; the last
    # batch of 20 gets longer chunks
    assert calls[:10] == [1, 2, 7, 7, 7, 3, 7, 7, 7, 3] and sum(calls[10:]) == T
    assert snn.time_chunk is None  # the chunk was set for the curve only


def test_an_explicit_chunk_is_kept_and_refused_when_too_large(digits):
    snn = _converted()
    footprint = _footprint(snn)
    snn.time_chunk = 5
    calls, handle = _body_calls(snn)
    try:
        timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False,
                                memory=MemoryBudget(limit=_budget_for(footprint, 7, 50)))  # fmt: skip
    finally:
        handle.remove()
    assert calls[2:] == [5, 5, 5, 5, 4] * 3 and snn.time_chunk == 5
    snn.time_chunk = 12
    with pytest.raises(ConfigError, match=r"a time chunk of 12 steps .* use a time chunk of at most 7 steps"):
        timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False,
                                memory=MemoryBudget(limit=_budget_for(footprint, 7, 50)))  # fmt: skip


def test_a_batch_too_large_for_one_step_runs_in_smaller_batches_with_the_same_curve(digits):
    snn = _converted()
    whole = timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False)
    footprint = _footprint(snn)
    limit = _budget_for(footprint, 0, 50)  # the readout and curve of 50 fit, one step of the network on 50 does not
    calls, handle = _body_calls(snn)
    try:
        parts = timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False, memory=MemoryBudget(limit=limit))
    finally:
        handle.remove()
    assert parts.accuracy == whole.accuracy and parts.num_samples == 120
    per_sample = footprint.readout_bytes(T, 1) + footprint.per_call + footprint.per_step
    room = limit - SLACK - T * memory_module.CURVE_BYTES_PER_STEP
    assert len(calls) - 2 > 3 and room // per_sample < 50  # more body calls than the three batches of the data


def test_not_even_one_sample_fits_is_one_line_with_what_would_fit(digits):
    snn = _converted()
    footprint = _footprint(snn)
    limit = _budget_for(footprint, 0, 1)  # the readout and curve of one sample fit, one step of it does not
    with pytest.raises(ConfigError) as caught:
        timestep_accuracy_curve(snn, digits, timesteps=T, batch_size=50, progress=False, memory=MemoryBudget(limit=limit))
    message = str(caught.value)
    assert "\n" not in message and f"simulating {T} steps of a batch of 50 needs" in message
    assert "readout [T, N, K] = [24, 50, 10]" in message and "memory budget of" in message


def test_an_absurd_t_is_refused_before_the_network_runs(digits):
    snn = _converted()
    calls, handle = _body_calls(snn)
    try:
        with pytest.raises(ConfigError, match=r"1000000000 timesteps need .* for the per-step accuracy curve alone"):
            timestep_accuracy_curve(snn, digits, timesteps=10**9, progress=False)
    finally:
        handle.remove()
    assert calls == []


def test_the_budget_comes_from_the_environment_or_the_available_memory(monkeypatch):
    held = current_rss()
    monkeypatch.setenv("SPIKECONV_MEMORY_BUDGET", f"{held + (3 << 29)}")  # the cap covers what the process holds
    room, source = resolve_budget(MemoryBudget(), torch.device("cpu"))
    assert abs(room - (3 << 29)) < 64 << 20 and source.startswith(f"SPIKECONV_MEMORY_BUDGET={held + (3 << 29)}, of which")
    monkeypatch.setenv("SPIKECONV_MEMORY_BUDGET", "1M")  # less than the process holds: no room at all
    assert resolve_budget(MemoryBudget(), torch.device("cpu"))[0] == 0
    assert resolve_budget(MemoryBudget(limit=1000), torch.device("cpu"))[0] == 1000
    monkeypatch.setenv("SPIKECONV_MEMORY_BUDGET", "lots")
    with pytest.raises(ConfigError, match="SPIKECONV_MEMORY_BUDGET='lots' is not a memory size"):
        resolve_budget(MemoryBudget(), torch.device("cpu"))
    monkeypatch.delenv("SPIKECONV_MEMORY_BUDGET")
    limit, source = resolve_budget(MemoryBudget(), torch.device("cpu"))
    assert 0 < limit and source.startswith("half of the available memory")


def test_the_plan_picks_the_largest_chunk_that_fits():
    footprint = SimulationFootprint(per_call=1000, per_step=100, classes=10)
    fixed = 100 * 10 * 4 * 8 + 8 * 1000 + SLACK  # T = 100 readout of 8 samples, per-call bytes
    request = ChunkRequest(timesteps=100, batch=8, limit=fixed + 8 * 100 * 37, source="test")
    assert plan_time_chunk(footprint, request) == 37
    assert plan_time_chunk(footprint, ChunkRequest(timesteps=10, batch=8, limit=fixed, source="test")) == 10


def test_counters_do_not_count_the_footprint_probe(digits):
    snn = _converted()
    with count_operations(snn) as counter:
        timestep_accuracy_curve(snn, digits, timesteps=4, batch_size=50, progress=False)
    counts = counter.result()
    assert counts.samples == 120 and counts.timesteps == 4


def test_readout_blocks_give_the_predictions_of_one_cumulative_sum(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(301, 7, 5, generator=gen) * 1e3 + torch.randn(301, 7, 5, generator=gen) * 1e-4
    y = torch.randint(0, 5, (7,), generator=gen)
    expected = (out.to(torch.float64).cumsum(0).argmax(-1) == y).sum(dim=1)
    monkeypatch.setattr(scoring, "BLOCK_ELEMENTS", 7 * 5 * 13)  # blocks of 13 steps
    assert torch.equal(scoring.correct_per_step(out, y, 301), expected)
