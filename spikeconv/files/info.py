"""What a model or SNN file holds, read without rebuilding any network (``spikeconv info``).

:func:`describe_file` reads a file once with the safe readers of :mod:`spikeconv.files.detect`
(weights-only torch loads, ONNX protobuf, ``.pt2`` bytes; nothing is ever unpickled) and returns
one JSON-serialisable dict; :func:`format_description` renders it as a short aligned block.

Every description has ``file``, ``format``, ``method`` and ``timesteps`` (both None for a model
file). An SNN file adds ``model`` (the ANN it came from), ``auto`` (copied as recorded by
``--method auto``), ``thresholds``, ``neuron``, ``preprocessing``, ``calibration``, ``ann``
(the ANN's recorded test accuracy and data set) and ``provenance``; a train-snn checkpoint adds
``arch``, ``neuron``, ``training`` and ``provenance``; a model file adds what detection gives.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from spikeconv.errors import CheckpointError
from spikeconv.files.detect import ModelFile, ModelFormat, read_any_file
from spikeconv.files.nir_import import describe_nir, is_nir_file
from spikeconv.files.snn_file import trained_preprocessing
from spikeconv.ingest.preprocessing import describe_preprocessing

SNN_FORMAT, TRAINED_FORMAT, SNN_VERSION = "spikeconv-snn", "spikeconv-snn-trained", 1
_MODEL_KEYS = ("kind", "name", "arch", "input_shape", "num_classes")


def describe_file(path: str | Path) -> dict[str, Any]:
    """A JSON-serialisable description of a model file, an SNN file or a train-snn checkpoint.

    Raises:
        CheckpointError: Missing file, a folder, an unreadable or damaged file, or pickled objects (one line).
    """
    path = Path(path)
    if path.is_file() and is_nir_file(path):
        return {"file": str(path), "size_bytes": path.stat().st_size, **describe_nir(path)}
    content = read_any_file(path)
    try:
        if isinstance(content, ModelFile):
            described = _describe_model(content)
        elif content.get("format") == TRAINED_FORMAT:
            described = _describe_trained(content)
        else:
            described = _describe_snn(path, content)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as error:  # a hand-edited or damaged record
        raise CheckpointError(f"{path} is a damaged file ({type(error).__name__}: {error}); write it again with spikeconv") from None
    return {"file": str(path), "size_bytes": path.stat().st_size, **described}


# ------------------------------------------------------------------ SNN files (spikeconv convert)
def _describe_snn(path: Path, payload: Mapping) -> dict[str, Any]:
    version = payload.get("format_version", 0)
    if type(version) is not int:
        raise CheckpointError(f"{path} has format_version {version!r}, not a number; the SNN file is damaged, convert the model again")
    if version > SNN_VERSION:
        raise CheckpointError(f"{path} was written by a newer spikeconv; upgrade spikeconv")
    info = _mapping(payload.get("info"))
    source = _mapping(payload.get("ann"))
    config = _mapping(payload.get("convert"))
    calibration = _mapping(info.get("calibration"))
    described: dict[str, Any] = {
        "format": SNN_FORMAT,
        "format_version": version,
        "method": info.get("method"),
        "timesteps": config.get("timesteps"),
        "model": {
            **{k: source.get(k) for k in _MODEL_KEYS if k in source},
            "model_format": info.get("model_format"),
            "input_shape": info.get("input_shape", source.get("input_shape")),
            "num_classes": info.get("num_classes", source.get("num_classes")),
        },  # fmt: skip
    }
    if "auto" in info:
        described["auto"] = info["auto"]
    described["thresholds"] = summarise_plan(_mapping(payload.get("plan")))
    if payload.get("operators"):  # a transformer: its spike-equivalent operations (convert/operators.py)
        described["operators"] = {key: dict(_mapping(value)) for key, value in _mapping(payload["operators"]).items()}
    described["neuron"] = {
        "kind": config.get("neuron", "if"),
        "reset": config.get("reset", "subtract"),
        "v_init": config.get("v_init", 0.5),
        "max_spikes": config.get("max_spikes", 1),
        "sin_correction": config.get("sin_correction", "none"),
        "maxpool": config.get("maxpool", "spiking"),
        "encoding": _mapping(config.get("encoding")).get("name", "direct"),
    }
    if config.get("start_shift"):  # a target's initial membrane as a bias per step
        described["neuron"]["start_shift"] = config["start_shift"]
    if described["neuron"]["kind"] == "bistable":
        described["neuron"]["bistable"] = config.get("bistable")
    target = _mapping(config.get("target"))
    described["target"] = {"name": target.get("name"), "library": target.get("library"), "weight_bits": config.get("weight_bits"),
                           "membrane_floor": target.get("membrane_floor")} if target else None  # fmt: skip
    described["preprocessing"] = info.get("preprocessing")
    described["calibration"] = {k: calibration.get(k) for k in ("dataset", "split", "samples", "seed")}
    described["ann"] = dict(_mapping(info.get("ann_metadata")))
    described["provenance"] = {**_mapping(info.get("provenance")), "torch_version": info.get("torch_version")}
    return described


def summarise_plan(plan: Mapping) -> dict[str, Any]:
    """Sites, per-layer or per-channel, min/median/max threshold and rule kinds of a ThresholdPlan dict."""
    thresholds = {str(site): [float(v) for v in values] for site, values in _mapping(plan.get("thresholds")).items()}
    rules = _mapping(plan.get("rules"))
    values = [v for vs in thresholds.values() for v in vs]
    channel = {site: len(vs) > 1 or bool(_mapping(rules.get(site)).get("per_channel")) for site, vs in thresholds.items()}
    granularity = ("per-channel" if all(channel.values()) else "per-layer" if not any(channel.values()) else "mixed") if channel else None
    kinds = Counter(str(_mapping(rule).get("kind", "?")) for rule in rules.values())
    corrections = sorted({key for record in _mapping(plan.get("corrections")).values() for key in _mapping(record)
                          if not key.endswith("_shape")})  # fmt: skip
    extra_correction = _mapping(_mapping(plan.get("extra")).get("correction"))
    return {
        "sites": len(thresholds),
        "granularity": granularity,
        "values": len(values),
        "min": min(values) if values else None,
        "median": statistics.median(values) if values else None,
        "max": max(values) if values else None,
        "rules": dict(sorted(kinds.items())),
        "corrections": corrections,
        "correction": dict(extra_correction) or None,
        "num_samples": plan.get("num_samples"),
        "per_site": {site: {"count": len(vs), "min": min(vs), "max": max(vs)} for site, vs in thresholds.items() if vs},
    }


# ------------------------------------------------------------------ train-snn checkpoints
def _describe_trained(payload: Mapping) -> dict[str, Any]:
    config = _mapping(payload.get("config"))
    history = [_mapping(record) for record in payload.get("history") or []]
    metadata = _mapping(payload.get("metadata"))
    arch = _mapping(payload.get("arch"))
    return {
        "format": TRAINED_FORMAT,
        "format_version": payload.get("format_version"),
        "method": "train-snn",
        "timesteps": payload.get("timesteps", config.get("timesteps")),
        "arch": dict(arch),
        "neuron": dict(_mapping(payload.get("neuron", config.get("neuron")))),
        "preprocessing": trained_preprocessing(arch, payload.get("ann_source")),
        "training": {
            "epochs_done": payload.get("epoch"),
            "epochs": config.get("epochs"),
            "loss": config.get("loss"),
            "optimizer": config.get("optimizer"),
            "dataset": metadata.get("dataset"),
            "test_accuracy": history[-1].get("eval_accuracy") if history else None,
            "resumable": payload.get("training_state") is not None,
        },  # fmt: skip
        "provenance": {k: metadata.get(k) for k in ("command", "torch_version") if k in metadata},
    }


# ------------------------------------------------------------------ model files (what convert reads)
def _describe_model(model: ModelFile) -> dict[str, Any]:
    described: dict[str, Any] = {"format": model.format.value, "method": None, "timesteps": None}
    if model.format is ModelFormat.SPIKECONV:
        content = model.content
        metadata = _mapping(content.get("metadata"))
        normalisation = content.get("normalization")
        described.update({
            "arch": content.get("arch"),
            "input_shape": _shape(content.get("input_shape")),
            "num_classes": content.get("num_classes"),
            "preprocessing": None if normalisation is None else {k: list(v) for k, v in _mapping(normalisation).items()},
            "batch_norm": content.get("batch_norm"),
            "activation": content.get("activation"),
            "metadata": {k: metadata.get(k) for k in ("test_accuracy", "dataset", "command", "torch_version") if k in metadata},
        })  # fmt: skip
    elif model.format is ModelFormat.ONNX:
        described.update(_onnx_shapes(model.content))
    elif model.format is ModelFormat.STATE_DICT:
        tensors = model.content
        values = sum(int(t.numel()) for t in tensors.values() if isinstance(t, torch.Tensor) and t.is_floating_point())
        described.update({"tensors": len(tensors), "parameters": values})
    return described


def _onnx_shapes(proto: Any) -> dict[str, Any]:
    """The graph's first real input shape (without the batch axis) and its output width, where fixed."""
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]

    def dims(value: Any) -> list[int | str]:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]

    shape = dims(inputs[0])[1:] if inputs else []
    out = dims(graph.output[0]) if graph.output else []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "input_shape": shape if shape and all(isinstance(d, int) and d > 0 for d in shape) else None,
        "num_classes": out[-1] if len(out) == 2 and isinstance(out[-1], int) and out[-1] > 0 else None,
        "inputs": len(inputs),
        "opset": opset,
    }


