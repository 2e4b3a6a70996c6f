"""`curve`, `info`, `compare` and `demo`: measure and describe networks."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from spikeconv.cli.group import POSITIVE, cli, data_options, device_options, model_file_options, progress, source, status_line
from spikeconv.models import available_models
from spikeconv.workflows import (
    AUGMENTS,
    CurveJob,
    DataSource,
    DemoJob,
    curves_job,
    demo_job,
    describe_file,
    format_curve_table,
    format_description,
)
from spikeconv.workflows.compare.methods import DIRECT_INITS


@cli.command("curve")
@click.argument("snns", metavar="SNN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@data_options
@click.option("--timesteps", type=POSITIVE, default=64, show_default=True)
@click.option("--limit", type=POSITIVE, default=None, help="Use the first N test samples only.")
@click.option("--batch-size", type=POSITIVE, default=256, show_default=True)
@click.option("--time-chunk", type=POSITIVE, default=None,
              help="Simulate this many steps per pass (bounds memory; same result).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None)
@click.option("--rate-code", is_flag=True,
              help="Also the ideal T-step rate code of each converted SNN at T = 1, 2, 4, ..., T (no simulation).")
@device_options()
def curve_cmd(snns, dataset, data_root, download, timesteps, limit, batch_size, time_chunk,
              json_path, plot_path, rate_code, device, precision) -> None:  # fmt: skip
    """Accuracy of each SNN after every timestep 1..T from one simulation, with its ANN reference.

    Several SNN files (e.g. one per conversion method) are measured on the same samples and
    overlaid in one table, one JSON (a "curves" list) and one plot. --rate-code adds what a
    converted SNN's neurons would reach with steady input (its code's resolution limit).
    Under torchrun the test set is sharded over the processes (docs/scaling.md): same curve.
    """
    job = CurveJob(snn=snns[0], timesteps=timesteps, data=source(dataset, data_root, download),
                   limit=limit, batch_size=batch_size, time_chunk=time_chunk, json_path=json_path,
                   plot_path=plot_path, rate_code=rate_code, device=device, precision=precision)  # fmt: skip
    click.echo(format_curve_table(curves_job(snns, job, progress=progress())))


@cli.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the text block.")
def info_cmd(file, as_json) -> None:
    """What FILE holds: an SNN file (method, T, thresholds, neuron, calibration, provenance), a train-snn checkpoint,
    or a model file `convert` reads. Reads the file only (never unpickles, rebuilds or runs a network)."""
    import json

    described = describe_file(file)
    click.echo(json.dumps(described, indent=2, default=str) if as_json else format_description(described))


@cli.command("demo")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("demo-output"),
              show_default=True)
@click.option("--timesteps", type=POSITIVE, default=32, show_default=True)
@click.option("--limit", type=POSITIVE, default=None, help="Use the first N test samples only.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None)
def demo_cmd(out_dir, timesteps, limit, data_root) -> None:
    """Convert the shipped Fashion-MNIST CNN with --method auto and with rate; print both curves and a summary."""
    result = demo_job(DemoJob(out_dir=out_dir, timesteps=timesteps, limit=limit,
                              data=DataSource(root=data_root)), progress=progress())  # fmt: skip
    click.echo(format_curve_table(result.curves))
    click.echo(result.summary)
    click.echo(f"SNN: {result.snn_path} (rate: {result.rate_path})  curves: {result.json_path}  plot: {result.plot_path}")



@cli.command("compare")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--arch", default=None,
              help=f"Without MODEL: the network to train, a preset ({', '.join(available_models())}) or layer notation, "
                   "e.g. 32C5-P2-64C5-P2-1024 [default: fmnist-cnn].")  # fmt: skip
@click.option("--direct-init", type=click.Choice(DIRECT_INITS), default=None,
              help="Where directly trained methods start: scratch (re-initialised), ann (the ANN's weights; listed as "
                   "METHOD-from-ann) or both [default: both with MODEL, scratch otherwise].")  # fmt: skip
@model_file_options
@data_options
@click.option("--methods", default="ann,calibrated,srif-mpr,mtlif", show_default=True,
              help="Comma-separated: ann; a conversion method of `convert --method` (rate, calibrated, burst, ...); or a "
                   "directly trained neuron (if, lif, srif, mtlif; -mpr adds the rectifier, e.g. srif-mpr).")  # fmt: skip
@click.option("--timesteps", default="1,2,4,8,16,32,64", show_default=True,
              help="Comma-separated budgets T; every SNN is simulated once for the largest.")
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Report folder.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="METHOD=PATH",
              help="Use this file instead of training/converting: ann=ANN checkpoint or ONNX; a conversion method=SNN file "
                   "from `convert`; a direct method=checkpoint from `train-snn`. Repeatable.")  # fmt: skip
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Trained/converted networks, keyed by their settings [default: OUT_DIR/cache].")
@click.option("--epochs", multiple=True, metavar="[METHOD=]N",
              help="Training epochs: N for every trained model, METHOD=N for one (ann included) [default: 15 ANN, 20 SNN].")
@click.option("--train-timesteps", multiple=True, metavar="[METHOD=]T",
              help="T of direct training, for all or per method [default: 2 for mtlif, 4 otherwise].")
@click.option("--target-timesteps", type=POSITIVE, default=4, show_default=True,
              help="The T conversion methods optimise thresholds and corrections for.")
@click.option("--calib-samples", type=POSITIVE, default=2000, show_default=True, help="Training samples for calibration.")
@click.option("--limit", type=POSITIVE, default=None, help="Use the first N test samples only.")
@click.option("--train-limit", type=POSITIVE, default=None, help="Train on the first N samples only.")
@click.option("--batch-size", type=POSITIVE, default=256, show_default=True, help="Evaluation batch size.")
@click.option("--time-chunk", type=POSITIVE, default=None,
              help="Simulate this many steps per pass (bounds memory at large T; same results).")
@click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--e-ac", type=click.FloatRange(min=0), default=0.9, show_default=True, help="Energy per accumulate (pJ).")
@click.option("--e-mac", type=click.FloatRange(min=0), default=4.6, show_default=True, help="Energy per multiply-accumulate (pJ).")
@click.option("--resume/--fresh", default=True, show_default=True,
              help="Reuse finished results with identical settings, or recompute them (cached networks are kept).")
@device_options()
def compare_cmd(model, arch, direct_init, model_spec, dataset, data_root, download, methods, timesteps, out_dir, checkpoints,
                cache_dir, epochs, train_timesteps, target_timesteps, calib_samples, limit, train_limit, batch_size, time_chunk,
                augment, seed, e_ac, e_mac, resume, device, precision) -> None:  # fmt: skip
    """ANN, conversion and direct training side by side: accuracy, spikes, operations and energy per T.

    MODEL (optional; any file `convert` reads) is your trained ANN: conversions start from it and the directly
    trained SNNs are its own graph with every ReLU a spiking neuron, re-initialised and from its weights
    (--direct-init). Without MODEL the ANN of --arch is trained first.

    Under torchrun (docs/scaling.md) training uses DDP and the test set is sharded over the processes: same report.
    """
    from spikeconv.workflows import compare_job, compare_job_from_options  # kept local: the imports above are shared

    if model is not None and arch is not None:
        raise click.UsageError("give MODEL or --arch, not both: MODEL is the network compared, --arch a preset to train")
    job = compare_job_from_options(arch=None if model is not None else (arch or "fmnist-cnn"), model=model,
                                   model_spec=model_spec, direct_init=direct_init,
                                   data=source(dataset, data_root, download), out_dir=out_dir, methods=methods,
                                   timesteps=timesteps, checkpoints=checkpoints, epochs=epochs,
                                   train_timesteps=train_timesteps, cache_dir=cache_dir, limit=limit,
                                   train_limit=train_limit, batch_size=batch_size, augment=augment, seed=seed,
                                   target_timesteps=target_timesteps, calib_samples=calib_samples, e_ac=e_ac, e_mac=e_mac,
                                   resume=resume, command=shlex.join(["spikeconv", *sys.argv[1:]]),
                                   time_chunk=time_chunk, device=device, precision=precision)  # fmt: skip
    result = compare_job(job, progress=progress(), on_model=status_line)
    click.echo(result.table)
    click.echo(f"report: {result.files['markdown']} ({result.report['meta']['wall_seconds']} s)")
