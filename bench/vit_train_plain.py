"""A ViT trained the plain way, unlike ``bench/vit_train.py``: a held-out check of ``--method auto`` on Transformers.

torchvision's ``VisionTransformer`` (patch 7, 6 blocks, hidden 96, 4 heads, MLP 192, one input channel), inputs
normalised to ``(x - 0.5) / 0.5`` outside the model, Adam at 5e-4, batch 128, no label smoothing, no augmentation,
no schedule: it overfits (94 % on training images, 88 % on the test set), the case where auto's validation split,
made of training images, is most optimistic. Written as ``.pt2`` and ONNX from both exporters.

Usage (about 20 minutes on one thread):
    python bench/vit_train_plain.py --epochs 12 --out-dir /tmp/vitx
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from spikeconv.data import Split, load_dataset


def _tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("fashion-mnist", split=split)
    images, labels = zip(*(data[i] for i in range(len(data))), strict=True)
    return (torch.stack(images) - 0.5) / 0.5, torch.tensor(labels)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((torch.cat([model(x[i : i + 1000]) for i in range(0, len(x), 1000)]).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = torchvision.models.VisionTransformer(image_size=28, patch_size=7, num_layers=6, num_heads=4, hidden_dim=96,
                                                 mlp_dim=192, num_classes=10)  # fmt: skip
    model.conv_proj = nn.Conv2d(1, 96, kernel_size=7, stride=7)
    x, y = _tensors(Split.TRAIN)
    test_x, test_y = _tensors(Split.TEST)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    for epoch in range(args.epochs):
        model.train()
        started, order = time.time(), torch.randperm(len(x))
        for i in range(0, len(x), 128):
            batch = order[i : i + 128]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, first 10k training images {_accuracy(model, x[:10000], y[:10000]):.2f}, "
              f"test {_accuracy(model, test_x, test_y):.2f}, {time.time() - started:.0f} s", flush=True)  # fmt: skip
    example = torch.zeros(1, 1, 28, 28)
    torch.export.save(torch.export.export(model, (example,)), args.out_dir / "vitx.pt2")
    torch.onnx.export(model, example, args.out_dir / "vitx.onnx", dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    torch.onnx.export(model, example, args.out_dir / "vitx-dynamo.onnx", dynamo=True, input_names=["x"], external_data=False)
    record = {"test_accuracy": round(_accuracy(model, test_x, test_y), 2), "epochs": args.epochs, "seed": args.seed}
    (args.out_dir / "vitx.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
