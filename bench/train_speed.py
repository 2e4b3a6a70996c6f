"""Direct-training speed of spikeconv's trainable neurons against SpikingJelly 2.0 LIF, side by side in one process.

Every runner trains the same architecture (``fmnist-cnn``: 32C5-BN-P2-64C5-BN-P2-1024-BN-10 with a spiking
neuron after every BatchNorm) on the same Fashion-MNIST training batches, T = 4, batch 128, SGD (lr 0.1,
momentum 0.9), cross-entropy on the mean readout, the same number of threads, timed round-robin (each round
runs every runner once, in a rotating order, so load changes on a shared machine hit all of them alike).
A runner's round is ``--batches`` training steps (forward, backward, optimizer step) and one evaluation pass
over ``--eval-batches`` batches of 256 under ``no_grad``; reported are the medians and the time of a
``train-snn`` epoch of 10,000 training and 10,000 evaluation images projected from them
(``10000/128 · step + 10000/256 · eval batch``: the loop of ``spikeconv train-snn`` without its data loading).

Runners:

- spikeconv ``lif``, ``srif --mpr`` and ``mtlif`` (with tdBN, as ``train-snn`` sets for it), each with the fused
  BPTT (one autograd node per neuron for all T steps, ``fused_training = True``) and with the autograd step loop
  (``fused_training = False``: the step loop, ``train-snn``'s default).
- SpikingJelly 2.0 multi-step ``LIFNode`` (τ = 2, V_th = 0.5 and hard reset to 0 like spikeconv's ``lif``; its
  default sigmoid surrogate; torch backend, the one it has on CPU), stateless layers in ``SeqToANNContainer``,
  the image repeated over T.

SpikingJelly is never a spikeconv dependency: unless it imports, the script makes (or reuses) the separate
venv of ``bench/peer_speed.py`` and re-runs itself there.

Usage:
    python bench/train_speed.py [--runners all] [--batches 8] [--eval-batches 4] [--repeats 3] [--threads 2]
        [--json bench/results/train_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_speed import ensure_peer_venv  # noqa: E402

TIMESTEPS, BATCH, EVAL_BATCH, EPOCH_IMAGES = 4, 128, 256, 10_000
NEURONS = {"lif": ("lif", {}), "srif-mpr": ("srif", {"mpr": True}), "mtlif": ("mtlif", {})}


def _spikingjelly_importable() -> bool:
    try:
        import spikingjelly.activation_based  # noqa: F401
    except ImportError:
        return False
    return True


def ann() -> nn.Module:
    from spikeconv.models import build_model

    torch.manual_seed(0)
    return build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10)


def spikeconv_net(neuron: str, fused: bool) -> nn.Module:
    """``train-snn``'s network for ``neuron``: the ANN spikified, tdBN for mtlif."""
    from spikeconv.neurons import trainable_neuron_config
    from spikeconv.training.snn.spikify import spikify
    from spikeconv.training.snn.tdbn import apply_tdbn_

    preset, overrides = NEURONS[neuron]
    config = trainable_neuron_config(preset, **overrides)
    snn = spikify(ann(), config, timesteps=TIMESTEPS)
    if neuron == "mtlif":
        apply_tdbn_(snn, threshold=config.threshold)
    for _, module in snn.neurons():
        module.fused_training = fused
    return snn


class _SpikingJellyNet(nn.Module):
    """The ANN's layers in ``SeqToANNContainer``s, every ReLU a multi-step LIFNode; returns ``[T, N, K]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer, neuron

        parts = [neuron.LIFNode(tau=2.0, v_threshold=0.5, v_reset=0.0, step_mode="m") if isinstance(m, nn.ReLU)
                 else layer.SeqToANNContainer(m) for m in copy.deepcopy(model).children()]  # fmt: skip
        self.body = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self.body)
        return self.body(x.unsqueeze(0).repeat(steps, *([1] * x.dim())))


def runner(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batches: int, eval_batches: int) -> dict[str, Callable]:
    """The training steps and the evaluation pass of one network, as two zero-argument callables."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    state = {"next": 0}

    def train() -> None:
        net.train()
        for _ in range(batches):
            first = state["next"] % (len(images) - BATCH)
            state["next"] += BATCH
            readout = net(images[first : first + BATCH], TIMESTEPS)
            loss = nn.functional.cross_entropy(readout.mean(0), labels[first : first + BATCH])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def evaluate() -> None:
        net.eval()
        with torch.no_grad():
            for b in range(eval_batches):
                net(images[b * EVAL_BATCH : (b + 1) * EVAL_BATCH], TIMESTEPS)

    return {"train": train, "eval": evaluate}


