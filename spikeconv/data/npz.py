"""A user's arrays in one ``.npz`` file: ``npz:PATH`` in :func:`spikeconv.data.load_dataset`.

The file holds images ``x`` and integer labels ``y`` (other key names: ``npz:PATH:IMAGES,LABELS``,
e.g. ``npz:data/mine.npz:images,labels``):

- ``x``: ``(N, C, H, W)`` or ``(N, H, W)`` (one channel); ``uint8`` pixels are scaled by 1/255,
  float arrays are used as they are (normally pixels in [0, 1]); NaN or Inf is refused;
- ``y``: ``(N,)`` integers >= 0; the number of classes is ``max(y) + 1``.

An ``.npz`` file has no train/test split: the same samples serve both splits (calibration and
evaluation), and a warning says so. Arrays are read with ``allow_pickle=False``, so loading a file
never runs code from it, and only after the sizes their headers declare were checked against the
memory budget, so a small archive declaring huge arrays is refused before anything is inflated.
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeconv.data.array_dataset import ArrayDataset
from spikeconv.errors import ConfigError, DataError, DatasetNotFoundError, first_line
from spikeconv.runtime.memory import BUDGET_ENV, MemoryBudget, resolve_budget, size_text

logger = logging.getLogger("spikeconv")

PREFIX = "npz:"
_KEYS_SUFFIX = re.compile(r":(\w+),(\w+)$")
DATA_SHARE = 0.5
"""The part of the memory budget a data set held in memory may take; the stages that run on it share the rest."""


@dataclass(frozen=True)
class NpzSource:
    """Where the arrays are: the file and the names of its image and label arrays."""

    path: Path
    images_key: str = "x"
    labels_key: str = "y"

    @classmethod
    def from_name(cls, name: str) -> NpzSource:
        """Parse ``npz:PATH`` or ``npz:PATH:IMAGES,LABELS``.

        Raises:
            ConfigError: ``name`` does not start with ``npz:`` or names no file.
        """
        if not name.startswith(PREFIX):
            raise ConfigError(f"{name!r} is not an npz data set; write npz:PATH or npz:PATH:IMAGES,LABELS")
        rest = name[len(PREFIX) :]
        keys = _KEYS_SUFFIX.search(rest)
        if keys is not None and not Path(rest).expanduser().is_file():
            rest = rest[: keys.start()]
            source = cls(Path(rest).expanduser(), keys.group(1), keys.group(2))
        else:
            source = cls(Path(rest).expanduser())
        if not rest:
            raise ConfigError("npz: needs a file, as in npz:/data/mine.npz (keys x and y) or npz:/data/mine.npz:images,labels")
        return source


def _declared_bytes(path: Path, key: str) -> tuple[int, str] | None:
    """The bytes member ``key`` declares in its ``.npy`` header (shape × item size) and a description, read
    without inflating its data; None when the member is missing or not a plain array (the full read says why)."""
    with zipfile.ZipFile(path) as archive:
        if f"{key}.npy" not in archive.namelist():
            return None
        with archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(member)
    if dtype.hasobject:
        return None
    count = int(np.prod(shape, dtype=object)) if shape else 1
    return count * dtype.itemsize, f"{key!r} {tuple(shape)} {dtype}"


def _check_declared_size(source: NpzSource) -> None:
    """Refuse before reading an archive whose arrays would not fit in memory: a small zip may declare huge arrays.

    Raises:
        DataError: The declared arrays (and the float32 copy of float images) exceed the memory budget.
    """
    try:
        found = [_declared_bytes(source.path, key) for key in (source.images_key, source.labels_key)]
    except Exception:  # noqa: BLE001 - a damaged or hostile archive: the full read below names the precise reason
        return
    found = [item for item in found if item is not None]
    need = sum(size for size, _ in found)
    need += found[0][0] if found and "float64" in found[0][1] else 0  # the float32 copy beside the float64 array
    room, budget = resolve_budget(MemoryBudget(), torch.device("cpu"))
    room = int(room * DATA_SHARE)
    if need > room:
        declared = ", ".join(f"{text}: {size_text(size)}" for size, text in found)
        raise DataError(f"npz file {source.path} declares arrays of {size_text(need)} ({declared}), more than a data set "
                        f"may hold (half of the memory budget: {budget}); use a smaller file or raise {BUDGET_ENV}")  # fmt: skip


def _read_arrays(source: NpzSource) -> tuple[np.ndarray, np.ndarray]:
    path = source.path
    if not path.is_file():
        raise DatasetNotFoundError(f"npz file {path} does not exist; pass npz:PATH of an existing .npz file")
    _check_declared_size(source)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in (source.images_key, source.labels_key) if key not in archive.files]
            if missing:
                held = ", ".join(archive.files) or "nothing"
                raise DataError(
                    f"npz file {path} has no array {', '.join(repr(k) for k in missing)} (it holds {held}); "
                    "name the image and label arrays as in npz:PATH:IMAGES,LABELS"
                )
            arrays = archive[source.images_key], archive[source.labels_key]
    except DataError:
        raise
    except Exception as error:  # damaged members: bad headers (SyntaxError, TokenError), compression, MemoryError, CRC
        reason = first_line(error, limit=None)
        if "allow_pickle" in reason or "Object arrays" in reason:
            reason = "it holds Python objects, which are not loaded"
        elif not isinstance(error, (ValueError, OSError, zipfile.BadZipFile, EOFError)):
            reason = f"{type(error).__name__}: {reason}"
        raise DataError(f"npz file {path} cannot be read as numeric arrays ({reason}); write it with numpy.savez") from None
    for key, array in zip((source.images_key, source.labels_key), arrays, strict=True):
        if not isinstance(array, np.ndarray):  # NpzFile returns a member without the .npy header as raw bytes
            raise DataError(f"npz file {path}: member {key!r} is not a .npy array (damaged header); write the file with numpy.savez")
    return arrays


def _images(x: np.ndarray, source: NpzSource) -> torch.Tensor:
    where = f"npz file {source.path}: array {source.images_key!r}"
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where} has shape {x.shape}; expected (N, C, H, W) or (N, H, W) "
                        "(move channels-last data with transpose(0, 3, 1, 2))")  # fmt: skip
    if x.shape[0] == 0:
        raise DataError(f"{where} holds no samples")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x))
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where} has dtype {x.dtype}; expected uint8 pixels (scaled by 1/255) or floats")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(x.shape[0], -1).any(axis=1).sum())
        raise DataError(f"{where} holds NaN or Inf values in {bad} sample(s); clean or drop them")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _labels(y: np.ndarray, count: int, source: NpzSource) -> torch.Tensor:
    where = f"npz file {source.path}: array {source.labels_key!r}"
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where} has dtype {y.dtype}; expected integer class labels (convert one-hot labels with argmax(-1))")
    if y.ndim != 1 or y.shape[0] != count:
        raise DataError(f"{where} has shape {y.shape}; expected one label per image ({count},)")
    if int(y.min()) < 0:
        raise DataError(f"{where} holds negative labels (min {int(y.min())}); labels must be class indices 0..K-1")
    return torch.from_numpy(y.astype(np.int64))


def load_npz(source: NpzSource | str) -> ArrayDataset:
    """Load images and labels from an ``.npz`` file (see the module docstring for the format).

    Args:
        source: An :class:`NpzSource`, or its name ``npz:PATH[:IMAGES,LABELS]``.

    Returns:
        An :class:`ArrayDataset` named ``npz:PATH`` with ``num_classes = max(y) + 1``.

    Raises:
        DatasetNotFoundError: The file does not exist.
        DataError: Missing arrays, wrong shapes or dtypes, NaN/Inf inputs, negative labels, no samples.
    """
    source = NpzSource.from_name(source) if isinstance(source, str) else source
    x, y = _read_arrays(source)
    images = _images(x, source)
    labels = _labels(y, int(images.shape[0]), source)
    name = f"{PREFIX}{source.path}"
    logger.info("%s: %d samples of shape %s, %d classes", name, images.shape[0], tuple(images.shape[1:]), int(labels.max()) + 1)
    return ArrayDataset(images, labels, num_classes=int(labels.max()) + 1, name=name, unit_range=False)
