"""The ``spikeconv`` command line: parse options, run one workflow, print, exit.

Every user error (a SpikeconvError or a bad option) is printed as one line on stderr with a
non-zero exit status; outputs are written atomically by the workflows.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from pathlib import Path

import click

from spikeconv.data import available_datasets
from spikeconv.errors import SpikeconvError, first_line
from spikeconv.models import available_models
from spikeconv.workflows import (
    ACTIVATIONS,
    AUGMENTS,
    ENCODINGS,
    MAXPOOL_MODES,
    METHODS,
    OPTIMIZERS,
    RESETS,
    SCHEDULES,
    SIN_CORRECTIONS,
    SNN_LOSSES,
    THRESHOLD_RULES,
    TRAINABLE_NEURONS,
    ConvertJob,
    CurveJob,
    DataSource,
    DemoJob,
    TrainAnnJob,
    TrainSnnJob,
    activation_from_options,
    ann_training_from_options,
    convert_from_options,
    convert_job,
    curves_job,
    demo_job,
    describe_conversion,
    format_curve_table,
    model_spec_from_options,
    settings_from_options,
    snn_training_from_options,
    train_ann_job,
    train_snn_job,
)

DATASET_HELP = (
    f"Data set: one of {', '.join(available_datasets())}; imagefolder:PATH (one sub-folder per class, resized to the "
    "model's input); or npz:PATH[:X,Y] (arrays x and y of one .npz file, which has no train/test split)."
)
_positive = click.IntRange(min=1)


def _data_options(func):
    func = click.option("--download", is_flag=True, help="Allow downloading missing data files.")(func)
    func = click.option("--data-root", type=click.Path(path_type=Path), default=None,
                        help="Folder holding the data files (else $SPIKECONV_DATA, then system paths).")(func)  # fmt: skip
    return click.option("--dataset", default="fashion-mnist", show_default=True, help=DATASET_HELP)(func)


def _model_options(func):
    """The options that say what a model file does not; the command receives them as one ``model_spec``."""

    @functools.wraps(func)
    def command(*args, arch, model_factory, num_classes, input_shape, mean, std, trust_pickle, **kwargs):
        spec = model_spec_from_options(arch=arch, factory=model_factory, num_classes=num_classes, input_shape=input_shape,
                                       mean=mean, std=std, trust_pickle=trust_pickle)  # fmt: skip
        return func(*args, model_spec=spec, **kwargs)

    options = [
        click.option("--trust-pickle", is_flag=True,
                     help="Allow MODEL to be a pickled nn.Module (torch.save(model)); unpickling can run code from the file."),
        click.option("--std", default=None, metavar="S[,S...]",
                     help="Input standard deviation(s) the model was trained with on [0, 1] pixels, one or one per channel "
                          "[default: 1; spikeconv checkpoints record their own]."),
        click.option("--mean", default=None, metavar="M[,M...]",
                     help="Input mean(s) the model was trained with on [0, 1] pixels, one or one per channel "
                          "[default: 0, i.e. no normalisation; spikeconv checkpoints record their own]."),
        click.option("--input-shape", default=None, metavar="C,H,W",
                     help="Input shape where the model file does not fix it [default: the data's sample shape]."),
        click.option("--num-classes", type=_positive, default=None, help="Number of outputs, checked against the model."),
        click.option("--model-factory", default=None, metavar="FILE.py:FUNCTION",
                     help="Python function (or package.module:FUNCTION) that returns the network, called without "
                          "arguments; MODEL is then its state_dict, or omitted if the function loads trained weights."),
        click.option("--arch", default=None, metavar="SPEC",
                     help=f"Network of a state_dict MODEL: a preset ({', '.join(available_models())}) or layer notation."),
    ]  # fmt: skip
    for option in options:
        command = option(command)
    return command


def _source(dataset: str, data_root: Path | None, download: bool) -> DataSource:
    return DataSource(name=dataset, root=data_root, download=download)


def _progress() -> bool:
    return sys.stderr.isatty()


_CHATTY_LIBRARIES = ("torch", "onnx", "onnx2torch", "onnxscript", "onnxruntime", "torchvision")


def _set_verbosity(verbose: bool) -> None:
    """Show spikeconv's log and all warnings with -v; else silence the libraries' deprecation/fallback chatter
    (up to ~90 lines for one .pt2 file). spikeconv's own problems are errors, so nothing to act on is hidden."""
    import logging
    import warnings

    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger("spikeconv").addHandler(handler)
        logging.getLogger("spikeconv").setLevel(logging.INFO)
        warnings.simplefilter("default")
        return
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spikeconv")
@click.option("-v", "--verbose", is_flag=True, help="Show spikeconv's log and the libraries' warnings.")
def cli(verbose: bool) -> None:
    """Convert trained ReLU networks into spiking neural networks, and measure them."""
    _set_verbosity(verbose)


