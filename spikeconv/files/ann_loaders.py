"""One loader per model format, in a registry: each parses its file once and returns a :class:`LoadedAnn`.

| model given as | source kind | the record holds |
|---|---|---|
| spikeconv checkpoint; state_dict + ``--arch`` | ``spikeconv-ann`` | architecture, weights, normalisation |
| ONNX file | ``onnx`` | the ONNX bytes (external data inlined), input shape, preprocessing |
| ``.pt2``; factory; trusted pickled module | ``torch-export`` | ``torch.export.save`` bytes, input shape, preprocessing |

Factories and pickled modules are exported with ``torch.export`` at conversion, so reloading an
SNN never needs the user's code. A new format is one loader function plus one
:func:`register_model_format` call (and its detection in :mod:`spikeconv.files.detect`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from spikeconv.errors import CheckpointError, ConfigError, DataError, SpikeconvError, UnsupportedLayerError, first_line
from spikeconv.files.ann_finish import (
    bytes_tensor,
    check_num_classes,
    probe_batch,
    resolve_input_shape,
    spec_preprocessing,
    with_grey_repeat,
)
from spikeconv.files.ann_record import EXPORTED_ANN, ONNX_ANN, SPIKECONV_ANN, from_spikeconv_record, load_weights
from spikeconv.files.ann_types import LoadedAnn, ModelSpec
from spikeconv.files.detect import ModelFile, ModelFormat, read_model_file
from spikeconv.files.factory import build_from_factory
from spikeconv.files.onnx_bytes import onnx_input_dims
from spikeconv.ingest import ingest_onnx
from spikeconv.ingest.exported import EXPORT_CHECK_KEY, ingest_exported, load_exported
from spikeconv.ingest.preprocessing import Preprocessing, with_preprocessing
from spikeconv.training import ann_checkpoint_from_payload


def _load_onnx_ann(file: ModelFile, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    """An ONNX file, parsed once by detection (checked, external data inlined)."""
    path, proto = file.path, file.content
    data = proto.SerializeToString()
    dims = onnx_input_dims(proto, str(path))
    shape, shape_from = resolve_input_shape(dims[1:], spec, data_shape, str(path))
    graph = ingest_onnx(proto, probe_input=probe_batch(dims[0], shape) if None in dims[1:] else None, label=str(path))
    pre, taken = with_grey_repeat(spec_preprocessing(spec, shape, str(path)), shape, data_shape, str(path))
    model = with_preprocessing(graph, pre, input_rank=len(shape) + 1)
    source = {"kind": ONNX_ANN, "name": path.name, "onnx_bytes": bytes_tensor(data), "input_shape": list(shape),
              "preprocessing": None if pre is None else pre.to_dict()}  # fmt: skip
    return LoadedAnn(model=model, input_shape=taken, num_classes=check_num_classes(model, taken, spec, str(path)),
                     preprocessing=source["preprocessing"], source=source,
                     metadata={"onnx_check": dict(graph.meta["spikeconv_onnx_check"])}, description="ONNX file",
                     input_shape_from=shape_from)  # fmt: skip


def _program_dims(program: torch.export.ExportedProgram, label: str) -> list[int | None]:
    inputs = [spec for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    value = program.graph.find_nodes(op="placeholder", target=inputs[0].arg.name)[0].meta.get("val") if len(inputs) == 1 else None
    if not isinstance(value, torch.Tensor):
        raise UnsupportedLayerError(f"{label} takes {len(inputs)} inputs; spikeconv converts models with one tensor input")
    return [int(d) if isinstance(d, int) else None for d in value.shape]


def _load_exported_ann(data: bytes, label: str, spec: ModelSpec, data_shape: tuple[int, ...] | None, *,
                       description: str, trust_pickle: bool = False) -> LoadedAnn:  # fmt: skip
    program, _ = load_exported(data, trust_pickle=trust_pickle, label=label)
    if trust_pickle:
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        data = buffer.getvalue()
        try:
            load_exported(data, label=label)  # the SNN file must reload without unpickling anything
        except CheckpointError:
            raise CheckpointError(f"{label} holds pickled parts that an SNN file cannot carry safely; "
                                  "re-export it from plain weights") from None  # fmt: skip
    dims = _program_dims(program, label)
    shape, shape_from = resolve_input_shape(dims[1:], spec, data_shape, label)
    graph = ingest_exported(program, input_shape=shape, label=label)
    pre, taken = with_grey_repeat(spec_preprocessing(spec, shape, label), shape, data_shape, label)
    model = with_preprocessing(graph, pre, input_rank=len(shape) + 1)
    source = {"kind": EXPORTED_ANN, "name": label, "pt2_bytes": bytes_tensor(data), "input_shape": list(shape),
              "preprocessing": None if pre is None else pre.to_dict()}  # fmt: skip
    return LoadedAnn(model=model, input_shape=taken, num_classes=check_num_classes(model, taken, spec, label),
                     preprocessing=source["preprocessing"], source=source, metadata={"export_check": dict(graph.meta[EXPORT_CHECK_KEY])},
                     description=description, input_shape_from=shape_from)  # fmt: skip


def _export_module(model: nn.Module, label: str, spec: ModelSpec, data_shape: tuple[int, ...] | None, description: str) -> LoadedAnn:
    """A module from the user's code (factory, pickle) -> ``torch.export`` bytes -> the exported path."""
    shape, shape_from = resolve_input_shape([None], spec, data_shape, label)
    example = (torch.zeros(2, *shape),)
    model = model.eval()
    try:
        with torch.no_grad():
            model(*example)
    except Exception as exc:  # the user's module may raise anything on a wrong shape
        reason = first_line(exc, limit=None)
        origin = "the data's sample shape" if shape_from == "data" else "--input-shape"
        raise DataError(f"{label} cannot run on samples of shape {shape} ({origin}): {reason}; "
                        "give the model's --input-shape C,H,W") from None  # fmt: skip
    try:
        program = torch.export.export(model, example)
    except Exception as exc:  # torch.export raises many types for untraceable Python
        reason = first_line(exc, limit=None)
        raise UnsupportedLayerError(f"{label} cannot be exported with torch.export ({reason}); export it to ONNX yourself") from None
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    loaded = _load_exported_ann(buffer.getvalue(), label, ModelSpec(**{**spec.__dict__, "input_shape": shape, "factory": None}), None,
                                description=description)  # fmt: skip
    return LoadedAnn(**{**loaded.__dict__, "input_shape_from": shape_from})


