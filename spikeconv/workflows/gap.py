"""``spikeconv gap``: per layer, how much of a converted SNN's error is quantisation and how much is timing.

Three networks run on the same test samples: the ANN the SNN approximates (the SNN's own weights —
fine-tuned ones for ``hybrid`` files — with every activation clipped at its neuron's threshold), its
ideal T-step rate code (:func:`~spikeconv.convert.rate_code_ann` with each quantiser given the
neuron's own θ, bias and initial charge), and the SNN itself. Hooks, removed when the run ends,
record each spiking layer's input and output in all three; :class:`~spikeconv.evaluation.gap.GapTally`
turns them into the per-layer errors that :mod:`spikeconv.evaluation.gap` defines.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, fx, nn
from tqdm import tqdm

from spikeconv._outputs import check_outputs
from spikeconv.calibration import OBSERVERS_KEY, plan_of
from spikeconv.convert import ConvertConfig, RateCodeQuantizer, rate_code_ann
from spikeconv.data import Split, make_loader
from spikeconv.data.checks import check_data_fits
from spikeconv.errors import ConfigError, ConversionError
from spikeconv.evaluation.gap import READOUT, GapResult, GapTally, format_gap_table
from spikeconv.files import LoadedSnn, load_snn
from spikeconv.neurons import BistableIFNeuron, IFNeuron, SpikingNetwork, check_timesteps
from spikeconv.runtime import resolve_device
from spikeconv.runtime.memory import MemoryBudget, measure_batch_cost, plan_batch, resolve_budget, stage
from spikeconv.workflows.jobs import DataSource, write_json, write_main

__all__ = ["ClipAt", "GapJob", "format_gap_table", "gap_job", "gap_networks", "layer_gaps"]


class ClipAt(nn.Module):
    """``clip(x, 0, θ)``: an activation as the ANN computes it within the range its neuron can code.

    Shapes: ``[N, C, ...]`` in and out; θ is one value or one per channel (dim 1).
    """

    def __init__(self, threshold: Tensor) -> None:
        super().__init__()
        self.register_buffer("threshold", threshold.detach().reshape(-1).clone())

    def forward(self, x: Tensor) -> Tensor:
        th = self.threshold.to(x.dtype)
        th = th.reshape(()) if th.numel() == 1 else th.reshape(1, -1, *([1] * (x.dim() - 2)))
        return torch.minimum(x.clamp_min(0), th)


@dataclass(frozen=True)
class GapJob:
    """Analyse one converted SNN file at ``timesteps`` on the first ``limit`` test samples."""

    snn: Path
    timesteps: int
    data: DataSource = field(default_factory=DataSource)
    limit: int | None = None
    batch_size: int = 128
    json_path: Path | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_timesteps(self.timesteps)
        check_timesteps(self.batch_size)
        resolve_device(self.device)


def gap_job(job: GapJob, *, progress: bool = True) -> GapResult:
    """Read the SNN file, run the analysis on the test split, write ``--json`` (atomically) and return the result.

    Raises:
        OutputError: ``--json`` is an input, a folder or not writable (checked before the file is read).
        ConfigError: The SNN was trained directly (no ANN to compare with) or its neurons have no rate code.
        DataError: The data does not fit the network.
    """
    check_outputs({"--json": job.json_path}, [job.snn, *job.data.input_files()])
    loaded = load_snn(job.snn)
    if loaded.calibrated is None:
        raise ConfigError(f"{job.snn} was trained directly, so it has no ANN to compare with; gap needs a converted SNN file")
    shape = tuple(loaded.info["input_shape"])
    test = job.data.load(Split.TEST, job.limit, input_shape=shape)
    check_data_fits(test, input_shape=shape, num_classes=int(loaded.info["num_classes"]), what=f"test ({job.data.name})",
                    model=str(job.snn))  # fmt: skip
    with stage(f"gap analysis at T = {job.timesteps}"):
        result = layer_gaps(loaded, test, timesteps=job.timesteps, batch_size=job.batch_size, device=job.device, progress=progress)
    result = replace(result, extra={"snn": str(job.snn), "dataset": job.data.name, "limit": job.limit,
                                    "method": loaded.info.get("method")})  # fmt: skip
    if job.json_path is not None:
        write_main(lambda: write_json(job.json_path, result.to_dict()))
    return result


def _site_order(calibrated: fx.GraphModule) -> list[str]:
    sites = set(plan_of(calibrated).thresholds)
    return [str(n.target) for n in calibrated.graph.nodes if n.op == "call_module" and n.target in sites]


def _with_snn_weights(calibrated: fx.GraphModule, body: nn.Module, skip: set[str]) -> fx.GraphModule:
    """A copy of the calibrated graph whose layers hold the SNN's (possibly fine-tuned) weights."""
    own = copy.deepcopy(calibrated)
    for name, module in own.named_modules():
        if not name or name in skip or not (list(module.parameters(recurse=False)) or list(module.buffers(recurse=False))):
            continue
        try:
            twin = body.get_submodule(name)
        except AttributeError:
            raise ConversionError(f"the SNN has no layer {name} of its ANN graph; convert the model again") from None
        if type(twin) is not type(module):
            continue  # a layer the conversion replaced (e.g. a pool): it holds no trained weights
        module.load_state_dict(twin.state_dict())
    return own


