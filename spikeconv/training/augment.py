"""Batch-tensor augmentation: random shifts and horizontal flips.

Working on the collated batch (rather than per-sample transforms inside a Dataset) keeps any
torch Dataset usable as is, and drawing every random number from one explicit generator keeps a
training run reproducible for a fixed seed.
"""

from __future__ import annotations

import torch

from spikeconv.training.config import Augment

__all__ = ["MAX_SHIFT", "augment_batch", "random_flip", "random_shift"]

MAX_SHIFT = 2
"""Largest translation in pixels used by ``Augment.SHIFT`` and ``Augment.SHIFT_FLIP``."""


def augment_batch(
    images: torch.Tensor, augment: Augment, *, generator: torch.Generator
) -> torch.Tensor:
    """Apply ``augment`` to a batch ``[N, C, H, W]``; returns a new tensor of the same shape.

    Args:
        images: The batch (any device). It is not modified.
        augment: Which augmentation.
        generator: CPU generator that supplies every random draw.
    """
    if augment is Augment.NONE:
        return images
    shifted = random_shift(images, max_shift=MAX_SHIFT, generator=generator)
    if augment is Augment.SHIFT:
        return shifted
    return random_flip(shifted, generator=generator)


def random_shift(
    images: torch.Tensor, *, max_shift: int, generator: torch.Generator
) -> torch.Tensor:
    """Translate each image by its own random offset in ``[-max_shift, max_shift]`` per axis.

    Equivalent to zero-padding by ``max_shift`` on every side and cropping a random
    ``H x W`` window: pixels shifted past the border are lost, uncovered pixels become 0.
    """
    n, _, height, width = images.shape
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    offsets = offsets.to(images.device)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)
    rows = offsets[0][:, None] + torch.arange(height, device=images.device)  # [N, H]
    cols = offsets[1][:, None] + torch.arange(width, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Index [N, H+2s, W+2s, C] with [N, H, W] index tensors -> [N, H, W, C].
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_flip(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    flip = flip.to(images.device)[:, None, None, None]
    return torch.where(flip, images.flip(-1), images)
