"""make_loader and calibration_subset: seeded, reproducible, validated."""

from __future__ import annotations

import pytest
import torch

from spikeconv.data import ArrayDataset, Split, calibration_subset, load_dataset, make_loader
from spikeconv.errors import ConfigError


def _toy(count: int = 40) -> ArrayDataset:
    images = torch.arange(count, dtype=torch.uint8).reshape(count, 1, 1, 1)
    return ArrayDataset(images, torch.arange(count) % 4, num_classes=4, name="toy")


def _order(loader: torch.utils.data.DataLoader) -> list[int]:
    return [round(float(v) * 255) for x, _ in loader for v in x.flatten()]


def test_shuffled_order_depends_only_on_the_seed() -> None:
    dataset = _toy()
    first = _order(make_loader(dataset, batch_size=8, shuffle=True, seed=3))
    torch.manual_seed(12345)  # the global generator must not matter
    again = _order(make_loader(dataset, batch_size=8, shuffle=True, seed=3))
    other = _order(make_loader(dataset, batch_size=8, shuffle=True, seed=4))
    assert first == again
    assert first != other
    assert sorted(first) == list(range(40)) and first != list(range(40))


def test_unshuffled_loader_keeps_order_and_batches() -> None:
    loader = make_loader(_toy(10), batch_size=4, shuffle=False)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert batches[0][0].shape == (4, 1, 1, 1) and batches[0][0].dtype == torch.float32
    assert _order(loader) == list(range(10))


@pytest.mark.parametrize("batch_size", [0, -1])
def test_bad_batch_size(batch_size: int) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(_toy(), batch_size=batch_size, shuffle=False)


def test_calibration_subset_is_seeded_and_distinct() -> None:
    train = load_dataset("digits", split=Split.TRAIN)
    first = calibration_subset(train, num_samples=100, seed=0)
    again = calibration_subset(train, num_samples=100, seed=0)
    other = calibration_subset(train, num_samples=100, seed=1)
    assert len(first) == 100 and first.num_classes == 10
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)
    assert len(torch.unique(first.images.reshape(100, -1), dim=0)) > 90
    assert len(calibration_subset(train, num_samples=5000)) == len(train)
    with pytest.raises(ConfigError, match="num_samples"):
        calibration_subset(train, num_samples=0)


def test_calibration_subset_of_a_plain_dataset() -> None:
    plain = torch.utils.data.TensorDataset(torch.arange(10.0))
    subset = calibration_subset(plain, num_samples=4, seed=2)
    values = [float(subset[i][0]) for i in range(4)]
    assert values == sorted(values) and len(set(values)) == 4
