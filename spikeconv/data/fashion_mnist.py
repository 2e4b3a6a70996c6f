"""Fashion-MNIST from its IDX files, found on disk; downloaded only when asked.

Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test 28x28 grey images of 10
clothing classes. The files are looked for, in this order, in the ``root`` argument, in the folder
named by the ``SPIKECONV_DATA`` environment variable, and in :data:`FASHION_MNIST_DIR`, where the
Debian package ``dataset-fashion-mnist`` installs them. Within each of those folders the files may
lie directly, in ``fashion-mnist/``, or in ``FashionMNIST/raw/`` (torchvision's layout).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.data.idx import idx_magic, read_idx
from spikeconv.data.info import DatasetInfo
from spikeconv.data.split import Split
from spikeconv.errors import DataError, DatasetNotFoundError

logger = logging.getLogger("spikeconv")

NAME = "fashion-mnist"
ENV_VAR = "SPIKECONV_DATA"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Per-channel statistics of the 60,000 training images scaled to [0, 1] (the usual constants).
FASHION_MNIST_INFO = DatasetInfo(
    name=NAME, num_classes=10, sample_shape=(1, 28, 28), mean=(0.2860,), std=(0.3530,)
)

_PREFIX = {Split.TRAIN: "train", Split.TEST: "t10k"}
_SUBFOLDERS = (Path("."), Path("fashion-mnist"), Path("FashionMNIST") / "raw")
_IMAGES_MAGIC = idx_magic(0x08, 3)
_LABELS_MAGIC = idx_magic(0x08, 1)


@dataclass(frozen=True)
class FashionMnistFiles:
    """The image and label IDX files of one split."""

    images: Path
    labels: Path


def fashion_mnist_search_dirs(
    root: str | Path | None, *, default_dir: Path = FASHION_MNIST_DIR
) -> list[Path]:
    """Return every folder searched for Fashion-MNIST, in search order, without duplicates.

    Args:
        root: Folder the user named (``--data-root``), searched first; may be None.
        default_dir: Last base folder, where the Debian package installs the files.
    """
    bases = [Path(root).expanduser()] if root is not None else []
    env_root = os.environ.get(ENV_VAR, "").strip()
    if env_root:
        bases.append(Path(env_root).expanduser())
    bases.append(default_dir)
    folders: list[Path] = []
    for base in bases:
        for sub in _SUBFOLDERS:
            folder = base / sub  # pathlib drops the "." of the first entry
            if folder not in folders:
                folders.append(folder)
    return folders


def _first_existing(folder: Path, stem: str) -> Path | None:
    """Return ``folder/stem`` or ``folder/stem.gz``, whichever exists first, else None."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist(split: Split, folders: list[Path]) -> FashionMnistFiles | None:
    """Return the first folder's IDX files for ``split``; None when no folder has both files."""
    prefix = _PREFIX[split]
    for folder in folders:
        images = _first_existing(folder, f"{prefix}-images-idx3-ubyte")
        labels = _first_existing(folder, f"{prefix}-labels-idx1-ubyte")
        if images is not None and labels is not None:
            return FashionMnistFiles(images=images, labels=labels)
    return None


def _not_found(split: Split, folders: list[Path]) -> DatasetNotFoundError:
    prefix = _PREFIX[split]
    searched = ", ".join(str(f) for f in folders)
    return DatasetNotFoundError(
        f"Fashion-MNIST {split.value} files not found; searched: {searched}. "
        "Install the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist), or pass --data-root DIR holding "
        f"{prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz, or --download"
    )


def _download(split: Split, root: str | Path | None) -> None:
    """Fetch Fashion-MNIST into ``root/FashionMNIST/raw`` with torchvision (network needed)."""
    if root is None:
        raise DatasetNotFoundError(
            "Fashion-MNIST: --download needs --data-root DIR to download into"
        )
    import torchvision  # imported here: only downloads need it

    logger.info("downloading Fashion-MNIST into %s", root)
    try:
        torchvision.datasets.FashionMNIST(str(root), train=split is Split.TRAIN, download=True)
    except (OSError, RuntimeError) as err:
        raise DatasetNotFoundError(
            f"could not download Fashion-MNIST into {root}: {err}; install the Debian package "
            "dataset-fashion-mnist instead (apt-get install dataset-fashion-mnist)"
        ) from err


def read_fashion_mnist(files: FashionMnistFiles) -> tuple[np.ndarray, np.ndarray]:
    """Parse and check one split's files: ``(images uint8 N,28,28, labels uint8 N)``.

    Raises:
        DataError: A file has the wrong magic number, image size, count or label range.
    """
    images = read_idx(files.images)
    labels = read_idx(files.labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{files.images}: expected IDX magic {_IMAGES_MAGIC} with 28x28 uint8 images, "
            f"got {images.dtype} of shape {images.shape}; replace the file"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{files.labels}: expected IDX magic {_LABELS_MAGIC} (uint8 labels, 1 dim), "
            f"got {labels.dtype} of shape {labels.shape}; replace the file"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{files.labels} holds {labels.shape[0]} labels but {files.images} holds "
            f"{images.shape[0]} images; the two files do not belong together"
        )
    if labels.size and int(labels.max()) >= FASHION_MNIST_INFO.num_classes:
        raise DataError(f"{files.labels}: labels must lie in 0..9, found {int(labels.max())}")
    return images, labels


def load_fashion_mnist(
    *,
    split: Split,
    root: str | Path | None = None,
    download: bool = False,
    default_dir: Path = FASHION_MNIST_DIR,
) -> ArrayDataset:
    """Load one Fashion-MNIST split into memory as uint8 images ``(N, 1, 28, 28)``.

    Args:
        split: Training (60,000 images) or test (10,000 images) split.
        root: Folder to search first (``--data-root``); also where ``download`` writes.
        download: Fetch the files with torchvision when they are found nowhere. Needs network.
        default_dir: Last folder searched; tests point it elsewhere.

    Raises:
        DatasetNotFoundError: No searched folder holds the split's files; the one-line message
            lists the folders and how to get the files.
        DataError: The files are corrupt.
    """
    folders = fashion_mnist_search_dirs(root, default_dir=default_dir)
    files = find_fashion_mnist(split, folders)
    if files is None and download:
        _download(split, root)
        files = find_fashion_mnist(split, folders)
    if files is None:
        raise _not_found(split, folders)
    if root is not None and not files.images.is_relative_to(Path(root).expanduser()):
        logger.info("Fashion-MNIST not in %s; using %s", root, files.images.parent)
    logger.debug("reading Fashion-MNIST %s from %s", split.value, files.images.parent)
    images, labels = read_fashion_mnist(files)
    return ArrayDataset(
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        num_classes=FASHION_MNIST_INFO.num_classes,
        name=NAME,
    )
