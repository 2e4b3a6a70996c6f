"""Fashion-MNIST: the real files, the folder search order, and errors for missing/corrupt files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeconv.data import FASHION_MNIST_DIR, Split, fashion_mnist_search_dirs, load_fashion_mnist
from spikeconv.errors import DataError, DatasetNotFoundError

_REAL_FILES = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
needs_real_data = pytest.mark.skipif(
    not _REAL_FILES.is_file(),
    reason="apt-get install dataset-fashion-mnist to run the real-data tests",
)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_split(
    folder: Path, *, prefix: str = "train", count: int = 3, pixel: int = 1, gz: bool = True
) -> Path:
    """Write ``count`` fake 28x28 images (every pixel ``pixel``) with labels 0, 1, 2, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.full((count, 28, 28), pixel, dtype=np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 10
    suffix = ".gz" if gz else ""
    for stem, array in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = _idx_bytes(array)
        (folder / f"{stem}{suffix}").write_bytes(gzip.compress(data) if gz else data)
    return folder


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKECONV_DATA", raising=False)


@needs_real_data
@pytest.mark.parametrize(("split", "count"), [(Split.TRAIN, 60000), (Split.TEST, 10000)])
def test_real_files_shapes_labels_and_range(no_env: None, split: Split, count: int) -> None:
    dataset = load_fashion_mnist(split=split)
    assert len(dataset) == count
    assert dataset.name == "fashion-mnist"
    assert dataset.num_classes == 10
    assert dataset.sample_shape == (1, 28, 28)
    assert dataset.images.dtype == torch.uint8
    assert dataset.labels.dtype == torch.int64
    assert torch.equal(dataset.labels.unique(), torch.arange(10))
    # Fashion-MNIST is balanced: 6,000 / 1,000 images per class.
    assert torch.equal(torch.bincount(dataset.labels), torch.full((10,), count // 10))
    image, label = dataset[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert isinstance(label, int) and 0 <= label <= 9


@needs_real_data
def test_real_first_labels_and_training_mean(no_env: None) -> None:
    dataset = load_fashion_mnist(split=Split.TRAIN)
    # Known first labels of the training file: ankle boot, T-shirt, T-shirt, dress, T-shirt.
    assert dataset.labels[:5].tolist() == [9, 0, 0, 3, 0]
    x, _ = dataset.as_tensors()
    assert float(x.mean()) == pytest.approx(0.2860, abs=1e-4)
    assert float(x.std()) == pytest.approx(0.3530, abs=1e-4)


def test_search_dirs_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIKECONV_DATA", str(tmp_path / "env"))
    dirs = fashion_mnist_search_dirs(tmp_path / "root", default_dir=tmp_path / "default")
    expected = [
        base / sub
        for base in (tmp_path / "root", tmp_path / "env", tmp_path / "default")
        for sub in (Path("."), Path("fashion-mnist"), Path("FashionMNIST/raw"))
    ]
    assert dirs == expected


def test_root_beats_env_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, env, default = tmp_path / "root", tmp_path / "env", tmp_path / "default"
    _write_split(root, pixel=255)
    _write_split(env / "fashion-mnist", pixel=51)
    _write_split(default, pixel=102)
    monkeypatch.setenv("SPIKECONV_DATA", str(env))

    def first_pixel(**kwargs: object) -> float:
        return float(
            load_fashion_mnist(split=Split.TRAIN, default_dir=default, **kwargs)[0][0][0, 0, 0]
        )

    assert first_pixel(root=root) == pytest.approx(1.0)
    assert first_pixel() == pytest.approx(0.2)
    monkeypatch.delenv("SPIKECONV_DATA")
    assert first_pixel() == pytest.approx(0.4)
    # A root without the files falls through to the next folders.
    assert first_pixel(root=tmp_path / "empty") == pytest.approx(0.4)


@pytest.mark.parametrize("gz", [False, True])
def test_torchvision_layout_plain_or_gz(tmp_path: Path, no_env: None, gz: bool) -> None:
    _write_split(tmp_path / "FashionMNIST" / "raw", prefix="t10k", count=4, pixel=255, gz=gz)
    dataset = load_fashion_mnist(split=Split.TEST, root=tmp_path, default_dir=tmp_path / "none")
    assert len(dataset) == 4
    assert dataset.labels.tolist() == [0, 1, 2, 3]
    x, _ = dataset.as_tensors()
    assert torch.all(x == 1.0)


def test_split_files_are_not_mixed_up(tmp_path: Path, no_env: None) -> None:
    _write_split(tmp_path, prefix="train", count=5)
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST test files not found"):
        load_fashion_mnist(split=Split.TEST, root=tmp_path, default_dir=tmp_path / "none")
    assert len(load_fashion_mnist(split=Split.TRAIN, root=tmp_path, default_dir=tmp_path)) == 5


def test_missing_data_message_lists_folders_and_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPIKECONV_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(split=Split.TRAIN, root=tmp_path / "root", default_dir=tmp_path / "def")
    message = str(info.value)
    assert "\n" not in message
    for folder in fashion_mnist_search_dirs(tmp_path / "root", default_dir=tmp_path / "def"):
        assert str(folder) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-root" in message and "--download" in message
    assert "train-images-idx3-ubyte.gz" in message


def test_download_without_root_is_refused_before_any_network(tmp_path: Path, no_env: None) -> None:
    with pytest.raises(DatasetNotFoundError, match="--download needs --data-root"):
        load_fashion_mnist(split=Split.TRAIN, download=True, default_dir=tmp_path / "none")


def test_download_is_skipped_when_files_exist(tmp_path: Path, no_env: None) -> None:
    _write_split(tmp_path, count=2)
    dataset = load_fashion_mnist(split=Split.TRAIN, root=tmp_path, download=True)
    assert len(dataset) == 2
    assert not (tmp_path / "FashionMNIST").exists()


def test_labels_file_in_the_images_slot_is_a_data_error(tmp_path: Path, no_env: None) -> None:
    _write_split(tmp_path, count=3)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(labels.read_bytes())
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: expected IDX magic 2051"):
        load_fashion_mnist(split=Split.TRAIN, root=tmp_path)


def test_label_and_image_counts_must_match(tmp_path: Path, no_env: None) -> None:
    _write_split(tmp_path, count=3)
    labels = _idx_bytes(np.zeros(2, dtype=np.uint8))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DataError, match="holds 2 labels but .* holds 3 images"):
        load_fashion_mnist(split=Split.TRAIN, root=tmp_path)


def test_wrong_image_size_is_a_data_error(tmp_path: Path, no_env: None) -> None:
    _write_split(tmp_path, count=2)
    images = _idx_bytes(np.zeros((2, 8, 8), dtype=np.uint8))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    with pytest.raises(DataError, match="28x28"):
        load_fashion_mnist(split=Split.TRAIN, root=tmp_path)