@cli.command("train-ann")
@click.option("--arch", default="fmnist-cnn", show_default=True,
              help=f"Preset ({', '.join(available_models())}) or layer notation, e.g. 32C5-P2-64C5-P2-1024.")
@_data_options
@click.option("--epochs", type=_positive, default=15, show_default=True)
@click.option("--batch-size", type=_positive, default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="one-cycle", show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option("--activation", type=click.Choice(ACTIVATIONS), default="relu", show_default=True,
              help="Hidden activation: relu, or qcfs (quantization-clip-floor-shift, for low-latency conversion).")
@click.option("--levels", type=_positive, default=4, show_default=True, help="QCFS quantization levels L.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--train-limit", type=_positive, default=None, help="Train on the first N samples only.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint to write.")
def train_ann_cmd(arch, dataset, data_root, download, epochs, batch_size, lr, optimizer, schedule,
                  weight_decay, augment, dropout, activation, levels, seed, train_limit, out) -> None:  # fmt: skip
    """Train a ReLU ANN and save a checkpoint that `convert` needs nothing else for."""
    config = ann_training_from_options(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                       schedule=schedule, weight_decay=weight_decay, augment=augment,
                                       seed=seed)  # fmt: skip
    job = TrainAnnJob(arch=arch, out=out, data=_source(dataset, data_root, download), train=config,
                      dropout=dropout, train_limit=train_limit,
                      activation=activation_from_options(activation, levels),
                      command=shlex.join(["spikeconv", *sys.argv[1:]]))  # fmt: skip
    result = train_ann_job(job, progress=_progress())
    click.echo(f"test accuracy {result.test_accuracy:.2f}% -> {result.path}")


@cli.command("convert")
@click.argument("model", type=click.Path(path_type=Path), required=False)
@_data_options
@_model_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="SNN file to write.")
@click.option("--method", type=click.Choice(METHODS), default="rate", show_default=True,
              help="Conversion recipe (see docs/low_latency.md): rate; calibrated / calibrated-light (MMSE thresholds + "
                   "potential / bias correction for --target-timesteps); qcfs / qcfs-calibrated (QCFS-trained ANNs); "
                   "burst (up to 2 spikes per step); bsnn (bistable neurons, a reconstruction).")  # fmt: skip
@click.option("--target-timesteps", type=_positive, default=4, show_default=True,
              help="The T that MMSE thresholds and corrections optimise for.")
@click.option("--calib-samples", type=_positive, default=2000, show_default=True,
              help="Training samples used to calibrate thresholds (drawn with --calib-seed).")
@click.option("--correction-samples", type=_positive, default=512, show_default=True,
              help="Of those, samples used by the potential/bias correction.")
@click.option("--calib-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threshold", type=click.Choice(THRESHOLD_RULES), default=None,
              help="Threshold rule per activation site [default: the method's].")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=None,
              help="Percentile for --threshold percentile [default: the method's, 99.99].")
