"""synthetic:CxHxW data sets: reproducible noise made on demand, for memory and speed checks."""

from __future__ import annotations

import pytest
import torch

from spikeconv.data import Split, calibration_subset, load_dataset
from spikeconv.errors import ConfigError


def test_samples_are_made_again_identically_and_splits_differ():
    train = load_dataset("synthetic:3x16x8:50:4", split=Split.TRAIN)
    again = load_dataset("synthetic:3x16x8:50:4", split=Split.TRAIN)
    test = load_dataset("synthetic:3x16x8:50:4", split=Split.TEST)
    assert len(train) == 50 and train.sample_shape == (3, 16, 8) and train.num_classes == 4
    x, y = train[7]
    assert x.shape == (3, 16, 8) and 0 <= float(x.min()) and float(x.max()) <= 1 and y == 7 % 4
    assert torch.equal(x, again[7][0]) and not torch.equal(x, test[7][0])


def test_subsets_and_limits_keep_the_samples_they_name():
    data = load_dataset("synthetic:1x4x4", split=Split.TRAIN)
    assert len(data) == 10_000 and len(load_dataset("synthetic:1x4x4", split=Split.TEST)) == 2_000
    chosen = calibration_subset(data, num_samples=5, seed=0)
    first = chosen[0]
    index = chosen.indices[0]
    assert torch.equal(first[0], data[index][0]) and first[1] == index % 10
    assert len(load_dataset("synthetic:1x4x4", split=Split.TRAIN, limit=3)) == 3


@pytest.mark.parametrize("name", ["synthetic:", "synthetic:3x224", "synthetic:0x4x4", "synthetic:1x4x4:0",
                                  "synthetic:1x4x4:5:1", "synthetic:3x100000x100000"])  # fmt: skip
def test_bad_forms_are_one_line(name):
    with pytest.raises(ConfigError) as caught:
        load_dataset(name, split=Split.TRAIN)
    assert "\n" not in str(caught.value) and "synthetic" in str(caught.value)
