"""`export`: write an SNN as a NIR graph (exact, or for one consumer library) or an ONNX step graph."""

from __future__ import annotations

from pathlib import Path

import click

from spikeconv.cli.group import cli
from spikeconv.workflows.export import SNN_EXPORTS, TARGETS, ExportJob, export_job


@cli.command("export")
@click.argument("snn", metavar="SNN_FILE", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="File to write (.nir or .onnx).")
@click.option("--format", "fmt", type=click.Choice(list(SNN_EXPORTS)), default=None,
              help="; ".join(f"{name}: {purpose}" for name, (_, purpose) in SNN_EXPORTS.items()) + " [default: from --out's suffix]")
@click.option("--target", type=click.Choice(list(TARGETS)), default=None,
              help="The library whose own NIR importer will run the file: " + "; ".join(f"{name}: {t.library}" for name, t in
                   TARGETS.items()) + ". nir is the exact file; the others need a network converted with --target (or one "
                   "whose neuron they run) [default: the exact file].")  # fmt: skip
def export_cmd(snn, out, fmt, target) -> None:
    """Write SNN_FILE (a converted SNN, a train-snn checkpoint, or a NIR file) for other tools.

    nir: neurons in NIR's own primitives, soft reset exact (docs/export_nir.md); what NIR cannot
    express (spiking max-pool, signed neurons, BSNN) is refused with the option that avoids it.
    --target sinabs/snntorch/spikingjelly/norse: the graph that library's own importer loads and
    runs as spikeconv does (docs/export_targets.md); convert with the same --target first.
    onnx: one timestep with the membranes as state inputs/outputs (docs/export_onnx.md).
    """
    summary = export_job(ExportJob(snn=snn, out=out, format=fmt, target=target))
    neurons = summary.get("neurons")
    count = len(neurons) if isinstance(neurons, (dict, list)) else neurons
    what = f"for {summary['library']}" if summary.get("target") not in (None, "nir") else f"as {summary['format']}"
    click.echo(f"exported {snn} -> {out} {what}: {summary.get('nodes', '?')} nodes, {count} neurons")
    for change in summary.get("changes", []):
        click.echo(f"  note: {change}")
