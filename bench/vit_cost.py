"""What a converted ViT costs to simulate: time against T ANN forwards, and its MACs and ACs per image.

For an SNN file made by ``spikeconv convert`` and the ANN it was converted from (the same file
``curve`` rebuilds), on the first ``--images`` Fashion-MNIST test images in batches of ``--batch``:

- wall time of the ANN forward and of the SNN simulated for ``T`` steps (the median of ``--repeats``
  rounds, ANN and SNN alternating so that load changes hit both), and the ratio
  ``SNN time / (T × ANN time)``;
- the operations per image of one counted simulation (``spikeconv.evaluation.count_operations``, the
  counters ``compare`` uses): accumulates (ACs: spike-driven synapses, the spike-equivalent
  operators' running sums), multiply-accumulates (MACs: the patch embedding, every LayerNorm, GELU,
  softmax and activation product at every step) and their shares, per kind of layer, beside the
  ANN's MACs, and the energy estimate of ``compare`` (0.9 pJ per AC, 4.6 pJ per MAC); like
  ``compare``, layers on the time-invariant input (the patch embedding, the first LayerNorm) are
  charged at every step, and ``snn_static_once`` charges them once instead.

Usage:
    python bench/vit_cost.py vit-auto.snn.pt --timesteps 16 --images 1000 --json bench/results/vit/cost.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from spikeconv.data import Split, load_dataset
from spikeconv.evaluation import EnergyModel, count_operations
from spikeconv.workflows import load_snn


def _images(count: int) -> torch.Tensor:
    test = load_dataset("fashion-mnist", split=Split.TEST)
    return torch.stack([test[i][0] for i in range(count)])


def _timed(fn, batches) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for x in batches:
            fn(x)
    return time.perf_counter() - start


def _by_kind(layers: dict) -> dict:
    kinds: dict[str, dict[str, float]] = {}
    for layer in layers.values():
        entry = kinds.setdefault(layer["kind"], {"ac": 0.0, "mac": 0.0})
        entry["ac"] += layer["ac"]
        entry["mac"] += layer["mac"]
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snn", type=Path)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    loaded = load_snn(args.snn)
    snn, ann = loaded.snn.eval(), loaded.ann.eval()  # the ANN the SNN was converted from, with its preprocessing
    batches = list(_images(args.images).split(args.batch))
    t = args.timesteps
    ann_times, snn_times = [], []
    for _ in range(args.repeats):
        ann_times.append(_timed(ann, batches))
        snn_times.append(_timed(lambda x: snn(x, t), batches))
    ann_s, snn_s = statistics.median(ann_times), statistics.median(snn_times)
    with count_operations(snn) as counter, torch.inference_mode():
        for x in batches:
            snn(x, t)
    totals = counter.result().totals(t)
    with count_operations(ann) as ann_counter, torch.inference_mode():
        for x in batches:
            ann(x)
    ann_totals = ann_counter.result().totals()
    energy = EnergyModel()
    record = {
        "snn": str(args.snn), "timesteps": t, "images": args.images, "batch": args.batch, "repeats": args.repeats,
        "ann_seconds": round(ann_s, 3), "snn_seconds": round(snn_s, 3), "ratio_to_T_ann_forwards": round(snn_s / (t * ann_s), 3),
        "snn_ac_per_image": totals["ac"], "snn_mac_per_image": totals["mac"],
        "mac_share_of_operations": round(totals["mac"] / (totals["mac"] + totals["ac"]), 4),
        "snn_static_ac_per_image": totals["static_ac"], "snn_static_mac_per_image": totals["static_mac"],
        "snn_by_kind": _by_kind(totals["layers"]), "ann_mac_per_image": ann_totals["mac"], "ann_by_kind": _by_kind(ann_totals["layers"]),
        "spike_rate": totals["spike_rate"],
        "energy_uj": {"snn": energy.energy_pj(ac=totals["ac"], mac=totals["mac"]) / 1e6,
                      "snn_static_once": energy.energy_pj(ac=totals["ac"] - totals["static_ac"] * (1 - 1 / t),
                                                          mac=totals["mac"] - totals["static_mac"] * (1 - 1 / t)) / 1e6,
                      "ann": energy.energy_pj(ac=ann_totals["ac"], mac=ann_totals["mac"]) / 1e6, "formula": energy.formula},
        "machine": platform.platform(), "threads": torch.get_num_threads(), "date": str(date.today()),
    }  # fmt: skip
    text = json.dumps(record, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
