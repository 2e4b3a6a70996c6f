"""A user's folder of images, one sub-folder per class, read lazily (torchvision ImageFolder).

``imagefolder:PATH`` in :func:`spikeconv.data.load_dataset` lands here. When ``PATH`` has
``train/`` and ``test/`` (or ``val/``) sub-folders they are the splits; otherwise ``PATH`` itself
serves both splits and a warning says so, because then test accuracy is measured on training data.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from spikeconv.data.split import Split
from spikeconv.errors import ConfigError, DataError, DatasetNotFoundError

logger = logging.getLogger("spikeconv")

PREFIX = "imagefolder:"
_GREY_MODES = ("1", "L", "I", "I;16", "F")
_SPLIT_FOLDERS = {Split.TRAIN: ("train",), Split.TEST: ("test", "val")}


@dataclass(frozen=True)
class ImageFolderOptions:
    """How images from a folder are turned into tensors.

    Attributes:
        image_size: ``(H, W)`` every image is resized to (bilinear); None keeps the files' size,
            which must then be the same for all images.
        channels: 1 (grey) or 3 (RGB); None takes it from the first image.
    """

    image_size: tuple[int, int] | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and (
            len(self.image_size) != 2 or any(int(s) < 1 for s in self.image_size)
        ):
            raise ConfigError(f"image_size must be (H, W) with both >= 1, not {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turn every way an image file can fail into one DataError naming it, decompression bombs included:
    an image over PIL's ``MAX_IMAGE_PIXELS`` is refused before its pixels are decoded (PIL only warns
    up to twice that limit; here the warning is an error too)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"image {path} is too large to decode safely ({err}); resize it, or remove it") from None
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read image {path}: {err}; remove or replace it") from None


def _open(path: str, channels: int, image_size: tuple[int, int] | None) -> Image.Image:
    """Read one image file, convert it to grey or RGB and resize it if asked."""
    with _reading(path), Image.open(path) as image:
        converted = image.convert("L" if channels == 1 else "RGB")
    if image_size is not None:
        height, width = image_size
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    return converted


class ImageFolderDataset(Dataset):
    """Lazily loaded images ``(float32 C,H,W in [0, 1], int label)`` from class sub-folders.

    Args:
        samples: ``(file path, label)`` pairs, as torchvision's ImageFolder lists them.
        classes: Class names; label ``i`` is ``classes[i]``.
        sample_shape: ``(C, H, W)`` every item has.
        options: The resize option (``sample_shape`` already fixes the channels).
        name: Registry name, ``imagefolder:PATH``.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        *,
        sample_shape: tuple[int, int, int],
        options: ImageFolderOptions,
        name: str,
    ) -> None:
        if not samples:
            raise DataError(f"data set {name}: no images")
        self.samples = list(samples)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.sample_shape = sample_shape
        self.options = options
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = _open(path, self.sample_shape[0], self.options.image_size)
        pixels = np.array(image, dtype=np.uint8)  # a writable copy: torch warns on read-only arrays
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if pixels.shape != self.sample_shape:
            raise DataError(
                f"image {path} has shape {pixels.shape}, not {self.sample_shape}; "
                "pass image_size to resize all images to one size"
            )
        return torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255.0), int(label)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageFolderDataset:
        """Return a data set of the samples at ``indices``, in that order."""
        chosen = [self.samples[int(i)] for i in torch.as_tensor(indices).reshape(-1)]
        return ImageFolderDataset(
            chosen,
            self.classes,
            sample_shape=self.sample_shape,
            options=self.options,
            name=self.name,
        )

    def head(self, n: int) -> ImageFolderDataset:
        """Return the first ``n`` samples; files are sorted by class, so few classes may remain."""
        if n <= 0:
            raise ConfigError(f"data set {self.name}: head needs n >= 1, got {n}")
        return self.subset(range(min(n, len(self))))

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Read every image: ``(x float32 N,C,H,W in [0, 1], y int64 N)``."""
        items = [self[i] for i in range(len(self))]
        images = torch.stack([x for x, _ in items])
        return images, torch.tensor([y for _, y in items], dtype=torch.int64)


def _split_folder(path: Path, split: Split) -> Path:
    """Return the folder holding ``split``: ``PATH/train``, ``PATH/test`` (or ``val``), or PATH."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"image folder {path} does not exist; pass an existing folder")
    split_names = [name for names in _SPLIT_FOLDERS.values() for name in names]
    if not any((path / name).is_dir() for name in split_names):
        logger.warning("image folder %s has no train/test sub-folders; using it for both", path)
        return path
    for name in _SPLIT_FOLDERS[split]:
        if (path / name).is_dir():
            return path / name
    wanted = " or ".join(f"{path / n}" for n in _SPLIT_FOLDERS[split])
    raise DatasetNotFoundError(f"image folder {path} has no {split.value} split; create {wanted}")


def _sample_shape(first_path: str, options: ImageFolderOptions) -> tuple[int, int, int]:
    """Return ``(C, H, W)`` from the options, filling gaps from the first image."""
    channels = options.channels
    if channels is None:
        with _reading(first_path), Image.open(first_path) as first:
            channels = 1 if first.mode in _GREY_MODES else 3
    if options.image_size is not None:
        height, width = options.image_size
    else:
        width, height = _open(first_path, channels, None).size
    return channels, int(height), int(width)


def load_image_folder(
    path: str | Path, *, split: Split, options: ImageFolderOptions | None = None
) -> ImageFolderDataset:
    """Index the images of one split of ``path`` without reading them all.

    Args:
        path: Folder with one sub-folder per class (or ``train/`` and ``test/`` holding those).
        split: Which split to use (see the module docstring).
        options: Resize and channel options; defaults keep the files as they are.

    Raises:
        DatasetNotFoundError: The folder or the split's sub-folder does not exist.
        DataError: No class folders or no images in them.
    """
    import torchvision  # imported here: torchvision is slow to import and rarely needed

    options = options if options is not None else ImageFolderOptions()
    root = Path(path).expanduser()
    folder = _split_folder(root, split)
    try:
        scanned = torchvision.datasets.ImageFolder(str(folder))
    except FileNotFoundError as err:
        raise DataError(
            f"image folder {folder}: {err}; add one sub-folder of images per class"
        ) from err
    return ImageFolderDataset(
        scanned.samples,
        scanned.classes,
        sample_shape=_sample_shape(scanned.samples[0][0], options),
        options=options,
        name=f"{PREFIX}{path}",
    )