def gap_networks(loaded: LoadedSnn, timesteps: int) -> tuple[fx.GraphModule, fx.GraphModule, list[str]]:
    """The clipped ANN and the ideal rate code of ``loaded``'s own weights and neurons, and the spiking sites in graph order.

    Raises:
        ConfigError: A directly trained SNN, or a site whose neuron is not an IF neuron (no rate code).
    """
    if loaded.calibrated is None:
        raise ConfigError("the gap analysis needs a converted SNN; this one was trained directly")
    sites = _site_order(loaded.calibrated)
    observers = set(loaded.calibrated.meta.get(OBSERVERS_KEY, {}).values())
    own = _with_snn_weights(loaded.calibrated, loaded.snn.body, set(sites) | observers)
    rate = rate_code_ann(own, timesteps, ConvertConfig.from_dict(loaded.snn.metadata["convert"]))
    for site in sites:
        neuron, quantizer = loaded.snn.body.get_submodule(site), rate.get_submodule(site)
        plain = isinstance(neuron, IFNeuron) and not isinstance(neuron, BistableIFNeuron)
        if not plain or not isinstance(quantizer, RateCodeQuantizer):
            raise ConfigError(f"neuron {site} ({type(neuron).__name__}) has no ideal rate code; gap analyses IF-neuron conversions")
        quantizer.threshold = neuron.threshold.detach().reshape(-1).clone()
        quantizer.bias, quantizer.v_offset = neuron.bias.detach().clone(), neuron.v_offset.detach().clone()
        quantizer.v_init = float(neuron.v_init)
    clipped = copy.deepcopy(rate)
    for site in sites:
        clipped.add_submodule(site, ClipAt(rate.get_submodule(site).threshold))
    return clipped.eval(), rate.eval(), sites


@contextlib.contextmanager
def _recording(graph: nn.Module, sites: list[str]) -> Iterator[dict[str, tuple[Tensor, Tensor]]]:
    """site -> (input, output) of the last forward; the hooks are removed when the block ends."""
    seen: dict[str, tuple[Tensor, Tensor]] = {}
    handles = [graph.get_submodule(site).register_forward_hook(lambda _m, args, out, site=site: seen.__setitem__(site, (args[0], out)))
               for site in sites]  # fmt: skip
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _steps_of(args: tuple, kwargs: dict) -> tuple[int, bool]:
    steps = args[1] if len(args) > 1 else kwargs["num_steps"]
    static = args[2] if len(args) > 2 else kwargs.get("static", False)
    return int(steps), bool(static)


