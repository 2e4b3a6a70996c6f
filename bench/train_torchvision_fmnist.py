"""Train stock torchvision networks on Fashion-MNIST as a user would, and export them for ``spikeconv convert``.

The networks of issue 27's check: torchvision's own builders with a one-channel stem (``resnet18``,
``mobilenet_v2`` at width 0.5, ``vgg11_bn``, ...), inputs normalised *outside* the model (the user passes
``--mean 0.2860 --std 0.3530`` to convert), trained briefly on CPU. Each is written as a weights-only
``torch.export`` program (``.pt2``) and as ONNX by both exporters (legacy TorchScript and dynamo).

Recipe (docs/benchmarks.md, "Memory on deep networks, and auto's default on them"): SGD with Nesterov momentum 0.9, weight decay
5e-4, one-cycle learning rate peaking at 0.1 (ResNet/VGG) or 0.05 (MobileNetV2), batch 128, label
smoothing 0.1, random shifts of up to 2 pixels and horizontal flips; test accuracy on the full 10,000
images, seed fixed.

Usage:
    nice -n 5 python bench/train_torchvision_fmnist.py --arch resnet18 --epochs 4 --out-dir bench/results/torchvision
    python bench/train_torchvision_fmnist.py --arch mobilenet_v2 --epochs 4 --out-dir /tmp/tv
"""

from __future__ import annotations

import argparse
import json
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


def _one_channel_stem(model: nn.Module) -> nn.Module:
    """Replace the first convolution by one with a single input channel and otherwise the same geometry."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            stem = nn.Conv2d(1, module.out_channels, module.kernel_size, module.stride, module.padding,
                             bias=module.bias is not None)  # fmt: skip
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], stem)
            return model
    raise ValueError("no convolution found")


def resnet_mp(num_classes: int = 10) -> nn.Module:
    """A small residual net with max pooling (about 150k parameters) from torchvision's BasicBlock:
    ``32C3-BN-ReLU-M2``, BasicBlock(32), BasicBlock(32→64, stride 2), BasicBlock(64), global average pool, FC."""
    from torchvision.models.resnet import BasicBlock

    down = nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, bias=False), nn.BatchNorm2d(64))
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         BasicBlock(32, 32), BasicBlock(32, 64, stride=2, downsample=down), BasicBlock(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))  # fmt: skip


BUILDERS = {
    "resnet-mp": lambda: resnet_mp(num_classes=10),
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "resnet34": lambda: torchvision.models.resnet34(num_classes=10),
    "resnet50": lambda: torchvision.models.resnet50(num_classes=10),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5),
    "vgg11_bn": lambda: torchvision.models.vgg11_bn(num_classes=10),
    "densenet121": lambda: torchvision.models.densenet121(num_classes=10),
}
PEAK_LR = {"mobilenet_v2": 0.05}


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift of up to 2 pixels (zero padding) and horizontal flip, per sample."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=generator)
    dy = torch.randint(0, 5, (n,), generator=generator)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def _accuracy(model: nn.Module, data) -> float:
    model.eval()
    hits = 0
    with torch.inference_mode():
        for x, y in torch.utils.data.DataLoader(data, batch_size=500):
            hits += int((model((x - MEAN) / STD).argmax(1) == y).sum())
    return 100.0 * hits / len(data)


def train(arch: str, epochs: int, seed: int, batch: int) -> tuple[nn.Module, dict]:
    torch.manual_seed(seed)
    model = _one_channel_stem(BUILDERS[arch]())
    train_set = load_dataset("fashion-mnist", split=Split.TRAIN)
    test_set = load_dataset("fashion-mnist", split=Split.TEST)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, generator=generator, drop_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=PEAK_LR.get(arch, 0.1), total_steps=epochs * len(loader))
    record = {"arch": arch, "epochs": epochs, "seed": seed, "batch": batch, "epoch_seconds": [], "peak_lr": PEAK_LR.get(arch, 0.1)}
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
        print(f"{arch} epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {record['epoch_seconds'][-1]} s", flush=True)
    record["test_accuracy"] = round(_accuracy(model, test_set), 2)
    return model.eval(), record


def export(model: nn.Module, out_dir: Path, arch: str) -> list[str]:
    """The trained model as ``.pt2`` and as ONNX from both exporters; returns the file names."""
    example = torch.zeros(1, 1, 28, 28)
    names = [f"{arch}.pt2", f"{arch}.onnx", f"{arch}-dynamo.onnx"]
    torch.export.save(torch.export.export(model, (example,)), out_dir / names[0])
    torch.onnx.export(model, example, out_dir / names[1], dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    torch.onnx.export(model, example, out_dir / names[2], dynamo=True, input_names=["x"], external_data=False)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(BUILDERS), required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    model, record = train(args.arch, args.epochs, args.seed, args.batch_size)
    record["files"] = export(model, args.out_dir, args.arch)
    record.update({"mean": MEAN, "std": STD, "machine": platform.platform(), "date": str(date.today()),
                   "threads": torch.get_num_threads()})  # fmt: skip
    (args.out_dir / f"{args.arch}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
