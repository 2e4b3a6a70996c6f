"""What a network must match before compare scores it: the compared architecture's layers, and the kind of
SNN file a method is given (kept apart from the job so that the job reads as the run it is)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from spikeconv.data.checks import check_data_fits
from spikeconv.errors import CheckpointError
from spikeconv.files import LoadedSnn, load_ann
from spikeconv.models import build_model
from spikeconv.options import snn_training_from_options
from spikeconv.workflows.compare.methods import MethodKind
from spikeconv.workflows.compare.models import ModelPlan, TrainingBudget

__all__ = ["check_arch", "check_snn_kind", "expected_shapes", "weight_shapes"]


def weight_shapes(model: torch.nn.Module) -> list[tuple[int, ...]]:
    synaptic = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    return sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, synaptic))  # graph order may differ


def check_arch(model: torch.nn.Module, expected: list[tuple[int, ...]], plan: ModelPlan, budget: TrainingBudget) -> None:
    found = weight_shapes(model)
    if found != expected:
        what, fix = ((f"--arch {budget.arch}", f"pass a checkpoint of {budget.arch} or change --arch") if budget.model is None
                     else (f"MODEL {budget.model}", "pass a checkpoint made from MODEL"))  # fmt: skip
        raise CheckpointError(f"{plan.path} ({plan.method.name}) does not have the layers of {what}: weight shapes "
                              f"{found} instead of {expected}; {fix}")  # fmt: skip


def expected_shapes(budget: TrainingBudget, test: Any) -> list[tuple[int, ...]]:
    """The weight shapes every compared network must have: the preset's, or the user's MODEL's (read and checked here,
    before anything is trained)."""
    sample_shape = tuple(int(v) for v in test.sample_shape)
    if budget.model is None:
        return weight_shapes(build_model(budget.arch, input_shape=sample_shape, num_classes=int(test.num_classes)))
    loaded = load_ann(budget.model, budget.model_spec, data_shape=sample_shape)
    check_data_fits(test, input_shape=loaded.input_shape, num_classes=loaded.num_classes, what=f"test ({budget.data.name})",
                    model=str(budget.model))  # fmt: skip
    return weight_shapes(loaded.model)


def _neuron_family(neuron: Mapping[str, Any]) -> dict[str, Any]:
    return {k: neuron.get(k) for k in ("type", "charge", "reset", "mpr")}


def check_snn_kind(loaded: LoadedSnn, plan: ModelPlan) -> None:
    """A user's SNN file must be of the method it is given for."""
    method, converted = plan.method, loaded.ann is not None
    if method.kind is MethodKind.DIRECT and converted:
        raise CheckpointError(f"{plan.path} is a converted SNN but {method.name} is directly trained; pass a train-snn checkpoint")
    if method.kind is MethodKind.CONVERSION and not converted:
        raise CheckpointError(f"{plan.path} is a directly trained SNN but {method.name} is a conversion; pass a convert file")
    if converted and loaded.info.get("method", method.name) != method.name:
        raise CheckpointError(f"{plan.path} was converted with method {loaded.info['method']!r}, not {method.name!r}; "
                              f"pass it as --checkpoint {loaded.info['method']}=... or convert with --method {method.name}")  # fmt: skip
    if not converted:
        recorded = loaded.info.get("training", {}).get("config", {}).get("neuron", {})
        expected = snn_training_from_options(neuron=method.neuron, mpr=method.mpr, timesteps=1, epochs=1, batch_size=1, lr=None,
                                             optimizer=None, schedule="cosine", loss=None, tdbn=None, augment="none", seed=0)  # fmt: skip
        if _neuron_family(recorded) != _neuron_family(expected.neuron.to_dict()):
            raise CheckpointError(f"{plan.path} was trained with neuron {_neuron_family(recorded)}, which is not {method.name}")