def _step_sum(x: Tensor, steps: int, static: bool) -> Tensor:
    return x * steps if static else x.reshape(steps, x.shape[0] // steps, *x.shape[1:]).sum(0)


@contextlib.contextmanager
def _spiking_sums(snn: SpikingNetwork, sites: list[str]) -> Iterator[dict[str, list[Tensor]]]:
    """site -> [Σ_t input, Σ_t output] over the steps of the current forward (time chunks added up); clear between batches."""
    sums: dict[str, list[Tensor]] = {}

    def add(site: str, index: int, value: Tensor) -> None:
        pair = sums.setdefault(site, [torch.zeros(()), torch.zeros(())])
        pair[index] = pair[index] + value.detach().float()

    def before(site: str):
        return lambda _m, args, kwargs: add(site, 0, _step_sum(args[0], *_steps_of(args, kwargs)))

    def after(site: str):
        return lambda _m, args, kwargs, out: add(site, 1, _step_sum(out, _steps_of(args, kwargs)[0], False))

    handles = []
    for site in sites:
        neuron = snn.body.get_submodule(site)
        handles += [neuron.register_forward_pre_hook(before(site), with_kwargs=True),
                    neuron.register_forward_hook(after(site), with_kwargs=True)]  # fmt: skip
    try:
        yield sums
    finally:
        for handle in handles:
            handle.remove()


def layer_gaps(loaded: LoadedSnn, data, *, timesteps: int, batch_size: int = 128, device: str = "cpu",
               progress: bool = False) -> GapResult:  # fmt: skip
    """The per-layer quantisation and timing errors of a converted SNN at ``timesteps`` on ``data`` (a Dataset of (x, y)).

    Raises:
        ConfigError: As :func:`gap_networks`.
    """
    check_timesteps(timesteps)
    where = resolve_device(device)
    clipped, rate, sites = gap_networks(loaded, timesteps)
    clipped, rate, snn = clipped.to(where), rate.to(where), loaded.snn.to(where).eval()
    ann = None if loaded.ann is None else loaded.ann.to(where).eval()
    tally, hits = GapTally(), torch.zeros(4, dtype=torch.long)
    batches = tqdm(make_loader(data, batch_size=batch_size, shuffle=False), desc="gap", leave=False, disable=not progress)
    with torch.inference_mode(), _recording(clipped, sites) as seen_a, _recording(rate, sites) as seen_r, \
            _spiking_sums(snn, sites) as sums:  # fmt: skip

        def measure(x: Tensor, y: Tensor, tally: GapTally, hits: Tensor) -> None:
            """One batch of the three networks, tallied."""
            sums.clear()
            logits_a, logits_r, readout = clipped(x), rate(x), snn(x, timesteps).sum(0)
            ideal = dict(seen_r)  # calling a quantiser below (the local codes) records again: keep this forward's
            for site in sites:
                (z, a), (_, r) = seen_a[site], ideal[site]
                current, spikes = (value / timesteps for value in sums[site])
                code = rate.get_submodule(site)
                tally.add_layer(site, threshold=code.threshold, ann=a, rate=r, snn=spikes, local_code=code(z),
                                own_code=code(current), unclipped=z.clamp_min(0))  # fmt: skip
            tally.add_layer(READOUT, threshold=torch.zeros(1), ann=logits_a, rate=logits_r, snn=readout / timesteps)
            predictions = [logits_a, logits_r, readout, ann(x) if ann is not None else logits_a]
            hits += torch.tensor([int((p.argmax(1) == y).sum()) for p in predictions])
            tally.samples += int(y.numel())

        size = None
        for x, y in batches:
            x, y = x.to(where), y.to(where)
            if size is None:  # measured on a throwaway tally: the plan's probe samples are not counted
                label = y[:1]
                cost = measure_batch_cost(lambda part, label=label: measure(part, label.expand(part.shape[0]), GapTally(), hits.clone()),
                                          x[:1])  # fmt: skip
                room, source = resolve_budget(MemoryBudget(), where)
                size = plan_batch(cost, wanted=batch_size, room=room, source=source, what=f"the gap analysis at T = {timesteps}")
            for start in range(0, x.shape[0], size):
                measure(x[start : start + size], y[start : start + size], tally, hits)
    if tally.samples == 0:
        raise ConfigError("the data holds no samples; pass a non-empty data set")
    accuracy = [100.0 * int(h) / tally.samples for h in hits]
    return GapResult(timesteps=timesteps, samples=tally.samples, clipped_accuracy=accuracy[0], rate_code_accuracy=accuracy[1],
                     snn_accuracy=accuracy[2], ann_accuracy=accuracy[3] if ann is not None else None, layers=tally.rows())  # fmt: skip
