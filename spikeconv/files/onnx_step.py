"""Stepwise ONNX export of a SpikingNetwork, and the generic driver that runs such a file.

The file holds ONE timestep (:mod:`spikeconv.files.step_graph`): inputs are the image and every
neuron state, outputs the step's readout current and the next state. It describes itself in
``metadata_props`` so that any runtime can loop it without spikeconv:

- ``spikeconv.input`` / ``spikeconv.readout``: the image input's and the readout output's names;
- ``spikeconv.state``: JSON list of ``[state_input, state_output]`` pairs; each state input also
  has an initializer of the same name holding the initial state (batch 1, broadcasting against any
  batch), so step 1 omits the state inputs and step t + 1 feeds step t's state outputs;
- ``spikeconv.timesteps``, ``spikeconv.num_classes``, ``spikeconv.input_shape``, ``spikeconv.encoding``,
  ``spikeconv.readout_meaning``, ``spikeconv.neurons``, ``spikeconv.preprocessing``, ``spikeconv.format_version``.

:func:`run_onnx_step` is that generic driver (it reads nothing but the metadata).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikeconv._io import atomic_write
from spikeconv.errors import ConfigError, ConversionError, DataError, SpikeconvError, first_line
from spikeconv.files.step_graph import StepGraph, build_step_graph
from spikeconv.neurons import PoissonEncoding, SpikingNetwork, check_timesteps

__all__ = ["DEFAULT_OPSET", "FORMAT_VERSION", "export_onnx_step", "run_onnx_step"]

FORMAT_VERSION = 1
DEFAULT_OPSET = 17
"""Opset 17 is what current onnxruntime, TensorRT and OpenVINO releases all read."""

INPUT_NAME = "input"
READOUT_NAME = "readout"
READOUT_MEANING = (
    "readout current of one timestep, [N, num_classes]: the readout layer does not spike; its membrane after t steps "
    "is the sum of the first t readouts, and the prediction after t steps is the argmax of that sum"
)
_BATCH = "batch"
_STATE_BATCH = "state_batch"  # 1 for the initial state (an initializer), then the input's batch


def _encoding_meta(snn: SpikingNetwork) -> str:
    if isinstance(snn.encoding, PoissonEncoding):
        drawn = "one step's encoded input: sign(x)·Bernoulli(|x|) of the [0, 1] image, drawn anew each step"
        return json.dumps({"name": "poisson", "seed": snn.encoding.seed, "input": drawn})
    return json.dumps({"name": "direct", "input": "the [0, 1] image, the same at every step"})


def _state_output(name: str) -> str:
    return f"{name}.next"


def _trace_to_onnx(step: StepGraph, input_shape: Sequence[int], opset: int) -> bytes:
    """TorchScript-trace the step module to ONNX bytes.

    The legacy (``dynamo=False``) exporter is used on purpose: the initial states have batch 1 and
    broadcast against a batch of N, which torch.export (``dynamo=True``) rejects because it must
    prove the state's batch dimension equal to the input's ("Constraints violated"). Tracing records
    the broadcasting ops as they are, and ONNX's elementwise ops broadcast the same way.
    """
    example = (torch.zeros(2, *input_shape), *(s.initial for s in step.states))
    names = [s.name for s in step.states]
    dynamic: dict[str, dict[int, str]] = {INPUT_NAME: {0: _BATCH}, READOUT_NAME: {0: _BATCH}}
    for spec in step.states:
        if spec.batched:
            dynamic[spec.name] = {0: _STATE_BATCH}
            dynamic[_state_output(spec.name)] = {0: _BATCH}
    buffer = io.BytesIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(step.module, example, buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME, *names],
                              output_names=[READOUT_NAME, *(_state_output(n) for n in names)], dynamic_axes=dynamic,
                              do_constant_folding=True)  # fmt: skip
    except SpikeconvError:
        raise
    except Exception as error:  # the exporter raises many types; the user needs one line
        raise ConversionError(f"the ONNX exporter failed on the step graph ({type(error).__name__}: {first_line(error)})") from None
    finally:
        quiet.setLevel(level)
    return buffer.getvalue()


def _finish_model(data: bytes, step: StepGraph, meta: dict[str, str]) -> Any:
    """Add the initial-state initializers and metadata, then check the model."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    for spec in step.states:
        if spec.name not in inputs or _state_output(spec.name) not in outputs:
            raise ConversionError(f"the ONNX exporter dropped the state of node {spec.node} ({spec.kind}); the step graph does not use it")
        graph.initializer.append(numpy_helper.from_array(spec.initial.detach().cpu().numpy().astype(np.float32), name=spec.name))
    model.ir_version = max(model.ir_version, 4)  # initializers that are also inputs (overridable defaults) need IR >= 4
    model.producer_name = "spikeconv"
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # onnx raises ValidationError / InferenceError
        raise ConversionError(f"the exported step graph fails onnx.checker ({type(error).__name__}: {first_line(error)})") from None
    return model


