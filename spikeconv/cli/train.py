"""`train-ann` and `train-snn`: train a network and write its checkpoint."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from spikeconv.cli.group import POSITIVE, cli, data_options, device_options, model_file_options, progress, source
from spikeconv.models import available_models
from spikeconv.workflows import (
    ACTIVATIONS,
    AUGMENTS,
    INITS,
    OPTIMIZERS,
    SCHEDULES,
    SNN_LOSSES,
    SNN_RECIPES,
    TRAINABLE_NEURONS,
    TrainAnnJob,
    TrainSnnJob,
    activation_from_options,
    ann_training_from_options,
    snn_training_from_options,
    train_ann_job,
    train_snn_job,
)


@cli.command("train-ann")
@click.option("--arch", default="fmnist-cnn", show_default=True,
              help=f"Preset ({', '.join(available_models())}) or layer notation, e.g. 32C5-P2-64C5-P2-1024.")
@data_options
@click.option("--epochs", type=POSITIVE, default=15, show_default=True)
@click.option("--batch-size", type=POSITIVE, default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="one-cycle", show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option("--activation", type=click.Choice(ACTIVATIONS), default="relu", show_default=True,
              help="Hidden activation: relu, or qcfs (quantization-clip-floor-shift, for low-latency conversion).")
@click.option("--levels", type=POSITIVE, default=4, show_default=True, help="QCFS quantization levels L.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--train-limit", type=POSITIVE, default=None, help="Train on the first N samples only.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint to write.")
@device_options()
def train_ann_cmd(arch, dataset, data_root, download, epochs, batch_size, lr, optimizer, schedule,
                  weight_decay, augment, dropout, activation, levels, seed, train_limit, out, device, precision) -> None:  # fmt: skip
    """Train a ReLU ANN and save a checkpoint that `convert` needs nothing else for.

    Under torchrun (docs/scaling.md) each --batch-size batch is split over the processes (DDP); rank 0 writes.
    """
    config = ann_training_from_options(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                       schedule=schedule, weight_decay=weight_decay, augment=augment,
                                       seed=seed)  # fmt: skip
    job = TrainAnnJob(arch=arch, out=out, data=source(dataset, data_root, download), train=config,
                      dropout=dropout, train_limit=train_limit,
                      activation=activation_from_options(activation, levels),
                      command=shlex.join(["spikeconv", *sys.argv[1:]]), device=device, precision=precision)  # fmt: skip
    result = train_ann_job(job, progress=progress())
    click.echo(f"test accuracy {result.test_accuracy:.2f}% -> {result.path}")



@cli.command("train-snn")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--arch", default=None,
              help=f"Preset ({', '.join(available_models())}) or layer notation, e.g. 32C5-P2-64C5-P2-1024 "
                   "[default: fmnist-cnn; not with MODEL].")  # fmt: skip
@click.option("--init", type=click.Choice(INITS), default="scratch", show_default=True,
              help="MODEL only: re-initialise its layers (PyTorch's defaults) or start from its trained weights.")
@model_file_options
@data_options
@click.option("--recipe", type=click.Choice(SNN_RECIPES), default=None,
              help="A paper's whole training setting, neuron and T included (docs/training.md lists each recipe's values and "
                   "where the paper left a choice). Every option given replaces the recipe's value.")  # fmt: skip
@click.option("--neuron", type=click.Choice(TRAINABLE_NEURONS), default=None,
              help="Spiking neuron at every ReLU: if/lif (hard reset), srif (soft reset), mtlif (multi-threshold LIF) "
                   "[default: srif, or the recipe's; replaces the recipe's neuron and its MPR].")  # fmt: skip
@click.option("--mpr/--no-mpr", default=None, help="Membrane potential rectifier (InfLoR); if, lif and srif only "
              "[default: off, or the recipe's].")  # fmt: skip
@click.option("--timesteps", type=POSITIVE, default=None, help="T used in training [default: 4, or the recipe's].")
@click.option("--epochs", type=POSITIVE, default=None, help="[default: 20, or the recipe's]")
@click.option("--batch-size", type=POSITIVE, default=None, help="[default: 128, or the recipe's]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="[default: 0.1, or 0.005 for mtlif, or the recipe's]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
              help="[default: sgd (momentum 0.9), or adam for mtlif, or the recipe's]")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="Learning rate per batch: constant, cosine decay to 0, one-cycle [default: cosine, or the recipe's].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="L2 penalty added to every parameter's gradient by the optimizer (Adam's coupled form, not AdamW) "
                   "[default: 0, or the recipe's].")  # fmt: skip
@click.option("--loss", type=click.Choice(SNN_LOSSES), default=None,
              help="cross-entropy on the mean readout, or per-step-mse, Xu et al.'s loss (slower to converge in our "
                   "measurements, docs/benchmarks.md) [default: cross-entropy, or the recipe's].")  # fmt: skip
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Target (1 - e) one-hot + e/K for either loss, as torch's cross_entropy(label_smoothing=e) "
                   "[default: 0, or the recipe's].")  # fmt: skip
@click.option("--tdbn/--no-tdbn", default=None,
              help="BatchNorm weights start at V_th (tdBN) [default: on for mtlif only, or the recipe's].")
@click.option("--augment", type=click.Choice(AUGMENTS), default=None,
              help="shift: random 2-pixel crop; shift-flip: and a horizontal flip [default: none, or the recipe's].")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="[default: 0]")
@click.option("--train-limit", type=POSITIVE, default=None, help="Train on the first N samples only.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint, rewritten after every epoch.")
@click.option("--log", "log_path", type=click.Path(path_type=Path), default=None, help="Per-epoch JSON log [default: OUT.log.json].")
@click.option("--resume", is_flag=True, help="Continue from OUT if it exists (same options); a finished run is not retrained.")
@click.option("--overwrite", is_flag=True, help="Train anew and replace an existing OUT (refused without this or --resume).")
@device_options()
def train_snn_cmd(model, arch, init, model_spec, dataset, data_root, download, recipe, neuron, mpr, timesteps, epochs,
                  batch_size, lr, optimizer, schedule, weight_decay, loss, label_smoothing, tdbn, augment, seed, train_limit,
                  out, log_path, resume, overwrite, device, precision) -> None:  # fmt: skip
    """Train a spiking network directly (BPTT with surrogate gradients); `curve` measures the checkpoint.

    The network is a preset or layer notation (--arch), or MODEL: any ANN file `convert` reads, trained as its own
    graph with every ReLU a spiking neuron, from scratch (--init scratch) or from its weights (--init ann).

    Under torchrun (docs/scaling.md) each --batch-size batch is split over the processes (DDP); rank 0 writes
    the checkpoint and the log.
    """
    config = snn_training_from_options(recipe=recipe, neuron=neuron, mpr=mpr, timesteps=timesteps, epochs=epochs,
                                       batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule,
                                       weight_decay=weight_decay, loss=loss, label_smoothing=label_smoothing, tdbn=tdbn,
                                       augment=augment, seed=seed)  # fmt: skip
    if model is None and init != "scratch":
        raise click.UsageError("--init ann starts from a trained ANN's weights; pass its file as MODEL")
    if model is not None and arch is not None:
        raise click.UsageError("give --arch or MODEL, not both: each says which network to train")
    job = TrainSnnJob(arch=None if model is not None else (arch or "fmnist-cnn"), model=model, model_spec=model_spec, init=init,
                      out=out, data=source(dataset, data_root, download), train=config,
                      train_limit=train_limit, resume=resume, log=log_path, overwrite=overwrite,
                      command=shlex.join(["spikeconv", *sys.argv[1:]]), device=device, precision=precision)  # fmt: skip
    result = train_snn_job(job, progress=progress())
    click.echo(f"test accuracy {result.test_accuracy:.2f}% at T={config.timesteps} after {len(result.history.records)} epochs "
               f"({result.epochs_run} run now) -> {result.path}")  # fmt: skip
