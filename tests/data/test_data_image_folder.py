"""imagefolder:PATH: lazily read class folders, splits, resizing, channels and errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spikeconv.data import ImageFolderOptions, Split, load_dataset
from spikeconv.errors import ConfigError, DataError, DatasetNotFoundError


def _write_classes(folder: Path, *, size: tuple[int, int] = (6, 4), mode: str = "RGB") -> Path:
    """Write 2 classes x 2 PNGs; class ``cat`` is black, class ``dog`` is white (W, H = size)."""
    for name, value in (("cat", 0), ("dog", 255)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(2):
            colour = value if mode == "L" else (value, value // 2 if index else value, value)
            Image.new(mode, size, colour).save(folder / name / f"{index}.png")
    return folder


def test_reads_classes_labels_and_pixels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _write_classes(tmp_path / "pics")
    with caplog.at_level(logging.WARNING, logger="spikeconv"):
        dataset = load_dataset(f"imagefolder:{folder}", split=Split.TRAIN)
    assert "for both" in caplog.text  # no train/test folders: same images in both splits
    assert dataset.name == f"imagefolder:{folder}"
    assert len(dataset) == 4
    assert dataset.num_classes == 2 and dataset.classes == ["cat", "dog"]
    assert dataset.sample_shape == (3, 4, 6)
    labels = [dataset[i][1] for i in range(4)]
    assert labels == [0, 0, 1, 1]
    black, _ = dataset[0]
    white_half, _ = dataset[3]
    assert black.dtype == torch.float32 and black.shape == (3, 4, 6)
    assert float(black.max()) == 0.0
    torch.testing.assert_close(white_half[:, 0, 0], torch.tensor([1.0, 127 / 255, 1.0]))


def test_grey_images_give_one_channel_and_resize(tmp_path: Path) -> None:
    folder = _write_classes(tmp_path / "grey", mode="L")
    dataset = load_dataset(f"imagefolder:{folder}", split=Split.TEST)
    assert dataset.sample_shape == (1, 4, 6)
    options = ImageFolderOptions(image_size=(3, 5), channels=3)
    resized = load_dataset(f"imagefolder:{folder}", split=Split.TEST, image_options=options)
    x, y = resized.as_tensors()
    assert x.shape == (4, 3, 3, 5) and resized.sample_shape == (3, 3, 5)
    assert y.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(x[2:], torch.ones(2, 3, 3, 5))


def test_train_and_test_subfolders_are_the_splits(tmp_path: Path) -> None:
    _write_classes(tmp_path / "set" / "train")
    _write_classes(tmp_path / "set" / "val", size=(2, 2))
    name = f"imagefolder:{tmp_path / 'set'}"
    assert load_dataset(name, split=Split.TRAIN).sample_shape == (3, 4, 6)
    assert load_dataset(name, split=Split.TEST).sample_shape == (3, 2, 2)


def test_missing_split_folder_is_reported(tmp_path: Path) -> None:
    _write_classes(tmp_path / "set" / "train")
    with pytest.raises(DatasetNotFoundError, match="no test split; create .*test or .*val"):
        load_dataset(f"imagefolder:{tmp_path / 'set'}", split=Split.TEST)


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'absent'}", split=Split.TRAIN)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="one sub-folder of images per class"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}", split=Split.TRAIN)
    with pytest.raises(ConfigError, match="needs a folder"):
        load_dataset("imagefolder:", split=Split.TRAIN)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    folder = _write_classes(tmp_path / "pics")
    Image.new("RGB", (9, 9)).save(folder / "dog" / "1.png")
    dataset = load_dataset(f"imagefolder:{folder}", split=Split.TRAIN)
    with pytest.raises(DataError, match="pass image_size"):
        dataset[3]


def test_limit_and_subset(tmp_path: Path) -> None:
    folder = _write_classes(tmp_path / "pics")
    limited = load_dataset(f"imagefolder:{folder}", split=Split.TRAIN, limit=3)
    assert len(limited) == 3 and limited.num_classes == 2
    picked = limited.subset(np.array([2, 0]))
    assert [picked[i][1] for i in range(2)] == [1, 0]


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="channels"):
        ImageFolderOptions(channels=2)
    with pytest.raises(ConfigError, match="image_size"):
        ImageFolderOptions(image_size=(0, 4))
