"""Data sets by name (Fashion-MNIST, digits, user folders and .npz files); nothing is downloaded unless asked."""

from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.data.digits import load_digits_split
from spikeconv.data.fashion_mnist import (
    FASHION_MNIST_DIR,
    fashion_mnist_search_dirs,
    load_fashion_mnist,
)
from spikeconv.data.idx import read_idx
from spikeconv.data.image_folder import ImageFolderDataset, ImageFolderOptions, load_image_folder
from spikeconv.data.info import DatasetInfo
from spikeconv.data.loaders import calibration_indices, calibration_subset, make_loader
from spikeconv.data.npz import NpzSource, load_npz
from spikeconv.data.registry import (
    DatasetLoader,
    available_datasets,
    dataset_info,
    load_dataset,
    register_dataset,
)
from spikeconv.data.split import Split
from spikeconv.data.torchvision_sets import load_cifar10, load_cifar100, load_mnist

__all__ = [
    "FASHION_MNIST_DIR",
    "ArrayDataset",
    "DatasetInfo",
    "DatasetLoader",
    "ImageFolderDataset",
    "ImageFolderOptions",
    "NpzSource",
    "Split",
    "available_datasets",
    "calibration_indices",
    "calibration_subset",
    "dataset_info",
    "fashion_mnist_search_dirs",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits_split",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "load_npz",
    "make_loader",
    "read_idx",
    "register_dataset",
]
