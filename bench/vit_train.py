"""Train a small torchvision ``VisionTransformer`` on Fashion-MNIST as a user would, and export it for ``spikeconv convert``.

The network of issue 29: torchvision's own ``VisionTransformer`` (class token, learned position
embedding, pre-LayerNorm encoder blocks with ``nn.MultiheadAttention`` and a GELU MLP), one input
channel, inputs normalised *outside* the model (the user passes ``--mean 0.2860 --std 0.3530`` to
convert), trained briefly on CPU. It is written as a weights-only ``torch.export`` program
(``.pt2``), as ONNX by both exporters (legacy TorchScript and dynamo) and as a ``state_dict`` with
its builder's arguments in the JSON record.

Recipe: AdamW (lr 1e-3, weight decay 0.05, betas 0.9/0.999), 2 % linear warm-up then cosine decay,
batch 128, label smoothing 0.1, random shifts of up to 2 pixels and horizontal flips; test accuracy on
the full 10,000 images, seed fixed.

Usage:
    nice -n 5 python bench/vit_train.py --patch 7 --layers 4 --hidden 64 --epochs 10 --out-dir bench/results/vit
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from datetime import date
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from spikeconv.data import Split, load_dataset

MEAN, STD = 0.2860, 0.3530


def build(*, patch: int, layers: int, hidden: int, heads: int, mlp: int) -> nn.Module:
    """torchvision's ViT for one-channel 28x28 images (its stem is the patch-embedding convolution)."""
    model = torchvision.models.VisionTransformer(image_size=28, patch_size=patch, num_layers=layers, num_heads=heads,
                                                 hidden_dim=hidden, mlp_dim=mlp, num_classes=10)  # fmt: skip
    model.conv_proj = nn.Conv2d(1, hidden, kernel_size=patch, stride=patch)
    return model


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift of up to 2 pixels (zero padding) and horizontal flip, per sample (one gather for the batch)."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=generator)
    dy = torch.randint(0, 5, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = dx[:, None] + torch.arange(28)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(28)[None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def accuracy(model: nn.Module, data) -> float:
    """Top-1 accuracy (%) of ``model`` on normalised ``data``."""
    model.eval()
    hits = 0
    with torch.inference_mode():
        for x, y in torch.utils.data.DataLoader(data, batch_size=500):
            hits += int((model((x - MEAN) / STD).argmax(1) == y).sum())
    return 100.0 * hits / len(data)


def train(model: nn.Module, epochs: int, seed: int, batch: int, lr: float) -> dict:
    """Train ``model`` in place; returns the training record."""
    train_set = load_dataset("fashion-mnist", split=Split.TRAIN)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, generator=generator, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    total = epochs * len(loader)
    warmup = max(1, total // 50)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    record = {"epochs": epochs, "seed": seed, "batch": batch, "lr": lr, "epoch_seconds": []}
    for epoch in range(epochs):
        model.train()
        started = time.perf_counter()
        for x, y in loader:
            x = (_augment(x, generator) - MEAN) / STD
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        record["epoch_seconds"].append(round(time.perf_counter() - started, 1))
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {record['epoch_seconds'][-1]} s", flush=True)
    model.eval()
    return record


def export(model: nn.Module, out_dir: Path, name: str) -> list[str]:
    """The trained model as ``.pt2``, ONNX from both exporters and a state_dict; returns the file names."""
    example = torch.zeros(1, 1, 28, 28)
    names = [f"{name}.pt2", f"{name}.onnx", f"{name}-dynamo.onnx", f"{name}.state.pt"]
    torch.export.save(torch.export.export(model, (example,)), out_dir / names[0])
    torch.onnx.export(model, example, out_dir / names[1], dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    torch.onnx.export(model, example, out_dir / names[2], dynamo=True, input_names=["x"], external_data=False)
    torch.save(model.state_dict(), out_dir / names[3])
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, choices=(4, 7), default=7)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--mlp", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--name", default="vit")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    shape = {"patch": args.patch, "layers": args.layers, "hidden": args.hidden, "heads": args.heads, "mlp": args.mlp}
    model = build(**shape)
    record = {"model": "torchvision.models.VisionTransformer", "builder": shape}
    record.update(train(model, args.epochs, args.seed, args.batch_size, args.lr))
    record["test_accuracy"] = round(accuracy(model, load_dataset("fashion-mnist", split=Split.TEST)), 2)
    record["files"] = export(model, args.out_dir, args.name)
    record.update({"mean": MEAN, "std": STD, "machine": platform.platform(), "date": str(date.today()),
                   "threads": torch.get_num_threads()})  # fmt: skip
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
