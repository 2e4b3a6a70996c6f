"""SNN/ANN agreement of converted random-weight reference networks as T grows (issue 3's check).

For torchvision's vgg16_bn, resnet18 and resnet34 (``weights=None``) and spikeconv's CIFAR
ResNet20 and VGG16, all with 10 classes and seeded random weights:

1. Randomise BatchNorm so that folding is not the identity: γ ~ U(0.5, 1.5), β ~ N(0, 0.1²),
   then set the running statistics from a few synthetic batches in train mode (cumulative
   average), so every BN normalises its input as a trained network's would.
2. Ingest, calibrate on ``--calib`` synthetic images (default rule: the library default, the
   99.99th percentile per layer), convert (soft reset, v_init = 0.5, spiking max-pool).
3. Simulate ``--probes`` other synthetic images once for ``max(T)`` steps; at each reported T the
   SNN logits are the mean readout current over the first T steps.
4. For reference, the same metrics for the ideal T-step rate code (``rate_code_ann``: every
   activation quantised to the count an IF neuron with steady input emits in T steps), which
   separates the error a T-step code cannot avoid from the simulation's timing error.

Metrics per T, against the ANN's logits on the same probes:

- ``cos``: mean over samples of the cosine similarity of the per-sample mean-centred logits
  (each sample's logit vector minus its mean over classes);
- ``top1``: fraction of samples whose SNN argmax equals the ANN argmax;
- ``cos_dev``: a stricter diagnostic: cosine after removing the probe-set mean logit vector,
  i.e. agreement on what distinguishes the samples (a random network gives all inputs a similar
  logit vector, which makes ``cos`` easy).

The JSON also records ``ann_margin``: quantiles of the ANN's top-1 − top-2 logit gap relative to
the centred logit norm, which bounds how much SNN error top-1 agreement tolerates.

Synthetic images: per sample a 3x8x8 uniform image, bilinearly upsampled to the input size,
plus N(0, 0.1²) pixel noise, then standardised with mean 0.5 and std 0.25 (about [-2, 2]).
Calibration and probe sets use different seeds.

Usage:
    nice -n 10 python bench/random_net_agreement.py --out /tmp/random_nets.json [--nets resnet20,vgg16]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, MseThreshold, PercentileThreshold, calibrate, prepare
from spikeconv.convert import BistableConfig, ConvertConfig, MaxPoolMode, NeuronKind, convert, rate_code_ann
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model
from spikeconv.neurons import SinCorrection

NETS = ("vgg16_bn", "resnet18", "resnet34", "resnet20", "vgg16")
STEPS = (16, 32, 64, 128, 256)


def build_net(name: str, seed: int, num_classes: int) -> nn.Module:
    """A seeded random-weight network (torchvision's own init for torchvision nets)."""
    torch.manual_seed(seed)
    if name in ("vgg16_bn", "resnet18", "resnet34"):
        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    return build_model(name, input_shape=(3, 32, 32), num_classes=num_classes)


def synthetic_images(count: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random images with pixel noise, standardised to roughly [-2, 2]."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, 8, 8, generator=gen)
    images = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    images = images + 0.1 * torch.randn(images.shape, generator=gen)
    return (images - 0.5) / 0.25


def randomise_batchnorm_(model: nn.Module, images: torch.Tensor, seed: int, batch: int = 64) -> nn.Module:
    """Random BN affine parameters, then running statistics measured on ``images`` (train mode)."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    with torch.no_grad():
        for bn in norms:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches below
        model.train()
        for start in range(0, images.shape[0], batch):
            model(images[start : start + batch])
    return model.eval()


def agreement(snn_logits: torch.Tensor, ann_logits: torch.Tensor) -> dict:
    """``cos``, ``top1`` and ``cos_dev`` (see the module docstring) of ``[N, K]`` logits."""
    snn_c = snn_logits - snn_logits.mean(1, keepdim=True)
    ann_c = ann_logits - ann_logits.mean(1, keepdim=True)
    cos = F.cosine_similarity(snn_c, ann_c, dim=1, eps=1e-12).mean().item()
    top1 = (snn_logits.argmax(1) == ann_logits.argmax(1)).float().mean().item()
    snn_d = snn_c - snn_c.mean(0, keepdim=True)
    ann_d = ann_c - ann_c.mean(0, keepdim=True)
    cos_dev = F.cosine_similarity(snn_d, ann_d, dim=1, eps=1e-12).mean().item()
    return {"cos": cos, "top1": top1, "cos_dev": cos_dev}


def margin_quantiles(ann_logits: torch.Tensor) -> dict:
    """Quantiles of the ANN's top-1 − top-2 logit gap, relative to each sample's centred logit norm.

    Top-1 agreement needs the SNN's logit error to stay below this gap, so small gaps (common in
    random networks) make ``top1`` much harder than ``cos``.
    """
    centred = ann_logits - ann_logits.mean(1, keepdim=True)
    top = centred.topk(2, dim=1).values
    gap = (top[:, 0] - top[:, 1]) / centred.norm(dim=1).clamp_min(1e-12)
    levels = torch.tensor([0.1, 0.25, 0.5])
    return {f"q{int(100 * q)}": v for q, v in zip(levels.tolist(), gap.quantile(levels).tolist(), strict=True)}


def snn_logits_at(snn, probes: torch.Tensor, steps: tuple[int, ...], batch: int) -> dict[int, torch.Tensor]:
    """Mean readout current over the first T steps, for every T in ``steps``, from one run."""
    total = max(steps)
    pieces: dict[int, list[torch.Tensor]] = {t: [] for t in steps}
    for start in range(0, probes.shape[0], batch):
        cumulative = snn(probes[start : start + batch], total).cumsum(0)
        for t in steps:
            pieces[t].append(cumulative[t - 1] / t)
    return {t: torch.cat(parts) for t, parts in pieces.items()}


def threshold_rule(text: str, per_channel: bool):
    """``max``, ``pQ`` (Q-th percentile) or ``mseT`` (MMSE threshold for a T-step rate code)."""
    if text == "max":
        return MaxThreshold(per_channel=per_channel)
    if text.startswith("mse"):
        return MseThreshold(int(text.removeprefix("mse")), per_channel=per_channel)
    return PercentileThreshold(float(text.removeprefix("p")), per_channel=per_channel)


def run_net(name: str, args) -> dict:
    size = args.size
    calib = synthetic_images(args.calib, size, seed=args.seed + 1)
    probes = synthetic_images(args.probes, size, seed=args.seed + 2)
    model = randomise_batchnorm_(build_net(name, args.seed, args.classes), calib[:256], seed=args.seed + 3)
    started = time.perf_counter()
    rule = threshold_rule(args.threshold, args.per_channel)
    prepared = prepare(ingest_module(model), CalibrationConfig(default=rule))
    calibrated = calibrate(prepared, calib.split(args.batch))
    config = ConvertConfig(v_init=args.v_init, time_chunk=args.time_chunk, maxpool=MaxPoolMode.from_name(args.maxpool),
                           sin_correction=SinCorrection.from_name(args.sin_correction))
    if args.bistable:  # the BSNN reconstruction (docs/low_latency.md), with or without synchronous delays
        config = replace(config, neuron=NeuronKind.BISTABLE,
                         bistable=BistableConfig(args.half_period, args.spikes_per_step, not args.no_synchronous))
    snn = convert(calibrated, config)
    steps = args.steps
    with torch.inference_mode():
        ann = torch.cat([model(chunk) for chunk in probes.split(args.batch)])
        per_t = snn_logits_at(snn, probes, steps, args.batch)
        # the ideal rate code at T (no simulation): what the SNN's resolution alone allows
        coded = {t: torch.cat([rate_code_ann(calibrated, t, config)(c) for c in probes.split(args.batch)]) for t in steps}
    rows = {t: {**agreement(per_t[t], ann), "rate_code": agreement(coded[t], ann)} for t in steps}
    return {
        "net": name,
        "input": [3, size, size],
        "parameters": sum(p.numel() for p in model.parameters()),
        "neurons": sum(1 for _, n in snn.neurons() if type(n).__name__ in ("IFNeuron", "BistableIFNeuron")),
        "convert": config.to_dict(),
        "spiking_maxpools": snn.metadata["maxpool"]["spiking"],
        "seconds": round(time.perf_counter() - started, 1),
        "ann_margin": margin_quantiles(ann),
        "by_T": {str(t): rows[t] for t in steps},
    }


def _cell(row: dict) -> str:
    return f"{row['cos']:.4f} / {100 * row['top1']:.1f}% / {row['cos_dev']:.3f}"


def markdown(results: list[dict]) -> str:
    steps = sorted({int(t) for r in results for t in r["by_T"]})
    lines = ["| net | input | T=" + " | T=".join(str(t) for t in steps) + " |", "|---|---|" + "---|" * len(steps)]
    for r in results:
        cells = [_cell(r["by_T"][str(t)]) if str(t) in r["by_T"] else "" for t in steps]
        lines.append(f"| {r['net']} | {'x'.join(map(str, r['input']))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--size", type=int, default=32, help="input height = width")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--calib", type=int, default=512)
    parser.add_argument("--probes", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="probe/calibration batch size")
    parser.add_argument("--time-chunk", type=int, default=16)
    parser.add_argument("--threshold", default="p99.99", help="max, pQ (Q-th percentile) or mseT (MMSE for a T-step code)")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--v-init", type=float, default=0.5)
    parser.add_argument("--maxpool", default="spiking", choices=[m.value for m in MaxPoolMode])
    parser.add_argument("--sin-correction", default="none", choices=[m.value for m in SinCorrection],
                        help="retraction of spikes of inactivated neurons (signed: negative spikes)")
    parser.add_argument("--bistable", action="store_true", help="BSNN reconstruction: bistable neurons")
    parser.add_argument("--half-period", type=int, default=1)
    parser.add_argument("--spikes-per-step", type=int, default=2)
    parser.add_argument("--no-synchronous", action="store_true", help="bistable without synchronous delays at joins")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="reported T values (one run of max(T) steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    args.steps = tuple(sorted({int(t) for t in args.steps.split(",")}))
    torch.set_num_threads(args.threads)
    results = []
    for name in args.nets.split(","):
        results.append(run_net(name, args))
        last = results[-1]["by_T"][str(args.steps[-1])]
        print(f"{name}: T={args.steps[-1]} cos={last['cos']:.4f} top1={last['top1']:.3f} "
              f"(rate-code ANN: top1={last['rate_code']['top1']:.3f}; {results[-1]['seconds']} s)", flush=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    record = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
              "torch": torch.__version__, "settings": {**settings, "out": str(args.out)}, "results": results}  # fmt: skip
    print("cell = cos / top-1 / cos_dev")
    print(markdown(results))
    print("ideal rate code at each T (rate_code_ann, no simulation):")
    print(markdown([{**r, "by_T": {t: row["rate_code"] for t, row in r["by_T"].items()}} for r in results]))
    if args.out is not None:
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
