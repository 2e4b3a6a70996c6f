"""`gap`: per layer, how much of a converted SNN's error at T is quantisation and how much is timing."""

from __future__ import annotations

from pathlib import Path

import click

from spikeconv.cli.group import POSITIVE, cli, data_options, device_options, progress, source
from spikeconv.workflows.gap import GapJob, format_gap_table, gap_job


@cli.command("gap")
@click.argument("snn", metavar="SNN_FILE", type=click.Path(path_type=Path))
@data_options
@click.option("--timesteps", type=POSITIVE, required=True, help="T: the number of steps the SNN runs.")
@click.option("--limit", type=POSITIVE, default=None, help="Use the first N test samples only.")
@click.option("--batch-size", type=POSITIVE, default=128, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the result as JSON.")
@device_options(precision=False)
def gap_cmd(snn, dataset, data_root, download, timesteps, limit, batch_size, json_path, device) -> None:
    """Per spiking layer of a converted SNN: the ANN's activation clipped at θ, its ideal T-step rate code and the SNN's
    mean output, with the quantisation error (rate code vs ANN) and the timing error (SNN vs rate code), local and
    accumulated, relative to the layer's activation norm (docs/gap_analysis.md)."""
    job = GapJob(snn=snn, timesteps=timesteps, data=source(dataset, data_root, download), limit=limit, batch_size=batch_size,
                 json_path=json_path, device=device)  # fmt: skip
    click.echo(format_gap_table(gap_job(job, progress=progress())))
