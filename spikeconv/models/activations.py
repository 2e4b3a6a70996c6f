"""Which activation a built network uses: ReLU (default) or QCFS for low-latency conversion."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError
from spikeconv.neurons.qcfs import QCFS


class ActivationKind(NamedEnum):
    """The hidden-layer activation."""

    RELU = "relu"
    QCFS = "qcfs"

    __label__ = "activation"
    __choices_sep__ = " "


@dataclass(frozen=True)
class ActivationSpec:
    """An activation and its options (``levels``/``init_threshold`` apply to QCFS only)."""

    kind: ActivationKind = ActivationKind.RELU
    levels: int = 4
    init_threshold: float = 8.0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ActivationKind):
            raise ConfigError("ActivationSpec.kind must be an ActivationKind")
        if self.kind is ActivationKind.QCFS:
            QCFS(self.levels, init_threshold=self.init_threshold)  # validates

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "levels": self.levels, "init_threshold": self.init_threshold}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ActivationSpec:
        if not data:
            return cls()
        return cls(kind=ActivationKind.from_name(data.get("kind", "relu")), levels=int(data.get("levels", 4)),
                   init_threshold=float(data.get("init_threshold", 8.0)))  # fmt: skip


def apply_activation_(model: nn.Module, spec: ActivationSpec) -> nn.Module:
    """Replace every ``nn.ReLU`` module of ``model`` in place by ``spec``'s activation; returns ``model``.

    A ReLU instance shared by several call sites is replaced by one shared activation (one λ).
    """
    if spec.kind is ActivationKind.RELU:
        return model
    replaced: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                if id(child) not in replaced:
                    replaced[id(child)] = QCFS(spec.levels, init_threshold=spec.init_threshold)
                setattr(parent, name, replaced[id(child)])
    if not replaced:
        raise ConfigError("the model has no nn.ReLU modules to replace by QCFS")
    return model


def _qcfs_modules(model: nn.Module) -> list[QCFS]:
    unique: dict[int, QCFS] = {}
    for module in model.modules():
        if isinstance(module, QCFS):
            unique.setdefault(id(module), module)
    return list(unique.values())


def init_qcfs_thresholds_(model: nn.Module, batch: torch.Tensor, *, percentile: float = 99.9) -> list[float]:
    """Set each QCFS λ to the ``percentile`` of its positive input on ``batch``, layer by layer.

    The QCFS paper's fixed λ = 8 suits its 300-epoch SGD schedules, where λ has time to move; with
    short budgets a λ far above the activations' range leaves most units in the zero bin. This
    data-driven start (in forward order, so each layer sees its predecessors' new λ) is what
    robust normalisation does for converted ReLU networks (Rueckauer et al. 2017). BatchNorm runs
    in training mode on a copy, as it would in the first training step; ``model`` keeps its mode.

    Returns:
        The chosen λ per QCFS module, in module order.
    """
    if not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    probe = copy.deepcopy(model).train()
    targets = _qcfs_modules(model)
    chosen = []
    for index, probe_module in enumerate(_qcfs_modules(probe)):
        seen: list[torch.Tensor] = []
        handle = probe_module.register_forward_pre_hook(lambda _m, args, store=seen: store.append(args[0].detach()))
        try:
            with torch.no_grad():
                probe(batch)
        finally:
            handle.remove()
        values = torch.cat([v.flatten() for v in seen])
        positive = values[values > 0]
        lam = float(torch.quantile(positive[:1_000_000], percentile / 100.0)) if positive.numel() else 1.0
        lam = max(lam, 1e-3)
        with torch.no_grad():
            probe_module.threshold.fill_(lam)
            targets[index].threshold.fill_(lam)
        chosen.append(lam)
    return chosen
