"""MNIST and CIFAR-10/100 through torchvision's classes, from a folder the user provides.

These files are not on the project's machines; users who have them (or who pass ``--download``)
get them as in-memory :class:`ArrayDataset` objects. Nothing is downloaded unless asked.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.data.fashion_mnist import ENV_VAR
from spikeconv.data.info import DatasetInfo
from spikeconv.data.split import Split
from spikeconv.errors import DatasetNotFoundError

logger = logging.getLogger("spikeconv")

# Standard per-channel statistics of each training split, pixels scaled to [0, 1].
MNIST_INFO = DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,))
CIFAR10_INFO = DatasetInfo(
    "cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
)
CIFAR100_INFO = DatasetInfo(
    "cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
)


@dataclass(frozen=True)
class _TorchvisionSpec:
    """How one torchvision data set class is called and where it keeps its files."""

    info: DatasetInfo
    class_name: str
    folder: str


_SPECS = {
    "mnist": _TorchvisionSpec(MNIST_INFO, "MNIST", "MNIST/raw"),
    "cifar10": _TorchvisionSpec(CIFAR10_INFO, "CIFAR10", "cifar-10-batches-py"),
    "cifar100": _TorchvisionSpec(CIFAR100_INFO, "CIFAR100", "cifar-100-python"),
}


def _resolve_root(root: str | Path | None, spec: _TorchvisionSpec) -> Path:
    """Return ``root``, else ``$SPIKECONV_DATA``, else raise a DatasetNotFoundError."""
    if root is not None:
        return Path(root).expanduser()
    env_root = os.environ.get(ENV_VAR, "").strip()
    if env_root:
        return Path(env_root).expanduser()
    raise DatasetNotFoundError(
        f"{spec.info.name}: no data folder given; pass --data-root DIR (the folder holding "
        f"{spec.folder}/) or set {ENV_VAR}, and add --download to fetch the files"
    )


def _to_nchw(data: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Return torchvision's ``.data`` as a uint8 ``(N, C, H, W)`` tensor."""
    images = torch.as_tensor(data)
    if images.ndim == 3:  # MNIST: N, H, W
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR: N, H, W, C


def load_torchvision_set(
    name: str, *, split: Split, root: str | Path | None = None, download: bool = False
) -> ArrayDataset:
    """Load ``name`` (``"mnist"``, ``"cifar10"`` or ``"cifar100"``) into memory.

    Args:
        name: One of the torchvision-backed names.
        split: Training or test split.
        root: Folder that holds (or will hold) torchvision's files; ``$SPIKECONV_DATA`` if None.
        download: Let torchvision fetch missing files into ``root`` (network needed).

    Raises:
        DatasetNotFoundError: No folder given, or the files are not in it.
    """
    import torchvision  # imported here: torchvision is slow to import and rarely needed

    spec = _SPECS[name]
    folder = _resolve_root(root, spec)
    cls = getattr(torchvision.datasets, spec.class_name)
    try:
        dataset = cls(str(folder), train=split is Split.TRAIN, download=download)
    except (RuntimeError, OSError) as err:
        raise DatasetNotFoundError(
            f"{name} {split.value} files not found in {folder / spec.folder}; "
            "pass --download to fetch them, or --data-root DIR holding "
            f"{spec.folder}/"
        ) from err
    logger.debug("read %s %s from %s", name, split.value, folder / spec.folder)
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return ArrayDataset(
        _to_nchw(dataset.data), labels, num_classes=spec.info.num_classes, name=name
    )


def load_mnist(
    *, split: Split, root: str | Path | None = None, download: bool = False
) -> ArrayDataset:
    """Load MNIST (60,000 / 10,000 grey 28x28 digits) from ``root/MNIST/raw``."""
    return load_torchvision_set("mnist", split=split, root=root, download=download)


def load_cifar10(
    *, split: Split, root: str | Path | None = None, download: bool = False
) -> ArrayDataset:
    """Load CIFAR-10 (50,000 / 10,000 colour 32x32 images) from ``root/cifar-10-batches-py``."""
    return load_torchvision_set("cifar10", split=split, root=root, download=download)


def load_cifar100(
    *, split: Split, root: str | Path | None = None, download: bool = False
) -> ArrayDataset:
    """Load CIFAR-100 (50,000 / 10,000 colour 32x32 images) from ``root/cifar-100-python``."""
    return load_torchvision_set("cifar100", split=split, root=root, download=download)