def round_robin(runners: dict[str, dict[str, Callable]], repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of each runner's training steps and evaluation pass; a warm-up round first."""
    names = list(runners)
    for name in names:
        runners[name]["train"]()
        runners[name]["eval"]()
    times = {name: {"train": [], "eval": []} for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for part in ("train", "eval"):
                start = time.perf_counter()
                runners[name][part]()
                times[name][part].append(time.perf_counter() - start)
    return {name: {part: statistics.median(ts) for part, ts in parts.items()} for name, parts in times.items()}


def build_runners(wanted: set[str] | None, images: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> dict:
    makers: dict[str, Callable[[], nn.Module]] = {}
    for neuron in NEURONS:
        makers[f"spikeconv {neuron} fused"] = lambda n=neuron: spikeconv_net(n, fused=True)
        makers[f"spikeconv {neuron} step loop"] = lambda n=neuron: spikeconv_net(n, fused=False)
    makers["SpikingJelly LIF"] = lambda: _SpikingJellyNet(ann())
    return {name: runner(make(), images, labels, args.batches, args.eval_batches)
            for name, make in makers.items() if wanted is None or name in wanted}  # fmt: skip


def report(seconds: dict[str, dict[str, float]], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    rows = {}
    for name, parts in seconds.items():
        step, eval_batch = parts["train"] / args.batches, parts["eval"] / args.eval_batches
        epoch = EPOCH_IMAGES / BATCH * step + EPOCH_IMAGES / EVAL_BATCH * eval_batch
        rows[name] = {"train_step_ms": round(step * 1e3, 1), "eval_batch_ms": round(eval_batch * 1e3, 1), "epoch_s": round(epoch, 1)}
    sj = rows.get("SpikingJelly LIF")
    for name, row in rows.items():
        row["speedup_vs_sj_lif"] = round(sj["epoch_s"] / row["epoch_s"], 2) if sj else None
        loop = rows.get(name.replace(" fused", " step loop"))
        row["speedup_vs_step_loop"] = round(loop["epoch_s"] / row["epoch_s"], 2) if loop and name.endswith(" fused") else None
    print(f"\nT = {TIMESTEPS}, batch {BATCH}, {args.threads} threads, load {os.getloadavg()[0]:.2f}")
    print("| runner | train step (ms) | eval batch of 256 (ms) | projected epoch (s) | x SpikingJelly LIF | x step loop |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['train_step_ms']:,.1f} | {row['eval_batch_ms']:,.1f} | {row['epoch_s']:,.1f} | "
              f"{row['speedup_vs_sj_lif']} | {row['speedup_vs_step_loop'] or ''} |", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default="all", help="runner names separated by semicolons, or 'all'")
    parser.add_argument("--batches", type=int, default=8, help="training steps per runner per round")
    parser.add_argument("--eval-batches", type=int, default=4, help="evaluation batches of 256 per runner per round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-peers", action="store_true", help="spikeconv runners only (no SpikingJelly venv)")
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/spikeconv-peer-venv"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.no_peers and not _spikingjelly_importable():
        ensure_peer_venv(args.peer_venv)
    torch.set_num_threads(args.threads)
    import spikeconv

    needed = max(args.batches * BATCH * (args.repeats + 1) + BATCH, args.eval_batches * EVAL_BATCH)
    images, labels = spikeconv.load_dataset("fashion-mnist", split=spikeconv.Split.TRAIN, limit=needed).as_tensors()
    wanted = None if args.runners == "all" else {name.strip() for name in args.runners.split(";")}
    if args.no_peers:
        wanted = {n for n in (wanted or {f"spikeconv {k} {m}" for k in NEURONS for m in ("fused", "step loop")})}
        wanted.discard("SpikingJelly LIF")
    load = os.getloadavg()
    start = datetime.now(UTC)
    rows = report(round_robin(build_runners(wanted, images, labels.long(), args), args.repeats), args)
    record = {"start_utc": start.isoformat(timespec="seconds"), "end_utc": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads",
              "load_average_start": [round(v, 2) for v in load], "load_average_end": [round(v, 2) for v in os.getloadavg()],
              "torch": torch.__version__, "settings": {k: str(v) for k, v in vars(args).items()}, "results": rows}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