@click.option("--per-channel", is_flag=True, help="One threshold per channel instead of per layer.")
@click.option("--v-init", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="Initial membrane as a fraction of the threshold (0 = classic conversion).")
@click.option("--max-spikes", type=_positive, default=None, help="Spikes per step, Γ [default: the method's].")
@click.option("--half-period", type=_positive, default=None, help="bsnn: steps per integrate/fire state, P [default: 1].")
@click.option("--synchronous/--no-synchronous", default=True, show_default=True,
              help="bsnn: delay shallower inputs of residual joins so both arrive in the same phase.")
@click.option("--maxpool", type=click.Choice(MAXPOOL_MODES), default="spiking", show_default=True,
              help="Max-pooling on spikes: spiking (LIPooling gate, exact rates) or average (replaced by average "
                   "pooling, an approximation; recorded in the SNN file).")  # fmt: skip
@click.option("--sin-correction", type=click.Choice(SIN_CORRECTIONS), default=None,
              help="Take back spikes of inactivated neurons: signed (negative spikes when a neuron has over-fired) or "
                   "isi (SpiCalib rule) [default: the method's; none for rate].")  # fmt: skip
@click.option("--reset", type=click.Choice(RESETS), default="subtract",
              show_default=True)
@click.option("--encoding", type=click.Choice(ENCODINGS), default="direct",
              show_default=True, help="Input encoding: analog current, or Poisson spikes.")
@click.option("--timesteps", type=_positive, default=64, show_default=True,
              help="Default simulation length stored with the SNN.")
@click.option("--plan-json", type=click.Path(path_type=Path), default=None,
              help="Also write the calibration record (thresholds, corrections) as JSON.")
def convert_cmd(model, dataset, data_root, download, out, method, target_timesteps, calib_samples, correction_samples,
                calib_seed, threshold, percentile, per_channel, v_init, max_spikes, half_period, synchronous, maxpool,
                sin_correction, reset,
                encoding, timesteps, plan_json, model_spec) -> None:  # fmt: skip
    """Calibrate MODEL on training data and convert it into a soft-reset SNN file.

    MODEL is a spikeconv checkpoint, an ONNX file, a torch.export program (.pt2), or a state_dict
    with --arch or --model-factory; the format is read from the file. See docs/own_model.md.
    """
    base = convert_from_options(reset=reset, v_init=v_init, encoding=encoding, seed=calib_seed, timesteps=timesteps,
                                maxpool=maxpool)  # fmt: skip
    settings = settings_from_options(method, base, target_timesteps=target_timesteps,
                                     correction_samples=min(correction_samples, calib_samples),
                                     threshold=threshold, percentile=percentile, per_channel=per_channel,
                                     max_spikes=max_spikes, half_period=half_period,
                                     synchronous=synchronous, sin_correction=sin_correction)  # fmt: skip
    job = ConvertJob(model=model, out=out, data=_source(dataset, data_root, download),
                     calib_samples=calib_samples, calib_seed=calib_seed, calibration=settings.calibration,
                     convert=settings.convert, correction=settings.correction, method=method,
                     plan_json=plan_json, model_spec=model_spec)  # fmt: skip
    result = convert_job(job, progress=_progress())
    sites = len(result.plan.sites)
    click.echo(f"converted {model or model_spec.factory} -> {out} with method {method} ({sites} spiking layers; "
               f"{describe_conversion(result)})")  # fmt: skip


