"""Data sets by name: one registry dict, one entry point :func:`load_dataset`.

Built-in names: ``cifar10``, ``cifar100``, ``digits``, ``fashion-mnist``, ``mnist``. The forms
``imagefolder:PATH`` (a folder of class sub-folders), ``npz:PATH[:IMAGES,LABELS]`` (arrays in
one ``.npz`` file, see :mod:`spikeconv.data.npz`) and ``synthetic:CxHxW[:SAMPLES[:CLASSES]]`` (random
images made on demand, for memory and speed checks: :mod:`spikeconv.data.synthetic`) are accepted as well. Only
``digits`` and (once ``dataset-fashion-mnist`` is installed) ``fashion-mnist`` are present on the
project's machines; the others need the user's files or an explicit ``download=True``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torch.utils.data import Dataset, Subset

from spikeconv.data.digits import DIGITS_INFO, load_digits_split
from spikeconv.data.fashion_mnist import FASHION_MNIST_INFO, load_fashion_mnist
from spikeconv.data.image_folder import PREFIX, ImageFolderOptions, load_image_folder
from spikeconv.data.info import DatasetInfo
from spikeconv.data.npz import PREFIX as NPZ_PREFIX
from spikeconv.data.npz import load_npz
from spikeconv.data.split import Split
from spikeconv.data.synthetic import PREFIX as SYNTHETIC_PREFIX
from spikeconv.data.synthetic import load_synthetic
from spikeconv.data.torchvision_sets import (
    CIFAR10_INFO,
    CIFAR100_INFO,
    MNIST_INFO,
    load_cifar10,
    load_cifar100,
    load_mnist,
)
from spikeconv.errors import ConfigError

logger = logging.getLogger("spikeconv")


class DatasetLoader(Protocol):
    """Loads one split of a data set; returns a Dataset of ``(float C,H,W in [0, 1], int)``.

    The returned object should carry ``num_classes``, ``sample_shape`` and ``name`` like
    :class:`~spikeconv.data.ArrayDataset`, and a ``head(n)`` method so ``limit`` is cheap.
    """

    def __call__(self, *, split: Split, root: Path | None, download: bool) -> Dataset: ...


@dataclass(frozen=True)
class _Entry:
    loader: DatasetLoader
    info: DatasetInfo | None


_DATASETS: dict[str, _Entry] = {}


def register_dataset(name: str, loader: DatasetLoader, *, info: DatasetInfo | None = None) -> None:
    """Make ``loader`` available to :func:`load_dataset` under ``name``.

    Args:
        name: Registry name (no ``:``; ``imagefolder:`` is reserved for folders).
        loader: Called as ``loader(split=..., root=..., download=...)``.
        info: Static facts for :func:`dataset_info`; its ``name`` must equal ``name``.

    Raises:
        ConfigError: The name is taken, empty, contains ``:``, or differs from ``info.name``.
    """
    if not name or ":" in name:
        raise ConfigError(f"data set name {name!r} must be non-empty and contain no ':' (imagefolder: and npz: are reserved)")
    if name in _DATASETS:
        raise ConfigError(f"data set {name!r} is already registered")
    if info is not None and info.name != name:
        raise ConfigError(f"data set {name!r}: its DatasetInfo is named {info.name!r}")
    _DATASETS[name] = _Entry(loader=loader, info=info)


def available_datasets() -> list[str]:
    """Return the registered names, sorted (``imagefolder:PATH`` and ``npz:PATH`` are accepted besides these)."""
    return sorted(_DATASETS)


def _unknown(name: str) -> ConfigError:
    names = ", ".join(available_datasets())
    return ConfigError(f"unknown data set {name!r}; choose one of: {names}, or imagefolder:PATH, npz:PATH or synthetic:CxHxW")


def dataset_info(name: str) -> DatasetInfo:
    """Return the static facts of a registered data set without loading it.

    Raises:
        ConfigError: Unknown name, a registration without info, or ``imagefolder:PATH`` (whose
            classes and image size are known only once it is loaded).
    """
    if name.startswith((PREFIX, NPZ_PREFIX, SYNTHETIC_PREFIX)):
        raise ConfigError(
            f"{name}: no fixed facts for a user's folder or file; load it and read num_classes and "
            "sample_shape from the returned data set"
        )
    if name not in _DATASETS:
        raise _unknown(name)
    info = _DATASETS[name].info
    if info is None:
        raise ConfigError(f"data set {name!r} was registered without a DatasetInfo")
    return info


def _check_options(split: Split, download: bool, limit: int | None) -> None:
    if not isinstance(split, Split):
        raise ConfigError(f"split must be a Split (see Split.from_name), not {split!r}")
    if not isinstance(download, bool):
        raise ConfigError(f"download must be True or False, not {download!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"limit must be a positive number of samples, not {limit!r}")


def _first(dataset: Dataset, limit: int) -> Dataset:
    """Return the first ``limit`` samples of ``dataset`` (all when it has fewer)."""
    head = getattr(dataset, "head", None)
    if callable(head):
        return head(limit)
    return Subset(dataset, range(min(limit, len(dataset))))


def load_dataset(
    name: str,
    *,
    split: Split,
    root: str | Path | None = None,
    download: bool = False,
    limit: int | None = None,
    image_options: ImageFolderOptions | None = None,
) -> Dataset:
    """Load one split of a data set by name.

    Args:
        name: One of :func:`available_datasets`, ``imagefolder:PATH``, or ``npz:PATH[:IMAGES,LABELS]``
            (an ``.npz`` file has no split: both splits are the whole file).
        split: ``Split.TRAIN`` or ``Split.TEST``.
        root: Folder holding the files (``--data-root``); see each loader for where it looks.
        download: Allow fetching missing files (network needed). Never done unless True.
        limit: Keep only the first ``limit`` samples (a quick run); None keeps all.
        image_options: Resize/channel options, only for ``imagefolder:PATH``.

    Returns:
        A Dataset of ``(float32 C,H,W in [0, 1], int label)`` with ``num_classes``,
        ``sample_shape`` and ``name`` attributes.

    Raises:
        ConfigError: Unknown name or invalid option.
        DatasetNotFoundError: The files are missing; the message says where it looked.
        DataError: The files are corrupt.
    """
    _check_options(split, download, limit)
    root_path = Path(root).expanduser() if root is not None else None
    if name.startswith(PREFIX):
        if download:
            raise ConfigError(f"{name}: an image folder cannot be downloaded; drop --download")
        folder = name[len(PREFIX) :]
        if not folder:
            raise ConfigError("imagefolder: needs a folder, as in imagefolder:/data/my_images")
        dataset: Dataset = load_image_folder(folder, split=split, options=image_options)
    elif name.startswith(NPZ_PREFIX):
        if download or image_options is not None:
            raise ConfigError(f"{name}: an npz file is read as it is; drop --download and image options")
        dataset = load_npz(name)
        logger.warning("%s has no train/test split: the same samples serve as the %s split", name, split.value)
    elif name.startswith(SYNTHETIC_PREFIX):
        if download or image_options is not None:
            raise ConfigError(f"{name}: synthetic images are made on demand; drop --download and image options")
        dataset = load_synthetic(name, split)
    else:
        if name not in _DATASETS:
            raise _unknown(name)
        if image_options is not None:
            raise ConfigError(f"image_options apply only to imagefolder:PATH, not to {name!r}")
        dataset = _DATASETS[name].loader(split=split, root=root_path, download=download)
    return dataset if limit is None else _first(dataset, limit)


register_dataset("fashion-mnist", load_fashion_mnist, info=FASHION_MNIST_INFO)
register_dataset("digits", load_digits_split, info=DIGITS_INFO)
register_dataset("mnist", load_mnist, info=MNIST_INFO)
register_dataset("cifar10", load_cifar10, info=CIFAR10_INFO)
register_dataset("cifar100", load_cifar100, info=CIFAR100_INFO)
