"""The formats an SNN is written to for other tools (``spikeconv export --format``), one writer each.

A writer takes ``(snn, path, info)``, writes ``path`` atomically and returns a small summary of
what the file holds. NIR goes to neuromorphic toolchains (:mod:`spikeconv.files.nir_export`),
the ONNX step graph to deployment runtimes (:mod:`spikeconv.files.onnx_step`). Adding a format
is one writer and one :func:`register_snn_export`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from spikeconv.errors import ConfigError
from spikeconv.neurons import SpikingNetwork

SnnWriter = Callable[[SpikingNetwork, Path, dict[str, Any]], dict[str, Any]]

SNN_EXPORTS: dict[str, tuple[SnnWriter, str]] = {}
"""format name -> (writer, one line on what the file is for)."""


def register_snn_export(name: str, writer: SnnWriter, purpose: str) -> None:
    """Let ``spikeconv export --format name`` write SNNs with ``writer``.

    Raises:
        ConfigError: ``name`` is already registered.
    """
    if name in SNN_EXPORTS:
        raise ConfigError(f"an SNN export format {name!r} is already registered")
    SNN_EXPORTS[name] = (writer, purpose)


def available_snn_exports() -> list[str]:
    return list(SNN_EXPORTS)


def export_snn(snn: SpikingNetwork, path: str | Path, *, format: str = "nir", info: dict[str, Any] | None = None,
               input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write ``snn`` to ``path`` in ``format`` (``nir`` or ``onnx``).

    Args:
        snn: A converted or directly trained SNN.
        path: The file to write (atomically).
        format: A registered export format.
        info: What is known about the network (``load_snn(...).info``: input shape, classes, preprocessing, method).
        input_shape: The per-sample input shape ``(C, H, W)`` when ``info`` is not given.

    Raises:
        ConfigError: An unknown format, or no input shape.
        ConversionError: The network has a node the format cannot express (named in the message).
    """
    if format not in SNN_EXPORTS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(SNN_EXPORTS)}")
    info = dict(info or {})
    if input_shape is not None:
        info["input_shape"] = [int(s) for s in input_shape]
    if "input_shape" not in info:
        raise ConfigError("export needs the input shape: pass input_shape=(C, H, W), or info=load_snn(path).info")
    if "num_classes" not in info:
        import torch

        with torch.no_grad():
            info["num_classes"] = int(snn(torch.zeros((1, *info["input_shape"])), 1).shape[-1])
    return SNN_EXPORTS[format][0](snn, Path(path), info)


def _nir(snn: SpikingNetwork, path: Path, info: dict[str, Any]) -> dict[str, Any]:
    from spikeconv.files.nir_export import export_nir

    return export_nir(snn, path, info=info)


def _onnx(snn: SpikingNetwork, path: Path, info: dict[str, Any]) -> dict[str, Any]:
    from spikeconv.files.onnx_step import export_onnx_step

    return export_onnx_step(snn, path, info=info)


register_snn_export("nir", _nir, "NIR graph for neuromorphic toolchains (exact soft reset; spikeconv reads it back)")
register_snn_export("onnx", _onnx, "one timestep as an ONNX graph with explicit neuron state, for any runtime to loop")