def export_onnx_step(snn: SpikingNetwork, path: str | Path, *, info: dict, opset: int | None = None) -> dict:
    """Write one timestep of ``snn`` as a self-describing ONNX graph (atomically) and return a summary.

    Args:
        snn: A converted or directly trained SpikingNetwork.
        path: The ``.onnx`` file to write; nothing is left there on failure.
        info: The SNN file's facts (``input_shape``, ``num_classes``, ``preprocessing``), e.g. ``load_snn(...).info``.
        opset: ONNX opset (default :data:`DEFAULT_OPSET`).

    Returns:
        ``{"path", "input", "readout", "state", "nodes", "opset", "timesteps", "neurons", "bytes"}``.

    Raises:
        UnsupportedLayerError: A neuron kind has no explicit-state step form (the message names the node).
        ConversionError: The exporter or onnx.checker failed.
        ConfigError: ``info`` lacks the input shape or class count.
    """
    if not isinstance(info, dict) or "input_shape" not in info or "num_classes" not in info:
        raise ConfigError("export_onnx_step needs info with input_shape and num_classes (load_snn(...).info)")
    input_shape = [int(d) for d in info["input_shape"]]
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not 13 <= opset <= 20:
        raise ConfigError(f"opset must be between 13 and 20 for the step export, got {opset}")
    step = build_step_graph(snn, input_shape)
    pairs = [[s.name, _state_output(s.name)] for s in step.states]
    meta = {
        "spikeconv.format_version": str(FORMAT_VERSION),
        "spikeconv.input": INPUT_NAME,
        "spikeconv.readout": READOUT_NAME,
        "spikeconv.state": json.dumps(pairs),
        "spikeconv.timesteps": str(snn.timesteps),
        "spikeconv.num_classes": str(int(info["num_classes"])),
        "spikeconv.input_shape": json.dumps(input_shape),
        "spikeconv.encoding": _encoding_meta(snn),
        "spikeconv.readout_meaning": READOUT_MEANING,
        "spikeconv.neurons": json.dumps(step.neurons),
        "spikeconv.preprocessing": json.dumps({"applied_inside_graph": True, **dict(info.get("preprocessing") or {})}, default=str),
    }
    model = _finish_model(_trace_to_onnx(step, input_shape, opset), step, meta)
    data = model.SerializeToString()
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return {
        "path": str(path),
        "input": INPUT_NAME,
        "readout": READOUT_NAME,
        "state": pairs,
        "nodes": len(model.graph.node),
        "opset": opset,
        "timesteps": snn.timesteps,
        "neurons": dict(step.neurons),
        "bytes": len(data),
    }


def run_onnx_step(path: str | Path, images: np.ndarray, timesteps: int) -> np.ndarray:
    """Loop a step file ``timesteps`` times with onnxruntime (CPU), using only its metadata.

    Args:
        path: A file written by :func:`export_onnx_step` (or any graph with the same metadata).
        images: ``[N, ...]`` input, the same at every step; or ``[T, N, ...]``, one input per step
            (for Poisson encoding, where the file's input is one step's encoded input).
        timesteps: T.

    Returns:
        The per-step readouts ``[T, N, K]``.
    """
    import onnxruntime as ort

    check_timesteps(timesteps)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    try:
        image_name, readout_name = meta["spikeconv.input"], meta["spikeconv.readout"]
        pairs = json.loads(meta["spikeconv.state"])
        step_rank = 1 + len(json.loads(meta["spikeconv.input_shape"]))
    except (KeyError, ValueError) as error:
        raise DataError(f"{path} is not a spikeconv step graph: metadata {first_line(error)} is missing or not JSON") from None
    images = np.asarray(images, dtype=np.float32)
    per_step = images.ndim == step_rank + 1
    if per_step and images.shape[0] < timesteps:
        raise DataError(f"got inputs for {images.shape[0]} steps, need {timesteps}")
    fetch = [readout_name, *(out for _, out in pairs)]
    state: dict[str, np.ndarray] = {}  # empty on step 1: the initializers hold the initial state
    readouts = []
    for t in range(timesteps):
        results = session.run(fetch, {image_name: images[t] if per_step else images, **state})
        readouts.append(results[0])
        state = {inp: value for (inp, _), value in zip(pairs, results[1:], strict=True)}
    return np.stack(readouts)
