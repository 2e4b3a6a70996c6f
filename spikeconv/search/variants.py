"""What the search tries: the conversion variants (a method with its neuron options) and the choice it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from torch import fx

from spikeconv.convert import ConvertConfig, NeuronKind
from spikeconv.convert.methods import MethodOverrides, MethodSettings, method_settings
from spikeconv.neurons import SinCorrection, SpikingNetwork
from spikeconv.neurons.finetune_if import FINETUNABLE_SIN


@dataclass(frozen=True)
class Variant:
    """One method with its neuron options: a row family of the candidate table.

    ``start`` names the conversion a ``hybrid`` variant fine-tunes (its thresholds, correction and neurons), so
    that hybrid starts from the best conversion the search simulated rather than from one fixed recipe; its
    label says so, e.g. ``hybrid (calibrated + per-channel + signed)``.
    """

    method: str
    per_channel: bool = False
    sin: SinCorrection = SinCorrection.NONE
    start: str | None = None

    @property
    def label(self) -> str:
        parts = [self.start or self.method] + (["per-channel"] if self.per_channel else [])
        parts += ["signed"] if self.sin is SinCorrection.SIGNED else []
        return f"{self.method} ({' + '.join(parts)})" if self.start else " + ".join(parts)

    def finetuned(self) -> Variant:
        """``hybrid`` started from this conversion variant."""
        return Variant("hybrid", self.per_channel, self.sin, start=self.method)

    def can_finetune(self, base: ConvertConfig) -> bool:
        """Whether hybrid can train this variant's neurons (IF, one spike per step, no or the signed SIN correction)."""
        convert = self.settings(base, 1, 1).convert
        return convert.neuron is NeuronKind.IF and convert.max_spikes == 1 and convert.sin_correction in FINETUNABLE_SIN

    def settings(self, base: ConvertConfig, timesteps: int, correction_samples: int) -> MethodSettings:
        overrides = MethodOverrides(per_channel=self.per_channel, sin_correction=self.sin)
        settings = method_settings(self.start or self.method, base, target_timesteps=timesteps,
                                   correction_samples=correction_samples, overrides=overrides)  # fmt: skip
        return replace(settings, finetune=True) if self.start else settings


@dataclass(frozen=True)
class AutoChoice:
    """The chosen conversion: its calibrated graph (corrections included), neuron settings, method and evidence."""

    calibrated: fx.GraphModule
    convert: ConvertConfig
    variant: Variant
    report: dict[str, Any]
    snn: SpikingNetwork | None = None  # the fine-tuned network when hybrid was chosen (a conversion is rebuilt from the rest)
    hybrid: dict[str, Any] | None = None  # what that fine-tune cost (training/snn/finetune.py's record)

    @property
    def timesteps(self) -> int:
        """The chosen T (the converted network's default simulation length)."""
        return self.convert.timesteps


def has_qcfs_sites(graph: fx.GraphModule) -> bool:
    """Whether the ANN's activations carry a learned clip (QCFS-trained), so the qcfs methods apply."""
    return any(hasattr(module, "learned_threshold") for module in graph.modules())


def variants_for(graph: fx.GraphModule) -> list[Variant]:
    """Every applicable variant: calibrated (per-layer/per-channel, with/without the signed neuron), burst, qcfs."""
    found = [Variant("calibrated", per_channel, sin) for per_channel in (False, True) for sin in (SinCorrection.NONE, SinCorrection.SIGNED)]
    if has_qcfs_sites(graph):
        found = [Variant("qcfs-calibrated"), Variant("qcfs-calibrated", sin=SinCorrection.SIGNED), Variant("qcfs"), *found]
    return [*found, Variant("burst")]


def bits_per_step(convert_config: ConvertConfig) -> int:
    return max(1, math.ceil(math.log2(convert_config.max_spikes + 1)))
