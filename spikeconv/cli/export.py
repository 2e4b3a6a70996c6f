"""`export`: write an SNN as a NIR graph or an ONNX step graph."""

from __future__ import annotations

from pathlib import Path

import click

from spikeconv.cli.group import cli
from spikeconv.workflows.export import SNN_EXPORTS, ExportJob, export_job


@cli.command("export")
@click.argument("snn", metavar="SNN_FILE", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="File to write (.nir or .onnx).")
@click.option("--format", "fmt", type=click.Choice(list(SNN_EXPORTS)), default=None,
              help="; ".join(f"{name}: {purpose}" for name, (_, purpose) in SNN_EXPORTS.items()) + " [default: from --out's suffix]")
def export_cmd(snn, out, fmt) -> None:
    """Write SNN_FILE (a converted SNN, a train-snn checkpoint, or a NIR file) for other tools.

    nir: neurons in NIR's own primitives, soft reset exact (docs/export_nir.md); what NIR cannot
    express (spiking max-pool, signed neurons, BSNN) is refused with the option that avoids it.
    onnx: one timestep with the membranes as state inputs/outputs (docs/export_onnx.md).
    """
    summary = export_job(ExportJob(snn=snn, out=out, format=fmt))
    neurons = summary.get("neurons")
    count = len(neurons) if isinstance(neurons, (dict, list)) else neurons
    click.echo(f"exported {snn} -> {out} as {summary['format']}: {summary.get('nodes', '?')} nodes, {count} neurons")
