"""Errors raised by spikeconv.

Every error a user can cause is a :class:`SpikeconvError`. The CLI prints such an error as a single
line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SpikeconvError(Exception):
    """Base class: a problem with the user's input, named so that the user can fix it."""


class UnsupportedLayerError(SpikeconvError):
    """The model contains nodes that cannot be converted; the message lists all of them."""


class CalibrationError(SpikeconvError):
    """Calibration could not produce thresholds (empty data, NaN activations, bad plan)."""


class ConversionError(SpikeconvError):
    """A graph cannot be converted, e.g. it was not prepared by :func:`spikeconv.prepare`."""


class DataError(SpikeconvError):
    """Data is missing, malformed, or does not fit the model."""


class DatasetNotFoundError(DataError):
    """A data set's files are absent; the message says where we looked and how to get them."""


class CheckpointError(SpikeconvError):
    """A checkpoint or model file cannot be read, or does not hold what it should."""


class ConfigError(SpikeconvError):
    """An option has an invalid value (e.g. ``timesteps <= 0``)."""