@cli.command("curve")
@click.argument("snns", metavar="SNN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@_data_options
@click.option("--timesteps", type=_positive, default=64, show_default=True)
@click.option("--limit", type=_positive, default=None, help="Use the first N test samples only.")
@click.option("--batch-size", type=_positive, default=256, show_default=True)
@click.option("--time-chunk", type=_positive, default=None,
              help="Simulate this many steps per pass (bounds memory; same result).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None)
@click.option("--rate-code", is_flag=True,
              help="Also the ideal T-step rate code of each converted SNN at T = 1, 2, 4, ..., T (no simulation).")
def curve_cmd(snns, dataset, data_root, download, timesteps, limit, batch_size, time_chunk,
              json_path, plot_path, rate_code) -> None:  # fmt: skip
    """Accuracy of each SNN after every timestep 1..T from one simulation, with its ANN reference.

    Several SNN files (e.g. one per conversion method) are measured on the same samples and
    overlaid in one table, one JSON (a "curves" list) and one plot. --rate-code adds what a
    converted SNN's neurons would reach with steady input (its code's resolution limit).
    """
    job = CurveJob(snn=snns[0], timesteps=timesteps, data=_source(dataset, data_root, download),
                   limit=limit, batch_size=batch_size, time_chunk=time_chunk, json_path=json_path,
                   plot_path=plot_path, rate_code=rate_code)  # fmt: skip
    click.echo(format_curve_table(curves_job(snns, job, progress=_progress())))


@cli.command("demo")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("demo-output"),
              show_default=True)
@click.option("--timesteps", type=_positive, default=64, show_default=True)
@click.option("--limit", type=_positive, default=None, help="Use the first N test samples only.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None)
def demo_cmd(out_dir, timesteps, limit, data_root) -> None:
    """Convert the shipped Fashion-MNIST CNN and print its timestep-accuracy curve."""
    result = demo_job(DemoJob(out_dir=out_dir, timesteps=timesteps, limit=limit,
                              data=DataSource(root=data_root)), progress=_progress())  # fmt: skip
    click.echo(format_curve_table([result.curve]))
    click.echo(f"SNN: {result.snn_path}  curve: {result.json_path}  plot: {result.plot_path}")


@cli.command("train-snn")
@click.option("--arch", default="fmnist-cnn", show_default=True,
              help=f"Preset ({', '.join(available_models())}) or layer notation, e.g. 32C5-P2-64C5-P2-1024.")
@_data_options
@click.option("--neuron", type=click.Choice(TRAINABLE_NEURONS), default="srif", show_default=True,
              help="Spiking neuron at every ReLU: if/lif (hard reset), srif (soft reset), mtlif (multi-threshold LIF).")
@click.option("--mpr", is_flag=True, help="Membrane potential rectifier (InfLoR); if, lif and srif only.")
@click.option("--timesteps", type=_positive, default=4, show_default=True, help="T used in training.")
@click.option("--epochs", type=_positive, default=20, show_default=True)
@click.option("--batch-size", type=_positive, default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Default: 0.1, or 0.005 for mtlif.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="Default: sgd (momentum 0.9), or adam for mtlif.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default="cosine", show_default=True)
@click.option("--loss", type=click.Choice(SNN_LOSSES), default=None,
              help="Default: cross-entropy on the mean readout, for every neuron; per-step-mse is Xu et al.'s loss "
                   "(slower to converge in our measurements, docs/benchmarks.md).")  # fmt: skip
@click.option("--tdbn/--no-tdbn", default=None, help="BatchNorm weights start at V_th (tdBN). Default: on for mtlif only.")
@click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--train-limit", type=_positive, default=None, help="Train on the first N samples only.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint, rewritten after every epoch.")
@click.option("--log", "log_path", type=click.Path(path_type=Path), default=None, help="Per-epoch JSON log [default: OUT.log.json].")
@click.option("--resume", is_flag=True, help="Continue from OUT if it exists (same options); a finished run is not retrained.")
@click.option("--overwrite", is_flag=True, help="Train anew and replace an existing OUT (refused without this or --resume).")
def train_snn_cmd(arch, dataset, data_root, download, neuron, mpr, timesteps, epochs, batch_size, lr, optimizer, schedule,
                  loss, tdbn, augment, seed, train_limit, out, log_path, resume, overwrite) -> None:  # fmt: skip
    """Train a spiking network directly (BPTT with surrogate gradients); `curve` measures the checkpoint."""
    config = snn_training_from_options(neuron=neuron, mpr=mpr, timesteps=timesteps, epochs=epochs, batch_size=batch_size,
                                       lr=lr, optimizer=optimizer, schedule=schedule, loss=loss, tdbn=tdbn,
                                       augment=augment, seed=seed)  # fmt: skip
    job = TrainSnnJob(arch=arch, out=out, data=_source(dataset, data_root, download), train=config,
                      train_limit=train_limit, resume=resume, log=log_path, overwrite=overwrite,
                      command=shlex.join(["spikeconv", *sys.argv[1:]]))  # fmt: skip
    result = train_snn_job(job, progress=_progress())
    click.echo(f"test accuracy {result.test_accuracy:.2f}% at T={timesteps} after {len(result.history.records)} epochs "
               f"({result.epochs_run} run now) -> {result.path}")  # fmt: skip


@cli.command("compare")
@click.option("--arch", default="fmnist-cnn", show_default=True,
              help=f"Preset ({', '.join(available_models())}) or layer notation, e.g. 32C5-P2-64C5-P2-1024.")
@_data_options
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
@click.option("--target-timesteps", type=_positive, default=4, show_default=True,
              help="The T conversion methods optimise thresholds and corrections for.")
@click.option("--calib-samples", type=_positive, default=2000, show_default=True, help="Training samples for calibration.")
@click.option("--limit", type=_positive, default=None, help="Use the first N test samples only.")
@click.option("--train-limit", type=_positive, default=None, help="Train on the first N samples only.")
@click.option("--batch-size", type=_positive, default=256, show_default=True, help="Evaluation batch size.")
@click.option("--time-chunk", type=_positive, default=None,
              help="Simulate this many steps per pass (bounds memory at large T; same results).")
@click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--e-ac", type=click.FloatRange(min=0), default=0.9, show_default=True, help="Energy per accumulate (pJ).")
@click.option("--e-mac", type=click.FloatRange(min=0), default=4.6, show_default=True, help="Energy per multiply-accumulate (pJ).")
@click.option("--resume/--fresh", default=True, show_default=True,
              help="Reuse finished results with identical settings, or recompute them (cached networks are kept).")
def compare_cmd(arch, dataset, data_root, download, methods, timesteps, out_dir, checkpoints, cache_dir, epochs,
                train_timesteps, target_timesteps, calib_samples, limit, train_limit, batch_size, time_chunk, augment, seed,
                e_ac, e_mac, resume) -> None:  # fmt: skip
    """ANN, conversion and direct training side by side: accuracy, spikes, operations and energy per T."""
    from spikeconv.workflows import compare_job, compare_job_from_options  # kept local: the imports above are shared

    job = compare_job_from_options(arch=arch, data=_source(dataset, data_root, download), out_dir=out_dir, methods=methods,
                                   timesteps=timesteps, checkpoints=checkpoints, epochs=epochs,
                                   train_timesteps=train_timesteps, cache_dir=cache_dir, limit=limit,
                                   train_limit=train_limit, batch_size=batch_size, augment=augment, seed=seed,
                                   target_timesteps=target_timesteps, calib_samples=calib_samples, e_ac=e_ac, e_mac=e_mac,
                                   resume=resume, command=shlex.join(["spikeconv", *sys.argv[1:]]),
                                   time_chunk=time_chunk)  # fmt: skip
    result = compare_job(job, progress=_progress(), on_model=lambda line: click.echo(line, err=True))
    click.echo(result.table)
    click.echo(f"report: {result.files['markdown']} ({result.report['meta']['wall_seconds']} s)")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every failure into one line and an exit status.

    Exit status 2 is bad input (click's convention: options, files, data, models), 1 an internal
    failure, 130 an interruption. ``SPIKECONV_DEBUG=1`` re-raises internal failures with their
    traceback for bug reports.
    """
    try:
        cli.main(args=argv, prog_name="spikeconv", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("error: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except SpikeconvError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except Exception as exc:  # never a traceback for users; SPIKECONV_DEBUG shows it
        if os.environ.get("SPIKECONV_DEBUG"):
            raise
        reason = first_line(exc, limit=None, empty="")
        click.echo(f"error: internal error ({type(exc).__name__}: {reason}); rerun with SPIKECONV_DEBUG=1 "
                   "and report it", err=True)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
