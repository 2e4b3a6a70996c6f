"""Where a converted network's error at T comes from, without simulating it (rate_code_ann).

For one of the random-weight networks of ``random_net_agreement.py`` (same seeds, synthetic data
and BatchNorm randomisation), calibrated with one threshold rule, against the ANN on the probes:

- ``clip_only``: the ANN with every activation clipped at its threshold (the code's range alone);
- ``rate_code``: every activation quantised to the T-step rate code (range and resolution);
- ``per_site``: the relative logit error when only that one site is quantised (the others
  clipped), i.e. how much each layer's resolution costs at the output;
- ``scale``: agreement when every threshold is multiplied by a common factor (is the per-layer
  rule's trade-off between clipping and resolution also right for the whole network?).

Usage:
    OMP_NUM_THREADS=1 python bench/rate_code_diagnosis.py --net resnet34 --threshold mse256 --steps 256 --out J.json
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import torch
from random_net_agreement import agreement, build_net, randomise_batchnorm_, synthetic_images, threshold_rule

from spikeconv.calibration import CalibrationConfig, calibrate, plan_of, prepare
from spikeconv.convert import RateCodeQuantizer, rate_code_ann
from spikeconv.ingest import ingest_module

EXACT = 1 << 20  # a code this long is the clip alone (error ≤ θ/2^20)


def logits(graph, probes: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([graph(chunk) for chunk in probes.split(batch)])


def with_steps(graph, steps_of_site: dict[str, int]):
    """Set each site's code length in a rate_code_ann graph (in place) and return it."""
    for site, steps in steps_of_site.items():
        quantizer = graph.get_submodule(site)
        assert isinstance(quantizer, RateCodeQuantizer)
        quantizer.timesteps = steps
    return graph


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    centred = lambda z: z - z.mean(1, keepdim=True)  # noqa: E731
    return ((centred(out) - centred(ref)).norm(dim=1) / centred(ref).norm(dim=1).clamp_min(1e-12)).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="resnet34")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threshold", default="mse256")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--scales", default="0.7,0.8,0.9,1.0,1.1,1.25,1.5")
    parser.add_argument("--calib", type=int, default=512)
    parser.add_argument("--probes", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    calib = synthetic_images(args.calib, args.size, seed=args.seed + 1)
    probes = synthetic_images(args.probes, args.size, seed=args.seed + 2)
    model = randomise_batchnorm_(build_net(args.net, args.seed, 10), calib[:256], seed=args.seed + 3)
    rule = threshold_rule(args.threshold, False)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=rule)), calib.split(32))
    sites = plan_of(calibrated).sites
    with torch.inference_mode():
        ann = logits(model, probes, args.batch)
        graph = rate_code_ann(calibrated, args.steps)
        coded = logits(graph, probes, args.batch)
        clipped = logits(with_steps(graph, dict.fromkeys(sites, EXACT)), probes, args.batch)
        per_site = {}
        for site in sites:
            one = logits(with_steps(graph, {**dict.fromkeys(sites, EXACT), site: args.steps}), probes, args.batch)
            per_site[site] = relative_error(one, clipped)
            print(f"{site:32s} {per_site[site]:.4f}", flush=True)
        scales = {}
        for factor in (float(s) for s in args.scales.split(",")):
            scaled = rate_code_ann(calibrated, args.steps)
            for site in sites:
                scaled.get_submodule(site).threshold.mul_(factor)
            scales[str(factor)] = agreement(logits(scaled, probes, args.batch), ann)
    record = {
        "date": date.today().isoformat(), "net": args.net, "input": [3, args.size, args.size],
        "threshold": args.threshold, "steps": args.steps, "settings": {k: str(v) for k, v in vars(args).items()},
        "clip_only": agreement(clipped, ann), "rate_code": agreement(coded, ann),
        "per_site_relative_error": per_site, "scale": scales,
    }  # fmt: skip
    print(json.dumps({k: record[k] for k in ("clip_only", "rate_code", "scale")}, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
