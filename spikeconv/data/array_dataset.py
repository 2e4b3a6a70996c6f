"""An in-memory image classification data set held as two tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from spikeconv.errors import ConfigError, DataError

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """Return ``images`` as float32 in [0, 1]: uint8 is divided by 255, floats are copied."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32, copy=True)


def _check_images(images: torch.Tensor, name: str, *, unit_range: bool = True) -> None:
    """Raise DataError unless ``images`` is a non-empty N,C,H,W uint8 or finite float ([0, 1] if ``unit_range``)."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"data set {name}: images must be a tensor, not {type(images).__name__}")
    if images.ndim != 4:
        raise DataError(
            f"data set {name}: images must have shape (N, C, H, W), got {tuple(images.shape)}"
        )
    if images.shape[0] == 0 or images.numel() == 0:
        raise DataError(f"data set {name}: no samples (images shape {tuple(images.shape)})")
    if images.dtype == torch.uint8:
        return
    if not images.dtype.is_floating_point:
        raise DataError(f"data set {name}: images must be uint8 or float, not {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise DataError(f"data set {name}: images contain NaN or Inf values; clean or drop those samples")
    if not unit_range:
        return
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise DataError(
            f"data set {name}: float images must lie in [0, 1], found [{low:.4g}, {high:.4g}]; "
            "scale them first (or pass uint8 pixels)"
        )


def _check_labels(labels: torch.Tensor, count: int, num_classes: int, name: str) -> None:
    """Raise DataError unless ``labels`` holds ``count`` integers in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor):
        raise DataError(f"data set {name}: labels must be a tensor, not {type(labels).__name__}")
    if labels.dtype not in _INTEGER_DTYPES:
        raise DataError(f"data set {name}: labels must be integers, not {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != count:
        raise DataError(
            f"data set {name}: need one label per image ({count}), "
            f"got labels of shape {tuple(labels.shape)}"
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"data set {name}: labels must lie in [0, {num_classes - 1}], found [{low}, {high}]"
        )


class ArrayDataset(Dataset):
    """Images and labels held in memory; items are ``(float32 C,H,W in [0, 1], int label)``.

    Small data sets (Fashion-MNIST, digits, MNIST, CIFAR) fit in memory, so they are kept as two
    tensors: uint8 pixels stay uint8 (4x less memory) and are scaled only when an item is read.
    :meth:`as_tensors` gives the whole set at once for fast full-batch evaluation.

    Args:
        images: ``(N, C, H, W)`` uint8 pixels, or floats already in [0, 1].
        labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes: Number of classes of the data set (a subset may not contain them all).
        name: Registry name of the data set, e.g. ``"fashion-mnist"``.
        unit_range: Require float images to lie in [0, 1]. Users' own arrays (``npz:PATH``) may
            hold floats already preprocessed in their own way, so they pass False.

    Raises:
        DataError: Empty data, wrong shapes, NaN/Inf or out-of-range pixels, non-integer labels.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, name: str, unit_range: bool = True
    ) -> None:
        if num_classes < 1:
            raise ConfigError(f"data set {name}: num_classes must be >= 1, got {num_classes}")
        _check_images(images, name, unit_range=unit_range)
        _check_labels(labels, int(images.shape[0]), num_classes, name)
        self.images = images
        self.labels = labels.to(torch.int64)
        self.num_classes = int(num_classes)
        self.name = name
        self.unit_range = unit_range

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample."""
        channels, height, width = (int(s) for s in self.images.shape[1:])
        return channels, height, width

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _to_unit_float(self.images[index]), int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, len={len(self)}, "
            f"sample_shape={self.sample_shape}, num_classes={self.num_classes})"
        )

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ArrayDataset:
        """Return a new data set holding the samples at ``indices``, in that order.

        Raises:
            ConfigError: An index is out of range.
            DataError: ``indices`` is empty.
        """
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if index.numel() and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise ConfigError(f"data set {self.name}: subset index out of range 0..{len(self) - 1}")
        return ArrayDataset(self.images[index], self.labels[index], num_classes=self.num_classes, name=self.name,
                            unit_range=self.unit_range)  # fmt: skip

    def head(self, n: int) -> ArrayDataset:
        """Return the first ``n`` samples (all of them when ``n >= len(self)``).

        Raises:
            ConfigError: ``n <= 0``.
        """
        if n <= 0:
            raise ConfigError(f"data set {self.name}: head needs n >= 1, got {n}")
        return self.subset(torch.arange(min(n, len(self))))

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every sample at once: ``(x float32 N,C,H,W in [0, 1], y int64 N)``, as copies."""
        return _to_unit_float(self.images), self.labels.clone()