def _state_dict_arch(path: Path, state_dict: dict[str, torch.Tensor], spec: ModelSpec,
                     data_shape: tuple[int, ...] | None) -> LoadedAnn:  # fmt: skip
    """A state_dict with ``--arch``: a spikeconv architecture, recorded like a spikeconv checkpoint."""
    label = f"{path} (--arch {spec.arch})"
    shape, shape_from = resolve_input_shape([None], spec, data_shape, label)
    classifier = [v for k, v in state_dict.items() if k.endswith(".weight") and v.dim() == 2]
    num_classes = spec.num_classes or (int(classifier[-1].shape[0]) if classifier else None)
    if num_classes is None:
        raise ConfigError(f"{label}: cannot tell the number of classes from the weights; give --num-classes")
    stored = {k: state_dict[f"input_norm.{k}"].flatten().tolist() for k in ("mean", "std") if f"input_norm.{k}" in state_dict}
    if spec.preprocessing is not None and stored and Preprocessing.from_dict(stored) != spec.preprocessing:
        raise ConfigError(f"{label}: the weights already normalise inputs with {stored}; drop --mean/--std")
    pre = Preprocessing.from_dict(stored) if len(stored) == 2 else spec_preprocessing(spec, shape, label)
    norm = None if pre is None or pre.is_identity else pre.to_dict()
    weights = dict(state_dict)
    if norm is not None and not stored:
        weights.update({f"input_norm.{k}": torch.tensor(v).reshape(1, -1, 1, 1).expand(1, shape[0], 1, 1).clone() for k, v in norm.items()})
    record = {"kind": SPIKECONV_ANN, "arch": spec.arch, "input_shape": list(shape), "num_classes": num_classes, "normalization": norm,
              "batch_norm": any(k.endswith("running_var") for k in state_dict), "activation": None, "state_dict": weights}  # fmt: skip
    model = from_spikeconv_record(record)
    check_num_classes(model, shape, ModelSpec(num_classes=num_classes), label)
    return LoadedAnn(model=model, input_shape=shape, num_classes=num_classes, preprocessing=None if pre is None else pre.to_dict(),
                     source=record, description=f"state_dict + --arch {spec.arch}", input_shape_from=shape_from)  # fmt: skip


