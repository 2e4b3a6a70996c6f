"""Trained-ANN files -> torch modules, with what is needed to rebuild them later.

A *source record* is a dict of tensors and primitives that rebuilds the same ANN; SNN files embed
it so that a converted network can be reloaded with ``weights_only=True`` and no user code:

| model given as | source kind | the record holds |
|---|---|---|
| spikeconv checkpoint; state_dict + ``--arch`` | ``spikeconv-ann`` | architecture, weights, normalisation |
| ONNX file | ``onnx`` | the ONNX bytes (external data inlined), input shape, preprocessing |
| ``.pt2``; factory; trusted pickled module | ``torch-export`` | ``torch.export.save`` bytes, input shape, preprocessing |

Factories and pickled modules are exported with ``torch.export`` at conversion, so reloading an
SNN never needs the user's code. Preprocessing of ONNX and exported models is prepended to the
canonical graph (:mod:`spikeconv.workflows.preprocessing`); spikeconv architectures carry it as
their first layer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError, ConfigError, DataError, SpikeconvError, UnsupportedLayerError, first_line
from spikeconv.ingest import STAGE_KEY, ingest_module, ingest_onnx
from spikeconv.ingest.exported import EXPORT_CHECK_KEY, ingest_exported, load_exported
from spikeconv.models import build_model
from spikeconv.models.activations import ActivationSpec, apply_activation_
from spikeconv.training import load_ann_checkpoint
from spikeconv.workflows.factory import build_from_factory
from spikeconv.workflows.model_files import ModelFormat, read_model_file
from spikeconv.workflows.onnx_files import onnx_input_dims, self_contained_onnx_bytes
from spikeconv.workflows.preprocessing import Preprocessing, with_preprocessing

SPIKECONV_ANN = "spikeconv-ann"
ONNX_ANN = "onnx"
EXPORTED_ANN = "torch-export"
_PROBE_SEED = 0


@dataclass(frozen=True)
class ModelSpec:
    """What the model file does not say itself (the CLI's ``--arch``, ``--model-factory``, ... flags).

    Attributes:
        arch: Preset name or layer notation for a state_dict file.
        factory: ``FILE.py:FUNCTION`` or ``package.module:FUNCTION`` returning an ``nn.Module``.
        num_classes: Number of outputs, where the weights do not show it.
        input_shape: ``(C, H, W)`` of one sample where the file does not fix it.
        preprocessing: Normalisation the model expects on [0, 1] pixels (None: none).
        trust_pickle: Load pickled objects (a whole ``nn.Module``); this can run code from the file.
    """

    arch: str | None = None
    factory: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    preprocessing: Preprocessing | None = None
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        if self.arch is not None and self.factory is not None:
            raise ConfigError("give --arch or --model-factory, not both: each says how to build the network")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"--num-classes must be >= 1, got {self.num_classes}")
        if self.input_shape is not None and (not self.input_shape or any(int(s) < 1 for s in self.input_shape)):
            raise ConfigError(f"--input-shape must be positive sizes C,H,W, got {self.input_shape}")


@dataclass(frozen=True)
class LoadedAnn:
    """A trained ANN ready to convert.

    Attributes:
        model: The module (eval mode), taking [0, 1] pixels (its preprocessing included).
        input_shape: ``(C, H, W)`` of one sample.
        num_classes: Number of outputs.
        preprocessing: ``{"mean": [...], "std": [...]}`` built into the model, or None.
        source: Record that rebuilds ``model`` (see :func:`rebuild_ann`).
        metadata: What the file says about how it was made (accuracy, command, ...).
        description: What was read, for messages (``"ONNX file"``, ``"state_dict + --arch fmnist-cnn"``).
        input_shape_from: Where ``input_shape`` came from: ``"file"``, ``"--input-shape"`` or ``"data"``.
    """

    model: nn.Module
    input_shape: tuple[int, ...]
    num_classes: int
    preprocessing: dict | None
    source: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = "spikeconv checkpoint"
    input_shape_from: str = "file"


# ------------------------------------------------------------------ rebuilding from a source record
def _load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with a one-line error naming the first mismatch."""
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CheckpointError(f"{where}: {lines[1] if len(lines) > 1 else lines[0]}") from None
    problems = [f"{what} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)) if keys]  # fmt: skip
    if problems:
        raise CheckpointError(f"{where}: {'; '.join(problems)}")


def _from_spikeconv_record(record: dict[str, Any]) -> nn.Module:
    norm = record.get("normalization")
    model = build_model(
        record["arch"],
        input_shape=tuple(record["input_shape"]),
        num_classes=int(record["num_classes"]),
        mean=None if norm is None else norm["mean"],
        std=None if norm is None else norm["std"],
        batch_norm=bool(record["batch_norm"]),
    )
    apply_activation_(model, ActivationSpec.from_dict(record.get("activation")))
    _load_weights(model, record["state_dict"], f"weights do not fit architecture {record['arch']!r}")
    return model.eval()


def _embedded_bytes(source: dict[str, Any], key: str, label: str) -> bytes:
    value = source.get(key)
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
        raise CheckpointError(f"{label}: its model bytes are missing or damaged; convert the model again")
    return bytes(value.numpy().tobytes())


def _onnx_graph(source: dict[str, Any], label: str) -> fx.GraphModule:
    import onnx

    try:
        proto = onnx.load_model_from_string(_embedded_bytes(source, "onnx_bytes", label))
    except CheckpointError:
        raise
    except Exception:  # protobuf's DecodeError and friends
        raise CheckpointError(f"{label}: its ONNX bytes are damaged; convert the model again") from None
    shape = source.get("input_shape")
    return ingest_onnx(proto, probe_input=_onnx_probe(proto, shape, label) if shape else None, label=label)


def _exported_graph(source: dict[str, Any], label: str) -> fx.GraphModule:
    return ingest_exported(_embedded_bytes(source, "pt2_bytes", label), input_shape=tuple(source["input_shape"]), label=label)


def rebuild_ann(source: dict[str, Any], *, label: str | None = None) -> nn.Module:
    """Rebuild the ANN a source record describes (with its preprocessing).

    Args:
        source: The record (see the module docstring).
        label: How messages name the model (e.g. ``"net.snn.pt (its ONNX model m.onnx)"``).
    """
    kind = source.get("kind")
    if kind == SPIKECONV_ANN:
        return _from_spikeconv_record(source)
    graphs = {ONNX_ANN: _onnx_graph, EXPORTED_ANN: _exported_graph}
    if kind not in graphs:
        raise CheckpointError(f"unknown ANN source kind {kind!r}; upgrade spikeconv")
    graph = graphs[kind](source, label or f"the {kind} model {source.get('name', '')}".rstrip())
    rank = len(source.get("input_shape") or (1, 1, 1)) + 1
    return with_preprocessing(graph, Preprocessing.from_dict(source.get("preprocessing")), input_rank=rank)


def canonical_graph(source: dict[str, Any], model: nn.Module | None = None, *, label: str | None = None) -> fx.GraphModule:
    """The canonical ANN graph of a source record (ingest for torch models; ONNX and exported models already are)."""
    if isinstance(model, fx.GraphModule) and model.meta.get(STAGE_KEY) == "ann":
        return model
    if source.get("kind") in (ONNX_ANN, EXPORTED_ANN):
        return rebuild_ann(source, label=label)
    return ingest_module(model if model is not None else rebuild_ann(source, label=label))


# ------------------------------------------------------------------ shapes, classes, preprocessing
def _resolve_shape(fixed: list[int | None], spec: ModelSpec, data_shape: tuple[int, ...] | None, label: str) -> tuple[tuple[int, ...], str]:
    """The per-sample input shape: fixed by the file, else ``--input-shape``, else the data's."""
    if None not in fixed:
        if spec.input_shape is not None and tuple(spec.input_shape) != tuple(fixed):
            raise ConfigError(f"{label} takes inputs of shape {tuple(fixed)}, fixed in the file; --input-shape {tuple(spec.input_shape)} "
                              "contradicts it")  # fmt: skip
        return tuple(fixed), "file"
    if spec.input_shape is not None:
        return tuple(int(s) for s in spec.input_shape), "--input-shape"
    if data_shape is not None:
        return tuple(int(s) for s in data_shape), "data"
    raise ConfigError(f"{label} does not fix its input shape; give --input-shape C,H,W")


def _num_classes(model: nn.Module, input_shape: tuple[int, ...], spec: ModelSpec, label: str) -> int:
    with torch.no_grad():
        out = model(torch.zeros(1, *input_shape))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(f"{label}: the model's output is {got}; expected [N, classes] logits")
    if spec.num_classes is not None and spec.num_classes != out.shape[1]:
        raise ConfigError(f"{label} has {out.shape[1]} outputs, not --num-classes {spec.num_classes}")
    return int(out.shape[1])


def _preprocessing(spec: ModelSpec, input_shape: tuple[int, ...], label: str) -> Preprocessing | None:
    if spec.preprocessing is not None:
        spec.preprocessing.check_channels(int(input_shape[0]), label)
    return spec.preprocessing


def _probe(batch: int | None, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(batch or 2, *shape, generator=torch.Generator().manual_seed(_PROBE_SEED))


def _onnx_probe(proto, shape, label: str) -> torch.Tensor | None:
    dims = onnx_input_dims(proto, label)
    return None if None not in dims[1:] else _probe(dims[0], tuple(shape))


def _tensor_of(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


# ------------------------------------------------------------------ one loader per format
def _load_onnx_ann(path: Path, spec: ModelSpec, data_shape: tuple[int, ...] | None) -> LoadedAnn:
    import onnx

    data = self_contained_onnx_bytes(path)
    proto = onnx.load_model_from_string(data)
    dims = onnx_input_dims(proto, str(path))
    shape, shape_from = _resolve_shape(dims[1:], spec, data_shape, str(path))
    graph = ingest_onnx(proto, probe_input=_probe(dims[0], shape) if None in dims[1:] else None, label=str(path))
    pre = _preprocessing(spec, shape, str(path))
    model = with_preprocessing(graph, pre, input_rank=len(shape) + 1)
    source = {"kind": ONNX_ANN, "name": path.name, "onnx_bytes": _tensor_of(data), "input_shape": list(shape),
              "preprocessing": None if pre is None else pre.to_dict()}  # fmt: skip
    return LoadedAnn(model=model, input_shape=shape, num_classes=_num_classes(model, shape, spec, str(path)),
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
    shape, shape_from = _resolve_shape(dims[1:], spec, data_shape, label)
    graph = ingest_exported(program, input_shape=shape, label=label)
    pre = _preprocessing(spec, shape, label)
    model = with_preprocessing(graph, pre, input_rank=len(shape) + 1)
    source = {"kind": EXPORTED_ANN, "name": label, "pt2_bytes": _tensor_of(data), "input_shape": list(shape),
              "preprocessing": None if pre is None else pre.to_dict()}  # fmt: skip
    return LoadedAnn(model=model, input_shape=shape, num_classes=_num_classes(model, shape, spec, label),
                     preprocessing=source["preprocessing"], source=source, metadata={"export_check": dict(graph.meta[EXPORT_CHECK_KEY])},
                     description=description, input_shape_from=shape_from)  # fmt: skip


def _export_module(model: nn.Module, label: str, spec: ModelSpec, data_shape: tuple[int, ...] | None, description: str) -> LoadedAnn:
    """A module from the user's code (factory, pickle) -> ``torch.export`` bytes -> the exported path."""
    shape, shape_from = _resolve_shape([None], spec, data_shape, label)
    example = (torch.zeros(2, *shape),)
    model = model.eval()
    try:
        with torch.no_grad():
            model(*example)
    except Exception as exc:  # the user's module may raise anything on a wrong shape
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        origin = "the data's sample shape" if shape_from == "data" else "--input-shape"
        raise DataError(f"{label} cannot run on samples of shape {shape} ({origin}): {reason}; "
                        "give the model's --input-shape C,H,W") from None  # fmt: skip
    try:
        program = torch.export.export(model, example)
    except Exception as exc:  # torch.export raises many types for untraceable Python
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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
    shape, shape_from = _resolve_shape([None], spec, data_shape, label)
    classifier = [v for k, v in state_dict.items() if k.endswith(".weight") and v.dim() == 2]
    num_classes = spec.num_classes or (int(classifier[-1].shape[0]) if classifier else None)
    if num_classes is None:
        raise ConfigError(f"{label}: cannot tell the number of classes from the weights; give --num-classes")
    stored = {k: state_dict[f"input_norm.{k}"].flatten().tolist() for k in ("mean", "std") if f"input_norm.{k}" in state_dict}
    if spec.preprocessing is not None and stored and Preprocessing.from_dict(stored) != spec.preprocessing:
        raise ConfigError(f"{label}: the weights already normalise inputs with {stored}; drop --mean/--std")
    pre = Preprocessing.from_dict(stored) if len(stored) == 2 else _preprocessing(spec, shape, label)
    norm = None if pre is None or pre.is_identity else pre.to_dict()
    weights = dict(state_dict)
    if norm is not None and not stored:
        weights.update({f"input_norm.{k}": torch.tensor(v).reshape(1, -1, 1, 1).expand(1, shape[0], 1, 1).clone() for k, v in norm.items()})
    record = {"kind": SPIKECONV_ANN, "arch": spec.arch, "input_shape": list(shape), "num_classes": num_classes, "normalization": norm,
              "batch_norm": any(k.endswith("running_var") for k in state_dict), "activation": None, "state_dict": weights}  # fmt: skip
    model = _from_spikeconv_record(record)
    _num_classes(model, shape, ModelSpec(num_classes=num_classes), label)
    return LoadedAnn(model=model, input_shape=shape, num_classes=num_classes, preprocessing=None if pre is None else pre.to_dict(),
                     source=record, description=f"state_dict + --arch {spec.arch}", input_shape_from=shape_from)  # fmt: skip


def _load_spikeconv_ann(path: Path, spec: ModelSpec) -> LoadedAnn:
    checkpoint = load_ann_checkpoint(path)
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
        model = _from_spikeconv_record(source)
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
        _load_weights(model, file.content, f"{path} does not fit the model of factory {spec.factory}")
        weights = f"weights {Path(path).name}"
    return _export_module(model, f"model factory {spec.factory}", spec, data_shape, f"model factory {spec.factory} with {weights}")


def load_ann(path: str | Path | None, spec: ModelSpec | None = None, *, data_shape: tuple[int, ...] | None = None) -> LoadedAnn:
    """Load a trained ANN, detecting the format from the file (see :mod:`spikeconv.workflows.model_files`).

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
    path = Path(path)
    file = read_model_file(path, trust_pickle=spec.trust_pickle)
    if spec.arch is not None and file.format is not ModelFormat.STATE_DICT:
        raise ConfigError(f"--arch applies to state_dict files; {path} ({file.format.value}) describes its own network")
    if file.format is ModelFormat.SPIKECONV:
        return _load_spikeconv_ann(path, spec)
    if file.format is ModelFormat.ONNX:
        return _load_onnx_ann(path, spec, data_shape)
    if file.format is ModelFormat.EXPORTED:
        return _load_exported_ann(path.read_bytes(), str(path), spec, data_shape, description="torch.export program",
                                  trust_pickle=spec.trust_pickle)  # fmt: skip
    if file.format is ModelFormat.PICKLED_MODULE:
        return _export_module(file.content, str(path), spec, data_shape, "pickled nn.Module (--trust-pickle)")
    if spec.arch is None:
        raise ConfigError(f"{path} holds only weights (a state_dict); "
                          "name their network with --arch SPEC or --model-factory FILE.py:FUNCTION")  # fmt: skip
    return _state_dict_arch(path, file.content, spec, data_shape)
