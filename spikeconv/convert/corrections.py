"""Low-latency corrections measured against the ANN, layer by layer (SNN calibration).

Li, Deng, Dong, Gong, Gu, "A Free Lunch From ANN: Towards Efficient, Accurate Spiking Neural
Networks Calibration", ICML 2021. After thresholds are set, the SNN's rate at a site still differs
from the ANN's activation at a short T (quantization, and errors passed on from earlier layers).
Going from the first site to the last, simulate the SNN for T steps on calibration data, compare
each site's rate with the ANN's activation, and cancel the mean difference:

    bias      ("light"):    b_l    ← b_l    + mean_{N,H,W}(a_l − r_l)          per channel, added every step
    potential ("advanced"): V_l[0] ← V_l[0] + T · mean_N(a_l − r_l)           per neuron, added once

Each site is corrected with every earlier site already corrected, so later layers see the
improved spikes. The result is a new calibrated graph whose ThresholdPlan records the
corrections (JSON), so the conversion replays exactly without data.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, fx, nn

from spikeconv._names import NamedEnum
from spikeconv.calibration import PLAN_KEY, STAGE_KEY, plan_of
from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.rewrite import convert
from spikeconv.errors import CalibrationError, ConfigError, DataError
from spikeconv.neurons import check_timesteps


class Correction(NamedEnum):
    """Which quantity cancels the rate error at each site."""

    BIAS = "bias"
    POTENTIAL = "potential"

    __label__ = "correction"
    __choices_sep__ = " "


@dataclass(frozen=True)
class CorrectionConfig:
    """How to correct: the quantity, the T the SNN will run for, and the calibration budget."""

    kind: Correction = Correction.POTENTIAL
    timesteps: int = 8
    max_samples: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Correction):
            raise ConfigError("CorrectionConfig.kind must be a Correction member")
        check_timesteps(self.timesteps)
        check_timesteps(self.max_samples)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "timesteps": self.timesteps, "max_samples": self.max_samples}


def _collect(batches: Iterable[Any], max_samples: int) -> Tensor:
    pieces, seen = [], 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, Tensor):
            raise DataError(f"correction batches must be tensors [N, ...], got {type(x).__name__}")
        pieces.append(x[: max_samples - seen].float())
        seen += pieces[-1].shape[0]
        if seen >= max_samples:
            break
    if seen == 0:
        raise CalibrationError("correction data is empty: need at least one sample")
    return torch.cat(pieces)


@contextlib.contextmanager
def _capturing(modules: dict[str, nn.Module]) -> Iterator[dict[str, Tensor]]:
    """Record each module's output under its name while the block runs (hooks removed after)."""
    seen: dict[str, Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _a, out, n=name: seen.__setitem__(n, out.detach()))
               for name, m in modules.items()]  # fmt: skip
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _ann_activations(calibrated: fx.GraphModule, x: Tensor, sites: tuple[str, ...]) -> dict[str, Tensor]:
    model = copy.deepcopy(calibrated).eval()
    with _capturing({s: model.get_submodule(s) for s in sites}) as seen, torch.no_grad():
        model(x)
    return dict(seen)


def _snn_rate(snn: nn.Module, x: Tensor, site: str, steps: int) -> Tensor:
    with _capturing({site: snn.body.get_submodule(site)}) as seen, torch.no_grad():
        snn(x, steps)
    out = seen[site]
    return out.reshape(steps, x.shape[0], *out.shape[1:]).mean(0)


def _record(tensor: Tensor) -> dict[str, Any]:
    return {"values": tensor.flatten().tolist(), "shape": list(tensor.shape)}


def correct(
    calibrated: fx.GraphModule,
    batches: Iterable[Any],
    config: CorrectionConfig | None = None,
    convert_config: ConvertConfig | None = None,
) -> fx.GraphModule:
    """Measure per-site corrections on ``batches`` and return a calibrated graph that carries them.

    Args:
        calibrated: Output of :func:`spikeconv.calibration.calibrate` (left untouched).
        batches: Calibration inputs (tensors or ``(x, y)`` pairs); ``config.max_samples`` are used.
        config: Which correction, for which T.
        convert_config: The neuron settings the SNN will be converted with (θ/2 start, Γ, ...).
    """
    plan = plan_of(calibrated)
    if calibrated.meta.get(STAGE_KEY) != "prepared" or plan is None:
        raise CalibrationError("correct() needs a graph from calibrate()")
    config = config or CorrectionConfig()
    convert_config = convert_config or ConvertConfig()
    x = _collect(batches, config.max_samples)
    target = _ann_activations(calibrated, x, plan.sites)
    corrections: dict[str, dict[str, Any]] = {s: dict(r) for s, r in plan.corrections.items()}
    current = calibrated
    for site in plan.sites:
        snn = convert(current, replace(convert_config, time_chunk=None)).to(x.device).eval()  # thresholds where the data is
        diff = target[site] - _snn_rate(snn, x, site, config.timesteps)
        entry = corrections.setdefault(site, {})
        if config.kind is Correction.BIAS:
            dims = [d for d in range(diff.dim()) if d != 1] if diff.dim() > 1 else [0]
            shift = diff.mean(dim=dims)
            shift = shift.reshape(-1, *([1] * (diff.dim() - 2))) if diff.dim() > 1 else shift
            old = torch.tensor(entry["bias"], device=diff.device).reshape(entry["bias_shape"]) if "bias" in entry else 0.0
            new = _record(shift + old)
            entry["bias"], entry["bias_shape"] = new["values"], new["shape"]
        else:
            charge = config.timesteps * diff.mean(dim=0)
            old = torch.tensor(entry["v_offset"], device=diff.device).reshape(entry["v_offset_shape"]) if "v_offset" in entry else 0.0
            new = _record(charge + old)
            entry["v_offset"], entry["v_offset_shape"] = new["values"], new["shape"]
        current = _with_plan(calibrated, replace(plan, corrections=corrections,
                                                 extra={**plan.extra, "correction": config.to_dict()}))  # fmt: skip
    return _with_plan(copy.deepcopy(calibrated), plan_of(current))


def _with_plan(calibrated: fx.GraphModule, plan) -> fx.GraphModule:
    gm = copy.copy(calibrated)  # shares modules (read-only here); only meta differs
    gm.meta = dict(calibrated.meta)
    gm.meta[PLAN_KEY] = plan
    return gm