def _load_spikeconv_ann(file: ModelFile, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    path, checkpoint = file.path, ann_checkpoint_from_payload(file.content, file.path)
    normalization = (
        None if checkpoint.mean is None else {"mean": list(checkpoint.mean), "std": list(checkpoint.std)}
    )
    recorded = Preprocessing.from_dict(normalization) or Preprocessing()
    if spec.preprocessing is not None and spec.preprocessing != recorded:
        raise ConfigError(f"{path} records its own preprocessing ({normalization or 'none'}); drop --mean/--std")
    if spec.input_shape is not None and tuple(spec.input_shape) != tuple(checkpoint.input_shape):
        raise ConfigError(f"{path} records input shape {tuple(checkpoint.input_shape)}; "
                          f"--input-shape {tuple(spec.input_shape)} contradicts it")  # fmt: skip
    if spec.num_classes is not None and spec.num_classes != checkpoint.num_classes:
        raise ConfigError(f"{path} has {checkpoint.num_classes} outputs, not --num-classes {spec.num_classes}")
    source = {
        "kind": SPIKECONV_ANN,
        "arch": checkpoint.arch,
        "input_shape": list(checkpoint.input_shape),
        "num_classes": checkpoint.num_classes,
        "normalization": normalization,
        "batch_norm": checkpoint.batch_norm,
        "activation": checkpoint.activation,
        "state_dict": checkpoint.state_dict,
    }
    try:
        model = from_spikeconv_record(source)
    except SpikeconvError:
        raise
    except Exception as exc:  # damaged fields: sizes that overflow, an activation record of the wrong shape
        raise CheckpointError(f"{path} is not a readable spikeconv ANN checkpoint ({type(exc).__name__}: {first_line(exc)}); "
                              "write it again with train-ann or save_ann_checkpoint") from None  # fmt: skip
    return LoadedAnn(
        model=model,
        input_shape=checkpoint.input_shape,
        num_classes=checkpoint.num_classes,
        preprocessing=normalization,
        source=source,
        metadata=checkpoint.metadata,
    )


def _load_with_factory(path: Path | None, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    model = build_from_factory(spec.factory)
    weights = "its own weights"
    if path is not None:
        file = read_model_file(path, trust_pickle=spec.trust_pickle)
        if file.format is not ModelFormat.STATE_DICT:
            raise ConfigError(f"with --model-factory, MODEL must be a state_dict file, not {path} ({file.format.value})")
        load_weights(model, file.content, f"{path} does not fit the model of factory {spec.factory}")
        weights = f"weights {Path(path).name}"
    return _export_module(model, f"model factory {spec.factory}", spec, data_shape, f"model factory {spec.factory} with {weights}")


ModelLoader = Callable[[ModelFile, ModelSpec, "tuple[int, ...] | None"], LoadedAnn]
MODEL_LOADERS: dict[ModelFormat, ModelLoader] = {}


def register_model_format(model_format: ModelFormat, loader: ModelLoader) -> None:
    """Register the loader of one model format; a format has one loader."""
    if model_format in MODEL_LOADERS:
        raise ValueError(f"a loader for {model_format.value} is already registered")
    MODEL_LOADERS[model_format] = loader


def _load_exported_file(file: ModelFile, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    return _load_exported_ann(file.content, str(file.path), spec, data_shape, description="torch.export program",
                              trust_pickle=spec.trust_pickle)  # fmt: skip


def _load_pickled_module(file: ModelFile, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    return _export_module(file.content, str(file.path), spec, data_shape, "pickled nn.Module (--trust-pickle)")


def _load_state_dict(file: ModelFile, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    if spec.arch is None:
        raise ConfigError(f"{file.path} holds only weights (a state_dict); "
                          "name their network with --arch SPEC or --model-factory FILE.py:FUNCTION")  # fmt: skip
    return _state_dict_arch(file.path, file.content, spec, data_shape)


register_model_format(ModelFormat.SPIKECONV, _load_spikeconv_ann)
register_model_format(ModelFormat.ONNX, _load_onnx_ann)
register_model_format(ModelFormat.EXPORTED, _load_exported_file)
register_model_format(ModelFormat.PICKLED_MODULE, _load_pickled_module)
register_model_format(ModelFormat.STATE_DICT, _load_state_dict)


def load_ann(path: str | Path | None, spec: ModelSpec | None = None, *, data_shape: tuple[int, ...] | None = None) -> LoadedAnn:
    """Load a trained ANN, detecting the format from the file (see :mod:`spikeconv.files.detect`).

    Args:
        path: The model file; may be None only with ``spec.factory`` (a factory that loads its own weights).
        spec: What the file does not say (architecture, factory, shapes, preprocessing, trust).
        data_shape: The data's sample shape, the input shape of last resort (after the file and ``spec``).

    Raises:
        CheckpointError: Missing, unreadable or refused file, or weights that do not fit.
        ConfigError: Missing or contradicting options (e.g. a state_dict without ``--arch``).
        UnsupportedLayerError: The network has layers that cannot be converted.
    """
    spec = spec or ModelSpec()
    if spec.factory is not None:
        return _load_with_factory(None if path is None else Path(path), spec, data_shape)
    if path is None:
        raise ConfigError("give a MODEL file, or --model-factory FILE.py:FUNCTION for a factory that loads its own weights")
    file = read_model_file(Path(path), trust_pickle=spec.trust_pickle)
    if spec.arch is not None and file.format is not ModelFormat.STATE_DICT:
        raise ConfigError(f"--arch applies to state_dict files; {file.path} ({file.format.value}) describes its own network")
    return MODEL_LOADERS[file.format](file, spec, data_shape)
