"""ArrayDataset: validation of images and labels, scaling, subsets and whole-set tensors."""

from __future__ import annotations

import pytest
import torch

from spikeconv.data import ArrayDataset
from spikeconv.errors import ConfigError, DataError


def _uint8_set(count: int = 6) -> ArrayDataset:
    images = torch.arange(count * 4, dtype=torch.uint8).reshape(count, 1, 2, 2) * 10
    labels = torch.arange(count) % 3
    return ArrayDataset(images, labels, num_classes=3, name="toy")


def test_uint8_items_are_scaled_to_unit_float() -> None:
    dataset = _uint8_set()
    image, label = dataset[1]
    assert image.dtype == torch.float32
    torch.testing.assert_close(image, torch.tensor([[[40.0, 50.0], [60.0, 70.0]]]) / 255.0)
    assert label == 1 and isinstance(label, int)
    assert dataset.sample_shape == (1, 2, 2)
    assert len(dataset) == 6


def test_float_items_are_kept_and_as_tensors_returns_copies() -> None:
    images = torch.full((2, 3, 1, 1), 0.5)
    dataset = ArrayDataset(images, torch.tensor([0, 1]), num_classes=2, name="toy")
    x, y = dataset.as_tensors()
    x.zero_()
    y.fill_(7)
    assert float(dataset.images.min()) == 0.5
    assert dataset.labels.tolist() == [0, 1]
    assert dataset.sample_shape == (3, 1, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_float_images_are_rejected(bad: float) -> None:
    images = torch.zeros(2, 1, 2, 2)
    images[1, 0, 1, 1] = bad
    with pytest.raises(DataError, match="NaN or Inf"):
        ArrayDataset(images, torch.tensor([0, 1]), num_classes=2, name="toy")


def test_float_images_outside_unit_range_are_rejected() -> None:
    images = torch.tensor([0.0, 255.0]).reshape(1, 1, 1, 2)
    with pytest.raises(DataError, match=r"\[0, 1\].*found \[0, 255\]"):
        ArrayDataset(images, torch.tensor([0]), num_classes=1, name="toy")


def test_empty_data_is_rejected() -> None:
    with pytest.raises(DataError, match="no samples"):
        ArrayDataset(
            torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64), num_classes=2, name="e"
        )


@pytest.mark.parametrize("labels", [torch.tensor([0.0, 1.0]), torch.tensor([True, False])])
def test_non_integer_labels_are_rejected(labels: torch.Tensor) -> None:
    with pytest.raises(DataError, match="labels must be integers"):
        ArrayDataset(torch.zeros(2, 1, 2, 2), labels, num_classes=2, name="toy")


def test_labels_out_of_range_or_wrong_count_are_rejected() -> None:
    with pytest.raises(DataError, match=r"labels must lie in \[0, 1\], found \[0, 2\]"):
        ArrayDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0, 2]), num_classes=2, name="toy")
    with pytest.raises(DataError, match="one label per image"):
        ArrayDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0]), num_classes=2, name="toy")


def test_images_must_be_four_dimensional() -> None:
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        ArrayDataset(torch.zeros(2, 2, 2), torch.tensor([0, 1]), num_classes=2, name="toy")


def test_head_and_subset() -> None:
    dataset = _uint8_set()
    head = dataset.head(2)
    assert len(head) == 2 and head.num_classes == 3 and head.name == "toy"
    assert torch.equal(head.images, dataset.images[:2])
    assert len(dataset.head(100)) == 6
    picked = dataset.subset([5, 0])
    assert picked.labels.tolist() == [2, 0]
    assert torch.equal(picked.images[0], dataset.images[5])
    with pytest.raises(ConfigError):
        dataset.head(0)
    with pytest.raises(ConfigError, match="out of range"):
        dataset.subset([6])
