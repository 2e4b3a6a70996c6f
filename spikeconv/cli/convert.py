"""`convert`: calibrate a trained ANN and write its SNN file (``--method auto`` by default)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from spikeconv.cli.group import POSITIVE, cli, data_options, device_options, model_options, progress, source
from spikeconv.workflows import (
    ENCODINGS,
    MAXPOOL_MODES,
    METHODS,
    OBJECTIVES,
    RESETS,
    SIN_CORRECTIONS,
    TARGET_NAMES,
    THRESHOLD_RULES,
    ConvertJob,
    auto_from_options,
    check_auto_flags,
    convert_from_options,
    convert_job,
    describe_conversion,
    finetune_budget,
    format_choice,
    settings_from_options,
    target_note,
)


@cli.command("convert")
@click.argument("model", type=click.Path(path_type=Path), required=False)
@data_options
@model_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="SNN file to write.")
@click.option("--method", type=click.Choice(("auto", *METHODS)), default="auto", show_default=True,
              help="Conversion recipe (see docs/low_latency.md): auto (the method and T that stay within --max-drop of the "
                   "ANN on held-out training data at the fewest steps); rate; calibrated / calibrated-light (MMSE thresholds + "
                   "potential / bias correction for --target-timesteps); qcfs / qcfs-calibrated (QCFS-trained ANNs); "
                   "burst (up to 2 spikes per step); bsnn (bistable neurons, a reconstruction); hybrid (calibrated, then "
                   "fine-tuned by BPTT at --target-timesteps on the training data: the --finetune-* budget).")  # fmt: skip
@click.option("--target-timesteps", type=POSITIVE, default=None,
              help="The T that MMSE thresholds and corrections optimise for [default: 4; auto chooses it].")
@click.option("--max-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="auto: largest accepted accuracy drop below the ANN, in points, on the validation split.")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="timesteps", show_default=True,
              help="auto: fewest timesteps within --max-drop (ties: least energy), or least estimated energy.")
@click.option("--max-timesteps", type=POSITIVE, default=16, show_default=True, help="auto: largest T tried.")
@click.option("--allow-finetune", is_flag=True,
              help="auto: also consider hybrid, which trains the best simulated conversion (per-channel and signed neurons "
                   "included; --finetune-* budget) where no conversion meets --max-drop; without this flag auto never trains.")  # fmt: skip
@click.option("--val-samples", type=POSITIVE, default=10000, show_default=True,
              help="auto: training samples held out for validation, disjoint from the calibration samples.")
@click.option("--search-samples", type=POSITIVE, default=2000, show_default=True,
              help="auto: how many of the validation samples every simulated candidate is scored on; one within budget "
                   "there is confirmed on more of them (up to all) before it is chosen.")
@click.option("--calib-samples", type=POSITIVE, default=2000, show_default=True,
              help="Training samples used to calibrate thresholds (drawn with --calib-seed).")
@click.option("--correction-samples", type=POSITIVE, default=512, show_default=True,
              help="Of those, samples used by the potential/bias correction.")
@click.option("--calib-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threshold", type=click.Choice(THRESHOLD_RULES), default=None,
              help="Threshold rule per activation site [default: the method's].")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=None,
              help="Percentile for --threshold percentile [default: the method's, 99.99].")
@click.option("--per-channel", is_flag=True, help="One threshold per channel instead of per layer.")
@click.option("--v-init", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="Initial membrane as a fraction of the threshold (0 = classic conversion).")
@click.option("--max-spikes", type=POSITIVE, default=None, help="Spikes per step, Γ [default: the method's].")
@click.option("--half-period", type=POSITIVE, default=None, help="bsnn: steps per integrate/fire state, P [default: 1].")
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
@click.option("--target", type=click.Choice(TARGET_NAMES), default=None,
              help="Convert for the library that will run the SNN (docs/export_targets.md): its neuron (reset, start at 0, "
                   "spikes per step, membrane floor), average pooling, thresholds folded into the weights; auto chooses "
                   "within that. nir: no constraint (the exact file).")  # fmt: skip
@click.option("--weight-bits", type=click.IntRange(2, 16), default=None,
              help="Symmetric integer weights of N bits (8: Speck, Loihi), per channel (per layer for targets with one "
                   "threshold per layer), thresholds rescaled to match; needs --target [default: float weights].")  # fmt: skip
@click.option("--timesteps", type=POSITIVE, default=None,
              help="Default simulation length stored with the SNN [default: the T auto chose; 64 for other methods].")
@click.option("--plan-json", type=click.Path(path_type=Path), default=None,
              help="Also write the calibration record (thresholds, corrections) as JSON.")
@click.option("--finetune-epochs", type=POSITIVE, default=None, help="hybrid: passes over the fine-tune samples [default: 2].")
@click.option("--finetune-samples", type=POSITIVE, default=None,
              help="hybrid: train on the first N training samples [default: all of them, one epoch].")
@click.option("--finetune-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="hybrid: Adam learning rate [default: 3e-4].")
@click.option("--resume", is_flag=True,
              help="hybrid: continue the interrupted fine-tune whose per-epoch checkpoint OUT.finetune.ckpt exists "
                   "(same options); it is deleted once OUT is written.")  # fmt: skip
@device_options(precision=False)
def convert_cmd(model, dataset, data_root, download, out, method, target_timesteps, max_drop, objective, max_timesteps,
                allow_finetune, val_samples, search_samples, calib_samples, correction_samples, calib_seed, threshold, percentile,
                per_channel, v_init,
                max_spikes, half_period, synchronous, maxpool, sin_correction, reset, encoding, target, weight_bits, timesteps, plan_json,
                finetune_epochs, finetune_samples, finetune_lr, resume, model_spec, device) -> None:  # fmt: skip
    """Calibrate MODEL on training data and convert it into a soft-reset SNN file.

    MODEL is a spikeconv checkpoint, an ONNX file, a torch.export program (.pt2), or a state_dict
    with --arch or --model-factory; the format is read from the file. See docs/own_model.md.
    With the default --method auto the method, its options and T are chosen on held-out training
    data (docs/low_latency.md, "auto"); the candidates are printed and kept in the SNN file.
    """
    base = convert_from_options(reset=reset, v_init=v_init, encoding=encoding, seed=calib_seed, timesteps=timesteps or 64,
                                maxpool=maxpool, target=target, weight_bits=weight_bits)  # fmt: skip
    common = dict(model=model, out=out, data=source(dataset, data_root, download), calib_samples=calib_samples,
                  calib_seed=calib_seed, plan_json=plan_json, model_spec=model_spec,
                  command=shlex.join(["spikeconv", *sys.argv[1:]]), device=device)  # fmt: skip
    if method == "auto":
        check_auto_flags(target_timesteps=target_timesteps, threshold=threshold, percentile=percentile, per_channel=per_channel,
                         max_spikes=max_spikes, half_period=half_period, sin_correction=sin_correction)  # fmt: skip
        budget = finetune_budget(finetune=allow_finetune, method="auto without --allow-finetune", epochs=finetune_epochs,
                                 samples=finetune_samples, lr=finetune_lr, seed=calib_seed)  # fmt: skip
        auto = auto_from_options(max_drop=max_drop, objective=objective, max_timesteps=max_timesteps, val_samples=val_samples,
                                 search_samples=search_samples, correction_samples=min(correction_samples, calib_samples),
                                 allow_finetune=allow_finetune, finetune=budget)  # fmt: skip
        job = ConvertJob(**common, convert=base, method="auto", auto=auto, auto_timesteps=timesteps is None, resume=resume)
    else:
        if allow_finetune:
            raise click.UsageError(f"--allow-finetune lets --method auto train; --method {method} "
                                   + ("trains anyway" if method == "hybrid" else "never trains"))  # fmt: skip
        settings = settings_from_options(method, base, target_timesteps=target_timesteps or 4,
                                         correction_samples=min(correction_samples, calib_samples),
                                         threshold=threshold, percentile=percentile, per_channel=per_channel,
                                         max_spikes=max_spikes, half_period=half_period,
                                         synchronous=synchronous, sin_correction=sin_correction)  # fmt: skip
        budget = finetune_budget(finetune=settings.finetune, method=method, epochs=finetune_epochs, samples=finetune_samples,
                                 lr=finetune_lr, seed=calib_seed)  # fmt: skip
        job = ConvertJob(**common, calibration=settings.calibration, convert=settings.convert,
                         correction=settings.correction, method=method, finetune=budget,
                         finetune_timesteps=target_timesteps or 4, resume=resume)  # fmt: skip
    result = convert_job(job, progress=progress())
    if result.auto is not None:
        click.echo(format_choice(result.auto))
    sites = len(result.plan.sites)
    chosen = f"auto ({result.auto['chosen']['variant']}, T = {result.auto['chosen']['timesteps']})" if result.auto else method
    click.echo(f"converted {model or model_spec.factory} -> {out} with method {chosen} ({sites} spiking layers; "
               f"{describe_conversion(result)})")  # fmt: skip
    note = target_note(base)
    if note is not None:
        click.echo(f"converted {note}")
    if result.hybrid is not None:
        spent = result.hybrid
        resumed = f", resumed after epoch {spent['resumed_after_epoch']}" if "resumed_after_epoch" in spent else ""
        click.echo(f"fine-tuned at T = {spent['timesteps']} on {spent['samples_seen']} training samples "
                   f"({spent['budget']['epochs']} epoch(s), Adam lr {spent['budget']['lr']:g}{resumed}) "
                   f"in {spent['seconds']:.0f} s")  # fmt: skip
