"""Checks that data fits a model, run before any work so errors come first and cheaply.

Each check raises one :class:`~spikeconv.errors.DataError` line naming the data and the model:
no samples; a sample shape other than the model's input shape; more classes than the model has
outputs; labels outside ``0..outputs-1``. (NaN/Inf inputs are refused when an in-memory data set
is made, see :class:`~spikeconv.data.ArrayDataset`.)
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

from spikeconv.errors import DataError


def sample_shape_of(dataset: Dataset) -> tuple[int, ...]:
    """Shape of one sample (from the data set's attribute, else its first item)."""
    shape = getattr(dataset, "sample_shape", None)
    if shape is not None:
        return tuple(shape)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError("the data set is empty")
    return tuple(dataset[0][0].shape)


def _labels_of(dataset: Dataset) -> torch.Tensor | None:
    """All labels without reading the inputs, where the data set keeps them apart (else None)."""
    if isinstance(dataset, Subset):
        labels = _labels_of(dataset.dataset)
        return None if labels is None else labels[torch.as_tensor(list(dataset.indices), dtype=torch.int64)]
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, torch.Tensor):
        return labels.reshape(-1)
    samples = getattr(dataset, "samples", None)  # torchvision-style (path, label) lists
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple):
        return torch.tensor([int(label) for _, label in samples])
    return None


def check_data_fits(
    dataset: Dataset, *, input_shape: tuple[int, ...], num_classes: int, what: str, model: str = "the model"
) -> None:
    """Raise a one-line DataError unless ``dataset`` suits a model of this input and output.

    Args:
        dataset: The data (``len``, and ``sample_shape``/``num_classes``/``labels`` where it has them).
        input_shape: The model's per-sample input shape.
        num_classes: The model's number of outputs.
        what: The data, named in messages (``"calibration (fashion-mnist)"``).
        model: The model, named in messages.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError(f"{what} data is empty; give a data set with samples")
    shape = sample_shape_of(dataset)
    if tuple(shape) != tuple(input_shape):
        raise DataError(f"{what} samples have shape {tuple(shape)} but {model} expects {tuple(input_shape)}")
    classes = getattr(dataset, "num_classes", None)
    if classes is not None and classes > num_classes:
        raise DataError(f"{what} data has {classes} classes (labels 0..{classes - 1}) but {model} has only {num_classes} outputs")
    labels = _labels_of(dataset)
    if labels is not None and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{what} labels run from {int(labels.min())} to {int(labels.max())}, outside the {num_classes} outputs "
                        f"of {model} (0..{num_classes - 1})")  # fmt: skip
