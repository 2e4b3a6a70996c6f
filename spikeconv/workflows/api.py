"""Five-line Python API: convert any nn.Module with any iterable of batches, then measure it.

These are the same objects the CLI uses: :func:`convert` applies a named conversion method with
the settings ``spikeconv convert --method`` uses (calibration rule, neurons, correction);
``convert_model`` is the plain ingest -> prepare -> calibrate -> convert; ``evaluate_curve`` is
:func:`spikeconv.evaluation.timestep_accuracy_curve`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import torch
from torch import fx, nn
from torch.utils.data import Dataset

from spikeconv._names import name_key
from spikeconv.calibration import CalibrationConfig, calibrate, prepare
from spikeconv.convert import ConvertConfig, correct
from spikeconv.convert import convert as convert_graph
from spikeconv.convert.methods import ConversionMethod, method_name, method_settings
from spikeconv.data import calibration_subset
from spikeconv.errors import ConfigError
from spikeconv.evaluation import CurveResult, timestep_accuracy_curve
from spikeconv.files import LoadedAnn, load_ann
from spikeconv.ingest import STAGE_KEY, ingest_module
from spikeconv.neurons import SpikingNetwork, check_timesteps
from spikeconv.runtime import BatchesOn, Precision, resolve_device
from spikeconv.search import AutoConfig, auto_calibration_samples, choose_conversion, finetune_split, validation_split
from spikeconv.training import FinetuneBudget, finetune_converted


def _graph_of(model: nn.Module | LoadedAnn | str | os.PathLike) -> fx.GraphModule:
    """The canonical ANN graph of a module, a loaded ANN, or a model file (format detected from the file)."""
    if isinstance(model, (str, os.PathLike)):
        model = load_ann(model)
    if isinstance(model, LoadedAnn):
        model = model.model
    if isinstance(model, fx.GraphModule) and model.meta.get(STAGE_KEY) == "ann":
        return model
    return ingest_module(model)


def _reusable(data: Iterable[Any]) -> Iterable[Any]:
    """Batches that can be read twice (a correction reads them after calibration): one-shot iterators become lists."""
    if isinstance(data, Iterator):
        return list(data)
    return data


def convert(
    model: nn.Module | LoadedAnn | str | os.PathLike,
    calibration_data: Iterable[Any],
    *,
    method: str | ConversionMethod = "rate",
    timesteps: int = 64,
    max_samples: int | None = None,
    correction_samples: int = 512,
    config: ConvertConfig | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
    train_data: Dataset | None = None,
    finetune: FinetuneBudget | None = None,
    auto: AutoConfig | None = None,
    allow_finetune: bool = False,
) -> SpikingNetwork:
    """Convert a trained ReLU network with a named method, as ``spikeconv convert --method`` does.

    Example::

        snn = spikeconv.convert(model, loader, method="calibrated", timesteps=4)
        curve = spikeconv.evaluate_curve(snn, test_loader, timesteps=32, ann=model)

    Args:
        model: An ``nn.Module`` (deep-copied, never modified), a :class:`LoadedAnn`, or a model
            file whose format is detected (spikeconv checkpoint, ONNX, ``.pt2``; for a
            state_dict use ``load_ann(path, ModelSpec(arch=...))``). The model takes the
            batches as they come: put any input normalisation inside it.
        calibration_data: Batches of inputs: a DataLoader, a list of tensors, or ``(x, y)`` pairs.
        method: A conversion method name (``rate``, ``calibrated``, ``calibrated-light``, ``qcfs``,
            ``qcfs-calibrated``, ``burst``, ``bsnn``, ``hybrid``) or :class:`ConversionMethod`.
        timesteps: The T you will run: methods that optimise for a T (``calibrated``, ...) optimise
            for it, and it is the network's default simulation length.
        max_samples: Calibrate on at most this many samples (all batches when None).
        correction_samples: Of those, samples the method's correction (if any) uses.
        config: Base neuron settings (reset, encoding, ...); the method adjusts them as the CLI does.
        progress: Show progress bars.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``: calibration and corrections run there (batches are
            moved one at a time) and the SNN lives there. None: where the model is, with the batches as given.
        train_data: Labelled training samples for ``method="hybrid"``, which fine-tunes the conversion at ``timesteps``.
        finetune: The hybrid fine-tune budget (default :class:`~spikeconv.training.FinetuneBudget`).
        auto: With ``method="auto"``: the budget and search bounds (default :class:`~spikeconv.search.AutoConfig`).
            ``calibration_data`` must then be the labelled training *Dataset*: auto draws its calibration, validation
            (and fine-tune) samples from it as ``convert --method auto`` does; the chosen T is the network's default
            length and the search's report is ``snn.metadata["auto"]``.
        allow_finetune: With ``method="auto"``: let the search also train ``hybrid`` (``finetune`` is its budget).
            Without it auto never trains.

    Returns:
        A :class:`SpikingNetwork`; call ``snn(x, T)`` for the readout current ``[T, N, K]``.

    Raises:
        ConfigError: Unknown method, ``timesteps <= 0``, or a device that is not there.
        UnsupportedLayerError: Layers that cannot be converted, all listed.
        CalibrationError: Empty or non-finite calibration data.
    """
    check_timesteps(timesteps)
    if isinstance(method, str) and name_key(method) == "auto":
        return _auto_convert(model, calibration_data, base=replace(config or ConvertConfig(), timesteps=timesteps), auto=auto,
                             allow_finetune=allow_finetune, finetune=finetune, max_samples=max_samples,
                             correction_samples=correction_samples, device=device)  # fmt: skip
    if allow_finetune or auto is not None:
        raise ConfigError("auto= and allow_finetune= apply to method='auto'; a named method does what it names")
    kind = method_name(method)
    if correction_samples < 1:
        raise ConfigError(f"correction_samples must be >= 1, got {correction_samples}")
    base = replace(config or ConvertConfig(), timesteps=timesteps)
    settings = method_settings(kind, base, target_timesteps=timesteps, correction_samples=correction_samples)
    graph, data = _placed(_graph_of(model), _reusable(calibration_data), device)
    calibrated = calibrate(prepare(graph, settings.calibration), data, max_samples=max_samples, progress=progress,
                           extra={"method": kind})  # fmt: skip
    if settings.correction is not None:
        calibrated = correct(calibrated, data, settings.correction, settings.convert)
    snn = _on_graph_device(convert_graph(calibrated, settings.convert), graph)
    if settings.finetune:
        if train_data is None:
            raise ConfigError(f"method {kind} fine-tunes the converted SNN on labelled data: pass train_data=a dataset of "
                              "(image, label)")  # fmt: skip
        snn, _ = finetune_converted(snn, train_data, timesteps=timesteps, budget=finetune or FinetuneBudget(), progress=progress)
    return snn


def _auto_convert(model, train: Any, *, base: ConvertConfig, auto: AutoConfig | None, allow_finetune: bool,
                  finetune: FinetuneBudget | None, max_samples: int | None, correction_samples: int,
                  device: str | torch.device | None) -> SpikingNetwork:  # fmt: skip
    """``method="auto"``: the search of :mod:`spikeconv.search` on samples drawn from the training Dataset ``train``."""
    if not isinstance(train, Dataset) or not hasattr(train, "__len__"):
        raise ConfigError("method='auto' draws calibration and validation samples from calibration_data: pass the labelled "
                          "training Dataset of (image, label), not batches")  # fmt: skip
    if finetune is not None and not allow_finetune:
        raise ConfigError("finetune= is the budget of method='hybrid' or of allow_finetune=True; auto does not train without it")
    config = replace(auto or AutoConfig(), correction_samples=correction_samples)
    if allow_finetune:
        config = replace(config, allow_finetune=True, finetune=finetune or config.finetune)
    graph = _graph_of(model)
    graph = graph if device is None else graph.to(resolve_device(device))
    samples = auto_calibration_samples(len(train), max_samples or 2000, config)
    calibration = calibration_subset(train, num_samples=samples, seed=0)
    validation = validation_split(train, calibration_samples=samples, calibration_seed=0, samples=config.validation_samples)
    fine = finetune_split(train, calibration_samples=samples, calibration_seed=0, samples=config.validation_samples) \
        if config.allow_finetune else None  # fmt: skip
    choice = choose_conversion(graph, calibration, validation, base, config, train_data=fine)
    snn = choice.snn if choice.snn is not None else convert_graph(choice.calibrated, choice.convert)
    snn.metadata = {**snn.metadata, "auto": choice.report}
    return _on_graph_device(snn, graph)


def _placed(graph: fx.GraphModule, data: Iterable[Any], device: str | torch.device | None) -> tuple[fx.GraphModule, Iterable[Any]]:
    """The graph on ``device`` with batches moved there as they are read (both as given when ``device`` is None)."""
    if device is None:
        return graph, data
    where = resolve_device(device)
    return graph.to(where), BatchesOn(data, where)


def _on_graph_device(snn: SpikingNetwork, graph: fx.GraphModule) -> SpikingNetwork:
    """The SNN beside the graph it came from (its neurons' thresholds are made on the CPU)."""
    tensor = next(iter(graph.parameters()), None)
    return snn if tensor is None else snn.to(tensor.device)


def convert_model(
    model: nn.Module,
    calibration_data: Iterable[Any],
    *,
    calibration: CalibrationConfig | None = None,
    config: ConvertConfig | None = None,
    max_samples: int | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> SpikingNetwork:
    """Convert a trained ReLU ``model`` into a soft-reset SNN calibrated on ``calibration_data``.

    The staged form of :func:`convert` with an explicit calibration rule instead of a method name.

    Args:
        model: The ANN; it is deep-copied and never modified.
        calibration_data: Batches of inputs: a DataLoader, a list of tensors, or ``(x, y)`` pairs.
        calibration: Threshold rules per activation site (default: 99.99th percentile per layer).
        config: Neuron and simulation settings (default: soft reset, θ/2 initial membrane,
            direct encoding).
        max_samples: Stop calibrating after this many samples.
        progress: Show a progress bar.
        device: Where calibration runs and the SNN lives, as for :func:`convert`.

    Returns:
        A :class:`SpikingNetwork`; call ``snn(x, T)`` for the readout current ``[T, N, K]``.
    """
    graph, data = _placed(_graph_of(model), calibration_data, device)
    calibrated = calibrate(prepare(graph, calibration), data, max_samples=max_samples, progress=progress)
    return _on_graph_device(convert_graph(calibrated, config), graph)


def evaluate_curve(
    snn: nn.Module,
    data: Any,
    *,
    timesteps: int,
    ann: nn.Module | None = None,
    batch_size: int = 256,
    progress: bool = False,
    label: str = "snn",
    device: str | torch.device | None = None,
    precision: str = Precision.FP32.value,
    shard: bool = False,
) -> CurveResult:
    """Accuracy after every step 1..``timesteps`` from one simulation (see timestep_accuracy_curve).

    ``data`` is a Dataset of ``(x, y)`` samples or any iterable of ``(x, y)`` batches (a DataLoader).
    A simulation that does not fit half of the available memory (or ``SPIKECONV_MEMORY_BUDGET``) runs
    in time chunks (same numbers); one that does not fit even so raises a ConfigError saying how
    much it needs.

    ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) moves both networks there (None: they stay where
    they are, and the batches go to the SNN's device); ``precision`` is ``32``, ``bf16`` or ``16``. With
    ``shard`` inside a torchrun process group each rank simulates every W-th batch and all ranks
    return the curve of the whole data, exactly.
    """
    if device is None:
        where = next(iter(snn.parameters()), torch.empty(0)).device
    else:
        where = resolve_device(device)
        snn = snn.to(where)
        ann = ann.to(where) if ann is not None else None
    return timestep_accuracy_curve(snn, data, timesteps=timesteps, ann=ann, batch_size=batch_size,
                                   progress=progress, label=label, device=where, precision=precision,
                                   shard=shard)  # fmt: skip
