"""npz:PATH data sets: the user's arrays, scaled like the built-in sets, with one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeconv.data import NpzSource, Split, load_dataset, load_npz
from spikeconv.errors import ConfigError, DataError, DatasetNotFoundError


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_uint8_images_without_channels_are_scaled_and_get_one_channel(tmp_path):
    x = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    path = _write(tmp_path / "d.npz", x=x, y=np.array([0, 2, 1, 2]))
    data = load_dataset(f"npz:{path}", split=Split.TEST)
    assert len(data) == 4 and data.sample_shape == (1, 3, 3) and data.num_classes == 3
    image, label = data[1]
    torch.testing.assert_close(image, torch.from_numpy(x[1]).float().div(255).unsqueeze(0))
    assert label == 2 and data.name == f"npz:{path}"


def test_float_images_are_used_as_they_are_and_both_splits_are_the_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 2, 4, 4)).astype(np.float64)  # already normalised: not in [0, 1]
    path = _write(tmp_path / "d.npz", x=x, y=np.arange(5))
    train, test = (load_dataset(f"npz:{path}", split=s, limit=3) for s in (Split.TRAIN, Split.TEST))
    assert len(train) == 3 and torch.equal(train.as_tensors()[0], test.as_tensors()[0])
    torch.testing.assert_close(train[0][0], torch.from_numpy(x[0]).float())


def test_other_key_names(tmp_path):
    path = _write(tmp_path / "d.npz", images=np.zeros((2, 1, 2, 2), np.uint8), labels=np.array([1, 0]))
    assert NpzSource.from_name(f"npz:{path}:images,labels") == NpzSource(path, "images", "labels")
    assert len(load_npz(f"npz:{path}:images,labels")) == 2
    with pytest.raises(DataError, match=r"no array 'x', 'y' \(it holds images, labels\)"):
        load_npz(f"npz:{path}")


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((0, 1, 2, 2), np.uint8), np.zeros(0, np.int64), "no samples"),
        (np.full((2, 1, 2, 2), np.nan, np.float32), np.array([0, 1]), r"NaN or Inf values in 2 sample"),
        (np.zeros((2, 2), np.uint8), np.array([0, 1]), r"shape \(2, 2\)"),
        (np.zeros((2, 1, 2, 2), np.int32), np.array([0, 1]), "dtype int32"),
        (np.zeros((2, 1, 2, 2), np.uint8), np.array([0.0, 1.0]), "integer class labels"),
        (np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 1, 1]), "one label per image"),
        (np.zeros((2, 1, 2, 2), np.uint8), np.array([0, -1]), "negative labels"),
    ],
    ids=["empty", "nan", "rank", "int-pixels", "float-labels", "count", "negative"],
)
def test_bad_arrays_give_one_line_errors(tmp_path, x, y, message):
    path = _write(tmp_path / "bad.npz", x=x, y=y)
    with pytest.raises(DataError, match=message) as error:
        load_npz(f"npz:{path}")
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_missing_file_object_arrays_and_download_are_refused(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(f"npz:{tmp_path}/none.npz", split=Split.TRAIN)
    path = _write(tmp_path / "obj.npz", x=np.array([object()], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="Python objects"):
        load_npz(f"npz:{path}")
    with pytest.raises(ConfigError, match="--download"):
        load_dataset(f"npz:{path}", split=Split.TRAIN, download=True)
