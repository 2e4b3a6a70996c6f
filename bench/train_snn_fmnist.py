"""Direct SNN training of the Fashion-MNIST CNN (32C5-P2-64C5-P2-1024): accuracy and epoch time.

Trains ``fmnist-cnn`` (Xu, Liu & Yang's Table 5 network; the paper reports 93.08 % with the
multi-threshold LIF at T = 2 after 200 epochs) on the full 60,000 training images with the chosen
neuron, then scores the full 10,000-image test set at every t = 1..T. Settings per neuron family:

- ``mtlif`` (multi-threshold LIF, V_th 10, Γ 15, comb-max surrogate a = 1, b = 20): the paper's
  Adam, lr 0.005, per-step MSE loss; tdBN on (with plain BN no neuron reaches V_th = 10 at init).
- ``srif`` / ``if`` / ``lif`` (InfLoR and its ablations; ``--mpr`` adds the rectifier): SGD with
  momentum 0.9, lr 0.1, cosine to 0, cross-entropy on the mean readout.

All with batch 128 and random-shift augmentation (``--augment none`` to disable). The per-epoch
wall time is training only (evaluation runs once, after the last epoch, unless
``--eval-every-epoch``).

Usage:
    nice -n 10 python bench/train_snn_fmnist.py --neuron mtlif --timesteps 2 --epochs 1 --out-json /tmp/mtlif.json
    python bench/train_snn_fmnist.py --neuron srif --mpr --timesteps 4 --epochs 100 \\
        --checkpoint /tmp/srif.pt --resume --out-json /tmp/srif.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from spikeconv.data import Split, dataset_info, load_dataset
from spikeconv.evaluation import timestep_accuracy_curve
from spikeconv.models import build_model
from spikeconv.neurons import available_trainable_neurons, trainable_neuron_config
from spikeconv.training import Augment, Optimizer, Schedule, SnnLoss, SnnTrainConfig, SnnTrainOutputs, train_snn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neuron", choices=available_trainable_neurons(), default="mtlif")
    parser.add_argument("--mpr", action="store_true", help="membrane potential rectifier (binary neurons only)")
    parser.add_argument("--timesteps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None, help="default: 0.005 (mtlif, Adam) or 0.1 (SGD)")
    parser.add_argument("--augment", choices=Augment.names(), default="shift")
    parser.add_argument("--loss", choices=SnnLoss.names(), default=None, help="default: per-step-mse (mtlif), cross-entropy")
    parser.add_argument("--no-tdbn", action="store_true", help="keep BN weights at 1 for mtlif")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-train", type=int, default=None, help="first N training images only (quick checks)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path, default=None, help="rewritten after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    parser.add_argument("--eval-every-epoch", action="store_true")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> SnnTrainConfig:
    multi = args.neuron == "mtlif"
    neuron = trainable_neuron_config(args.neuron) if multi else trainable_neuron_config(args.neuron, mpr=args.mpr)
    if multi and args.mpr:
        raise SystemExit("--mpr applies to the binary neurons (if, lif, srif), not mtlif")
    loss = SnnLoss.from_name(args.loss) if args.loss else (SnnLoss.PER_STEP_MSE if multi else SnnLoss.CROSS_ENTROPY)
    return SnnTrainConfig(
        neuron=neuron,
        timesteps=args.timesteps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else (0.005 if multi else 0.1),
        optimizer=Optimizer.ADAM if multi else Optimizer.SGD,
        schedule=Schedule.COSINE,
        loss=loss,
        tdbn=multi and not args.no_tdbn,
        augment=Augment.from_name(args.augment),
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = make_config(args)
    info = dataset_info("fashion-mnist")
    train = load_dataset("fashion-mnist", split=Split.TRAIN, limit=args.limit_train)
    test = load_dataset("fashion-mnist", split=Split.TEST)
    arch = {"name": "fmnist-cnn", "input_shape": list(info.sample_shape), "num_classes": info.num_classes,
            "mean": list(info.mean), "std": list(info.std)}  # fmt: skip
    torch.manual_seed(args.seed)
    model = build_model("fmnist-cnn", input_shape=info.sample_shape, num_classes=info.num_classes, mean=info.mean, std=info.std)
    model = model.to(args.device)
    outputs = SnnTrainOutputs(checkpoint=args.checkpoint, arch=arch, metadata={"dataset": "fashion-mnist", "command": " ".join(sys.argv)})
    start = time.perf_counter()
    result = train_snn(model, train, config=config, eval_data=test if args.eval_every_epoch else None, outputs=outputs,
                       resume=args.resume, progress=True,
                       on_epoch_end=lambda r: print(f"epoch {r.epoch}: loss {r.train_loss:.4f}, train {r.train_accuracy:.2f}%, "
                                                    f"{r.seconds:.1f} s", flush=True))  # fmt: skip
    train_seconds = time.perf_counter() - start
    curve = timestep_accuracy_curve(result.snn, test, timesteps=args.timesteps, device=args.device, progress=False)
    report = {
        "benchmark": "train_snn_fmnist",
        "date": date.today().isoformat(),
        "command": " ".join(sys.argv),
        "device": args.device if args.device != "cpu" else f"cpu ({platform.processor() or platform.machine()})",
        "threads": args.threads,
        "torch": str(torch.__version__),
        "config": config.to_dict(),
        "train_samples": len(train),
        "test_samples": curve.num_samples,
        "test_accuracy": curve.accuracy_at(args.timesteps),
        "test_accuracy_by_t": dict(zip(curve.timesteps, curve.accuracy, strict=True)),
        "epochs": [record.to_dict() for record in result.history.records],
        "epoch_seconds_mean": result.history.mean_epoch_seconds,
        "total_seconds": train_seconds,
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.neuron}{'+mpr' if args.mpr else ''} T={args.timesteps}: test {report['test_accuracy']:.2f}% after "
          f"{len(result.history.records)} epochs, {report['epoch_seconds_mean']:.1f} s/epoch")  # fmt: skip


if __name__ == "__main__":
    main()