# ------------------------------------------------------------------ human text
def format_description(described: Mapping[str, Any]) -> str:
    """The description as a short block of aligned ``name  value`` lines."""
    rows: list[tuple[str, str]] = [("file", str(described["file"])), ("format", _format_name(described))]
    if described["format"] == SNN_FORMAT:
        rows += _snn_rows(described)
    elif described["format"] == TRAINED_FORMAT:
        rows += _trained_rows(described)
    elif described["format"] == "nir":
        rows += _nir_rows(described)
    else:
        rows += _model_rows(described)
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows if value is not None)


def _format_name(described: Mapping[str, Any]) -> str:
    names = {SNN_FORMAT: "SNN file (spikeconv convert)", TRAINED_FORMAT: "trained SNN checkpoint (spikeconv train-snn)",
             "nir": f"NIR graph (written by {described.get('written_by')})"}  # fmt: skip
    version = f" v{described['format_version']}" if described.get("format_version") is not None else ""
    return f"{names.get(described['format'], described['format'])}{version}"


def _snn_rows(d: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    model, thresholds, neuron = d["model"], d["thresholds"], d["neuron"]
    ann = d.get("ann") or {}
    rows: list[tuple[str, str | None]] = [
        ("method", str(d["method"])),
        ("T (timesteps)", f"{d['timesteps']} (default simulation length)"),
    ]
    if "auto" in d:
        rows += _auto_rows(d["auto"])
    accuracy = f"; ANN test accuracy {ann['test_accuracy']:.2f}%" if isinstance(ann.get("test_accuracy"), (int, float)) else ""
    rows.append(("model", f"{model.get('model_format') or model.get('kind')} {model.get('arch') or model.get('name') or ''}".rstrip()
                 + f"; input {_shape_text(model.get('input_shape'))}, {model.get('num_classes')} classes{accuracy}"))  # fmt: skip
    rows.append(("thresholds", _thresholds_text(thresholds)))
    if d.get("operators"):
        rows.append(("operators", _operators_text(d["operators"])))
    target = d.get("target")
    if target:
        bits = f"; {target['weight_bits']}-bit integer weights" if target.get("weight_bits") else ""
        fit = _mapping(thresholds.get("correction"))
        if fit.get("kind") == "hard-reset":
            bits += f"; θ, spike value and bias per channel fitted to its hard-reset neuron at T = {fit.get('timesteps')}"
        rows.append(("target", f"{target['name']} ({target['library']}): thresholds folded into the weights{bits}; "
                               f"`spikeconv export --target {target['name']}` writes the file it loads"))  # fmt: skip
    spikes = neuron["max_spikes"]
    gamma = "no limit on spikes/step" if spikes >= 1 << 20 else f"Γ {spikes} spike{'s' if spikes != 1 else ''}/step"
    floor = f", membrane floor −{target['membrane_floor']:g}·θ" if target and target.get("membrane_floor") else ""
    shift = f" (+{neuron['start_shift']:.4g}·θ per step in the layer bias)" if neuron.get("start_shift") else ""
    rows.append(("neuron", f"{neuron['kind']}, reset {neuron['reset']}, v_init {neuron['v_init']:g}{shift}, {gamma}{floor}, "
                 f"sin correction {neuron['sin_correction']}, "
                 f"max-pool {neuron['maxpool']}, encoding {neuron['encoding']}"))  # fmt: skip
    rows.append(("preprocessing", describe_preprocessing(d.get("preprocessing"))))
    cal = d["calibration"]
    rows.append(("calibration", f"{cal['dataset']} ({cal['split']}), {cal['samples']} samples, seed {cal['seed']}"
                 if cal.get("dataset") is not None else "not recorded"))  # fmt: skip
    rows.append(("provenance", _provenance_text(d.get("provenance") or {})))
    return rows


def _operators_text(operators: Mapping[str, Any]) -> str:
    """``12 spike-equivalent (4 product, ...; MACs every step), 1 computed once (layer_norm)``."""
    def counted(kinds: Mapping[str, str]) -> str:
        totals: dict[str, int] = {}
        for kind in kinds.values():
            totals[kind] = totals.get(kind, 0) + 1
        return ", ".join(f"{count} {kind}" for kind, count in sorted(totals.items()))

    spiking, static = _mapping(operators.get("spiking")), _mapping(operators.get("static"))
    text = f"{len(spiking)} spike-equivalent ({counted(spiking)}; evaluated on running means, MACs every step)"
    return text + (f", {len(static)} on time-invariant values computed once ({counted(static)})" if static else "")


def _thresholds_text(t: Mapping[str, Any]) -> str:
    if not t["sites"]:
        return "no spiking sites"
    rules = ", ".join(f"{kind} ×{count}" for kind, count in t["rules"].items()) or "not recorded"
    text = (f"{t['sites']} spiking sites, {t['granularity']} ({t['values']} values); min {t['min']:.4g}, "
            f"median {t['median']:.4g}, max {t['max']:.4g}; rules: {rules}")  # fmt: skip
    return text + (f"; corrections: {', '.join(t['corrections'])}" if t["corrections"] else "")


def _auto_rows(auto: Any) -> list[tuple[str, str | None]]:
    """Why ``--method auto`` chose this (the report of :mod:`spikeconv.search`)."""
    if not isinstance(auto, Mapping) or not isinstance(auto.get("chosen"), Mapping):
        return [("auto", "record not readable")]
    chosen, validation = auto["chosen"], _mapping(auto.get("validation"))
    search = (f"objective {auto.get('objective')}, --max-drop {_number(auto.get('max_drop'))}, T <= {auto.get('max_timesteps')}; "
              f"validation: {validation.get('samples')} held-out training samples"
              + (f" ({validation['search_samples']} for the search)" if "search_samples" in validation else "") + ", "
              f"ANN {_number(validation.get('ann_accuracy'), '%')}"
              + (" on the search samples" if "search_samples" in validation else ""))  # fmt: skip
    picked = (f"{chosen.get('variant')} at T = {chosen.get('timesteps')}: {_number(chosen.get('accuracy'), '%')}"
              + (f" on {chosen['samples']} samples" if "samples" in chosen else "") + ", drop "
              f"{_number(chosen.get('drop'))} ± {_number(chosen.get('drop_se'))}, "
              + (f"expected {_number(chosen.get('expected_drop'))} ± {_number(chosen.get('expected_se'))}, "
                 if "expected_drop" in chosen else "")  # files written before the expected drop was recorded lack it
              + f"estimated energy {_number(chosen.get('energy_uj'))} µJ")  # fmt: skip
    met = "within budget" if auto.get("met_budget") else "NOT within budget (closest kept)"
    confirmed = f", {auto['confirmed']} confirmed on more held-out samples" if "confirmed" in auto else ""
    return [("auto", search), ("auto choice", picked),
            ("auto search", f"{met}; {auto.get('screened')} candidates screened, {auto.get('simulated')} simulated"
                            f"{confirmed}")]  # fmt: skip


def _trained_rows(d: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    arch, neuron, training = d["arch"], d["neuron"], d["training"]
    accuracy = training.get("test_accuracy")
    return [
        ("method", "train-snn (directly trained)"),
        ("T (timesteps)", f"{d['timesteps']} (trained at)"),
        ("arch", f"{_trained_network(arch)}; input {_shape_text(arch.get('input_shape'))}, {arch.get('num_classes')} classes"),
        ("neuron", ", ".join(f"{k} {v}" for k, v in neuron.items() if not isinstance(v, Mapping))),
        (
            "training",
            f"{training.get('epochs_done')} of {training.get('epochs')} epochs on {training.get('dataset')}; test accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy:.2f}%'}",
        ),  # fmt: skip
        ("preprocessing", describe_preprocessing(d.get("preprocessing"))),
        ("provenance", _provenance_text(d.get("provenance") or {})),
    ]


def _trained_network(arch: Mapping[str, Any]) -> str:
    """A preset's name, or the user's model file the graph came from and where its weights started."""
    if arch.get("source") != "model-file":
        return str(arch.get("name"))
    start = "from its trained weights" if arch.get("init") == "ann" else "re-initialised"
    return f"the graph of {arch.get('file')} ({arch.get('description')}, {start})"


def _nir_rows(d: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    types = ", ".join(f"{count} {name}" for name, count in d["node_types"].items())
    return [
        ("method", str(d["method"]) if d.get("method") else None),
        ("T (timesteps)", f"{d['timesteps']} (default simulation length)" if d.get("timesteps") is not None else None),
        ("model", f"input {_shape_text(d.get('input_shape'))}, {d.get('num_classes')} classes" if d.get("input_shape") else None),
        ("graph", f"{d['nodes']} nodes ({types}), {d['edges']} edges; {d['spikeconv_neurons']} spikeconv neurons"),
        ("preprocessing", describe_preprocessing(d.get("preprocessing")) if d.get("written_by") == "spikeconv export" else None),
        ("discretisation", d.get("discretisation")),
        ("target", f"{d['target']}: written for {d.get('library')}; load it with {d.get('importer')}" if d.get("target") else None),
    ]


def _model_rows(d: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    rows: list[tuple[str, str | None]] = [("method", "none (a model file; convert it with `spikeconv convert`)")]
    if "arch" in d:
        rows.append(("arch", str(d["arch"])))
    if "input_shape" in d:
        rows.append(("input", _shape_text(d.get("input_shape"))))
    if "num_classes" in d:
        rows.append(("classes", "not fixed by the file" if d.get("num_classes") is None else str(d["num_classes"])))
    if "preprocessing" in d:
        rows.append(("preprocessing", describe_preprocessing(d["preprocessing"])))
    if "tensors" in d:
        rows.append(("weights", f"{d['tensors']} tensors, {d['parameters']:,} values; needs --arch or --model-factory"))
    metadata = d.get("metadata") or {}
    if isinstance(metadata.get("test_accuracy"), (int, float)):
        on = f" on {metadata['dataset']}" if metadata.get("dataset") else ""
        rows.append(("test accuracy", f"{metadata['test_accuracy']:.2f}%{on}"))
    if metadata.get("command"):
        rows.append(("command", str(metadata["command"])))
    return rows


def _provenance_text(p: Mapping[str, Any]) -> str:
    parts = [f"spikeconv {p['spikeconv_version']}" if p.get("spikeconv_version") else None,
             f"torch {p['torch_version']}" if p.get("torch_version") else None,
             f"created {p['created']}" if p.get("created") else None,
             f"command: {p['command']}" if p.get("command") else None]  # fmt: skip
    return "; ".join(part for part in parts if part) or "not recorded"


# ------------------------------------------------------------------ helpers
def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _pick(record: Mapping, *names: str) -> Any:
    return next((record[name] for name in names if name in record), None)


def _number(value: Any, unit: str = "") -> str:
    return f"{value:.4g}{unit}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?" if value is None else str(value)


def _shape(value: Any) -> list[int] | None:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else None


def _shape_text(shape: Any) -> str:
    return "x".join(str(s) for s in shape) if isinstance(shape, (list, tuple)) and shape else "not fixed by the file"
