"""Checks that data fits a model, run before any work so errors come first and cheaply."""

from __future__ import annotations

from torch.utils.data import Dataset

from spikeconv.errors import DataError


def sample_shape_of(dataset: Dataset) -> tuple[int, ...]:
    """Shape of one sample (from the data set's attribute, else its first item)."""
    shape = getattr(dataset, "sample_shape", None)
    if shape is not None:
        return tuple(shape)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError("the data set is empty")
    return tuple(dataset[0][0].shape)


def check_data_fits(
    dataset: Dataset, *, input_shape: tuple[int, ...], num_classes: int, what: str
) -> None:
    """Raise a one-line DataError unless ``dataset`` suits a model of this input and output."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError(f"{what} data is empty")
    shape = sample_shape_of(dataset)
    if tuple(shape) != tuple(input_shape):
        raise DataError(
            f"{what} samples have shape {tuple(shape)} but the model expects {tuple(input_shape)}"
        )
    classes = getattr(dataset, "num_classes", None)
    if classes is not None and classes > num_classes:
        raise DataError(
            f"{what} data has {classes} classes but the model has only {num_classes} outputs"
        )
