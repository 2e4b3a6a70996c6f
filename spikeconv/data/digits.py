"""scikit-learn's 8x8 digits, split once into fixed, disjoint training and test sets.

The 1,797 images ship inside scikit-learn, so this set is always available offline; it is the
small real data set for tests and quick checks. scikit-learn gives no split, so one is fixed
here: 500 test images drawn stratified by class with seed 0, the other 1,297 for training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.data.info import DatasetInfo
from spikeconv.data.split import Split

NAME = "digits"
TEST_SIZE = 500
SPLIT_SEED = 0
_MAX_PIXEL = 16.0
# Mean and std of every pixel of the 1,297 training images divided by 16, computed once with
# x = load_digits().images[train_idx] / 16; x.mean(), x.std()  (0.30523, 0.37597).
DIGITS_INFO = DatasetInfo(
    name=NAME, num_classes=10, sample_shape=(1, 8, 8), mean=(0.3052,), std=(0.3760,)
)


def digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_indices, test_indices)`` into ``load_digits()``: disjoint, stratified."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import
    from sklearn.model_selection import train_test_split

    targets = load_digits().target
    indices = np.arange(targets.shape[0])
    train, test = train_test_split(
        indices, test_size=TEST_SIZE, stratify=targets, random_state=SPLIT_SEED, shuffle=True
    )
    return train, test


def load_digits_split(
    *, split: Split, root: str | Path | None = None, download: bool = False
) -> ArrayDataset:
    """Load one split of the digits as float images ``(N, 1, 8, 8)`` in [0, 1].

    Args:
        split: 1,297 training or 500 test images.
        root: Ignored: the data ships with scikit-learn.
        download: Ignored, for the same reason.
    """
    from sklearn.datasets import load_digits

    del root, download
    bunch = load_digits()
    train, test = digits_split_indices()
    chosen = train if split is Split.TRAIN else test
    images = torch.from_numpy((bunch.images[chosen] / _MAX_PIXEL).astype(np.float32))
    labels = torch.from_numpy(bunch.target[chosen].astype(np.int64))
    return ArrayDataset(images.unsqueeze(1), labels, num_classes=DIGITS_INFO.num_classes, name=NAME)
