"""The checks every ANN loader shares, run once: input shape, number of classes, preprocessing, probes."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import nn

from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.files.ann_types import ModelSpec
from spikeconv.files.onnx_bytes import onnx_input_dims
from spikeconv.ingest.preprocessing import Preprocessing

_PROBE_SEED = 0
logger = logging.getLogger("spikeconv")


def resolve_input_shape(fixed: list[int | None], spec: ModelSpec, data_shape: tuple[int, ...] | None,
                        label: str) -> tuple[tuple[int, ...], str]:  # fmt: skip
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


def check_num_classes(model: nn.Module, input_shape: tuple[int, ...], spec: ModelSpec, label: str) -> int:
    with torch.no_grad():
        out = model(torch.zeros(1, *input_shape))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(f"{label}: the model's output is {got}; expected [N, classes] logits")
    if spec.num_classes is not None and spec.num_classes != out.shape[1]:
        raise ConfigError(f"{label} has {out.shape[1]} outputs, not --num-classes {spec.num_classes}")
    return int(out.shape[1])


def spec_preprocessing(spec: ModelSpec, input_shape: tuple[int, ...], label: str) -> Preprocessing | None:
    if spec.preprocessing is not None:
        spec.preprocessing.check_channels(int(input_shape[0]), label)
    return spec.preprocessing


def grey_repeat(shape: tuple[int, ...], data_shape: tuple[int, ...] | None) -> int:
    """How many channels a one-channel data set's images are repeated to for a model that takes more of the same size
    (1: none): a stock three-channel network trained on grey images (torchvision's ``Grayscale(3)``)."""
    if data_shape is None or len(data_shape) != len(shape) or len(shape) < 2:
        return 1
    if int(data_shape[0]) == 1 and int(shape[0]) > 1 and tuple(data_shape[1:]) == tuple(shape[1:]):
        return int(shape[0])
    return 1


def with_grey_repeat(pre: Preprocessing | None, shape: tuple[int, ...], data_shape: tuple[int, ...] | None,
                     label: str) -> tuple[Preprocessing | None, tuple[int, ...]]:  # fmt: skip
    """``pre`` with :func:`grey_repeat`'s channels, and the per-sample shape the model then takes."""
    repeat = grey_repeat(shape, data_shape)
    if repeat == 1:
        return pre, shape
    logger.info("%s takes %d input channels and the data 1: each image's grey channel is repeated %d times", label, repeat, repeat)
    return replace(pre or Preprocessing(), repeat_channels=repeat), (1, *shape[1:])


def probe_batch(batch: int | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Seeded normal noise for the import checks (batch 2 where the file leaves it open)."""
    return torch.randn(batch or 2, *shape, generator=torch.Generator().manual_seed(_PROBE_SEED))


def onnx_probe(proto, shape, label: str) -> torch.Tensor | None:
    """A probe for an ONNX model whose feature sizes are symbolic (None where the file fixes them)."""
    dims = onnx_input_dims(proto, label)
    return None if None not in dims[1:] else probe_batch(dims[0], tuple(shape))


def bytes_tensor(data: bytes) -> torch.Tensor:
    """File bytes as a uint8 tensor, so SNN files hold them and still load with ``weights_only=True``."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)
