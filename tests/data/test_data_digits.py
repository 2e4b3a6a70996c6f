"""scikit-learn digits: fixed, disjoint, stratified train/test split scaled to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from spikeconv.data import Split, dataset_info, load_digits_split
from spikeconv.data.digits import digits_split_indices


def test_split_sizes_shapes_and_range() -> None:
    train = load_digits_split(split=Split.TRAIN)
    test = load_digits_split(split=Split.TEST)
    assert (len(train), len(test)) == (1297, 500)
    for dataset in (train, test):
        assert dataset.sample_shape == (1, 8, 8)
        assert dataset.num_classes == 10
        assert dataset.name == "digits"
        x, y = dataset.as_tensors()
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_train_and_test_do_not_overlap_and_cover_everything() -> None:
    train, test = digits_split_indices()
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(1797))


def test_split_is_deterministic_and_matches_the_source_images() -> None:
    first, second = load_digits_split(split=Split.TEST), load_digits_split(split=Split.TEST)
    assert torch.equal(first.images, second.images)
    _, test = digits_split_indices()
    source = load_digits()
    np.testing.assert_allclose(first.images[0, 0].numpy(), source.images[test[0]] / 16.0)
    assert int(first.labels[0]) == int(source.target[test[0]])


def test_split_is_stratified() -> None:
    targets = load_digits().target
    test = load_digits_split(split=Split.TEST)
    expected = np.bincount(targets) * 500 / len(targets)
    counts = torch.bincount(test.labels, minlength=10).numpy()
    assert np.all(np.abs(counts - expected) <= 1.0)


def test_hard_coded_normalisation_matches_the_training_split() -> None:
    info = dataset_info("digits")
    x, _ = load_digits_split(split=Split.TRAIN).as_tensors()
    assert float(x.mean()) == pytest.approx(info.mean[0], abs=1e-4)
    assert float(x.std(unbiased=False)) == pytest.approx(info.std[0], abs=1e-4)
