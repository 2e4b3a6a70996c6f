"""``spikeconv export``: write an SNN (SNN file, train-snn checkpoint or NIR graph) in a format other tools read.

``--target`` names the consumer library the file is for (docs/export_targets.md): ``nir`` is the
exact NIR file, ``sinabs``/``snntorch``/``spikingjelly``/``norse`` the graph that library's own
importer runs; the network must be one that library can run (``convert --target``), and the
summary says what the export changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeconv._outputs import check_outputs
from spikeconv.errors import ConfigError
from spikeconv.files import load_snn
from spikeconv.files.snn_exports import SNN_EXPORTS, export_snn
from spikeconv.files.targets import TARGETS, export_for_target

__all__ = ["SNN_EXPORTS", "SUFFIXES", "TARGETS", "ExportJob", "export_format", "export_job"]

SUFFIXES = {".nir": "nir", ".onnx": "onnx"}


@dataclass(frozen=True)
class ExportJob:
    """What to export: ``snn`` (any file ``load_snn`` reads) to ``out`` in ``format`` (None: from ``out``'s suffix),
    for ``target`` (a consumer library; None: the exact NIR file or the ONNX step graph)."""

    snn: Path
    out: Path
    format: str | None = None
    target: str | None = None


def export_format(job: ExportJob) -> str:
    """The format asked for, or the one ``--out``'s suffix names (a target is always NIR)."""
    if job.target is not None:
        if job.target not in TARGETS:
            raise ConfigError(f"unknown target {job.target!r}; choose one of {', '.join(TARGETS)}")
        if job.format not in (None, "nir"):
            raise ConfigError(f"--target {job.target} writes a NIR graph; drop --format {job.format} or --target")
        return "nir"
    if job.format is not None:
        if job.format not in SNN_EXPORTS:
            raise ConfigError(f"unknown export format {job.format!r}; choose one of {', '.join(SNN_EXPORTS)}")
        return job.format
    if job.out.suffix.lower() in SUFFIXES:
        return SUFFIXES[job.out.suffix.lower()]
    raise ConfigError(f"--out {job.out} does not say the format (.nir or .onnx); pass --format {'/'.join(SNN_EXPORTS)}")


def export_job(job: ExportJob) -> dict[str, Any]:
    """Check the output, load the SNN, write it; returns the writer's summary with the format, target and paths."""
    check_outputs({"--out": job.out}, [job.snn])
    fmt = export_format(job)
    loaded = load_snn(job.snn)
    if job.target is not None:
        summary = export_for_target(loaded.snn, job.out, info=loaded.info, target=job.target, where=str(job.snn))
    else:
        summary = export_snn(loaded.snn, job.out, format=fmt, info=loaded.info)
    return {"format": fmt, "snn": str(job.snn), "out": str(job.out), **summary}
