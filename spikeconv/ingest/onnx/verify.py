"""Check an imported graph against onnxruntime on a seeded probe batch.

onnx2torch, the opset lowering and spikeconv's own rewrites each could change what the model
computes; running both on the same input is the only check that covers them all at once.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import torch
from torch import fx

from spikeconv.errors import ConversionError, UnsupportedLayerError

logger = logging.getLogger("spikeconv")

PROBE_BATCH = 2
PROBE_SEED = 0
CHECK_KEY = "spikeconv_onnx_check"


def data_input(model: onnx.ModelProto, label: str) -> onnx.ValueInfoProto:
    """The model's one graph input that is not an initializer."""
    constants = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in constants]
    if len(inputs) != 1:
        names = [value.name for value in inputs]
        raise UnsupportedLayerError(f"{label} takes {len(inputs)} inputs {names}; spikeconv converts single-input models")
    return inputs[0]


def make_probe(model: onnx.ModelProto, label: str, probe_input: torch.Tensor | None = None) -> torch.Tensor:
    """``probe_input`` as float32, or a seeded standard-normal batch shaped like the ONNX input.

    The probe checks numerical equivalence, not accuracy, so it is signed noise rather than an
    image: negative inputs exercise every clamp and ReLU from the first layer on. A symbolic
    first (batch) dimension gets :data:`PROBE_BATCH`; any other symbolic dimension needs
    ``probe_input``.
    """
    value = data_input(model, label)
    if probe_input is not None:
        return probe_input.detach().to(device="cpu", dtype=torch.float32)
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UnsupportedLayerError(f"input {value.name!r} of {label} is not float32; re-export the model with a float input")
    if not tensor_type.HasField("shape"):
        raise UnsupportedLayerError(f"input {value.name!r} of {label} has no shape; pass probe_input=<a batch tensor>")
    shape = []
    for index, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        elif index == 0:
            shape.append(PROBE_BATCH)
        else:
            raise UnsupportedLayerError(
                f"dimension {index} of input {value.name!r} of {label} is symbolic ({dim.dim_param or '?'}); "
                "pass probe_input=<a batch tensor>"
            )
    generator = torch.Generator().manual_seed(PROBE_SEED)
    return torch.randn(shape, generator=generator)


def _run_onnxruntime(model: onnx.ModelProto, name: str, probe: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime  # imported here: only ONNX ingest needs it

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings go straight to file descriptor 2, past the CLI's messages
    session = onnxruntime.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(None, {name: probe.numpy()})


def check_against_onnxruntime(
    gm: fx.GraphModule, model: onnx.ModelProto, probe: torch.Tensor, *, rtol: float, label: str
) -> dict[str, object]:
    """Compare ``gm(probe)`` with onnxruntime on ``model``; return the record kept in ``gm.meta``.

    Passes when ``max|gm − ort| ≤ rtol · max|ort|`` over all outputs.

    Raises:
        ConversionError: if the outputs differ by more, or do not match in number or shape.
    """
    expected = _run_onnxruntime(model, data_input(model, label).name, probe)
    with torch.no_grad():
        result = gm(probe)
    actual = [result] if isinstance(result, torch.Tensor) else list(result)
    shapes = [tuple(a.shape) for a in actual], [tuple(e.shape) for e in expected]
    if shapes[0] != shapes[1]:
        raise ConversionError(f"imported graph of {label} returns shapes {shapes[0]}, onnxruntime {shapes[1]}; please report this model")
    diff = max(float(np.abs(a.numpy().astype(np.float64) - e).max(initial=0.0)) for a, e in zip(actual, expected, strict=True))
    scale = max(float(np.abs(e).max(initial=0.0)) for e in expected)
    record = {"max_abs_diff": diff, "max_abs_reference": scale, "rtol": rtol, "probe_shape": list(probe.shape)}
    if diff > rtol * scale:
        raise ConversionError(
            f"imported graph of {label} differs from onnxruntime by {diff:.3g} (> rtol {rtol:g} x max|output| {scale:.3g}) "
            "on the probe batch; check the model or pass a larger rtol"
        )
    logger.info("ONNX import of %s matches onnxruntime: max |diff| %.3g, max |output| %.3g", label, diff, scale)
    return record
