"""Batch augmentation: shapes, shifts equal translated copies, flips mirror."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeconv.training import MAX_SHIFT, Augment, augment_batch


def _images(n: int = 32) -> torch.Tensor:
    # Strictly positive pixels so a translated copy is identified uniquely by its zeros.
    return torch.rand(n, 2, 7, 9, generator=torch.Generator().manual_seed(0)) + 0.1


def _translate(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move ``image`` [C, H, W] by (dy, dx) pixels, filling with zeros."""
    s = MAX_SHIFT
    _, height, width = image.shape
    padded = F.pad(image, (s, s, s, s))
    return padded[:, s - dy : s - dy + height, s - dx : s - dx + width]


def _find_shift(original: torch.Tensor, result: torch.Tensor) -> tuple[int, int] | None:
    for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
            if torch.equal(_translate(original, dy, dx), result):
                return dy, dx
    return None


def test_none_returns_batch_unchanged() -> None:
    images = _images()
    out = augment_batch(images, Augment.NONE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, images)


def test_shift_output_is_a_translated_copy_of_each_image() -> None:
    images = _images()
    before = images.clone()
    out = augment_batch(images, Augment.SHIFT, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(images, before)  # input untouched
    shifts = [_find_shift(images[i], out[i]) for i in range(len(images))]
    assert all(shift is not None for shift in shifts)
    assert len(set(shifts)) > 5  # offsets differ between images
    assert not torch.equal(out, images)
    # Pixel mass is kept except for what moved past the border (and was zeroed here).
    for i, (dy, dx) in enumerate(shifts):  # type: ignore[misc]
        _, height, width = images[i].shape
        rows = slice(max(0, -dy), height - max(0, dy))
        cols = slice(max(0, -dx), width - max(0, dx))
        torch.testing.assert_close(out[i].sum(), images[i][:, rows, cols].sum())


def test_shift_is_reproducible_for_a_seed() -> None:
    images = _images()
    first = augment_batch(images, Augment.SHIFT, generator=torch.Generator().manual_seed(5))
    second = augment_batch(images, Augment.SHIFT, generator=torch.Generator().manual_seed(5))
    third = augment_batch(images, Augment.SHIFT, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def test_shift_flip_is_a_shifted_copy_or_its_mirror() -> None:
    images = _images(64)
    out = augment_batch(images, Augment.SHIFT_FLIP, generator=torch.Generator().manual_seed(2))
    assert out.shape == images.shape
    flipped = 0
    for i in range(len(images)):
        if _find_shift(images[i], out[i]) is not None:
            continue
        assert _find_shift(images[i], out[i].flip(-1)) is not None
        flipped += 1
    assert 10 < flipped < 54  # about half of 64
