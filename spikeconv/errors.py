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


class OutputError(ConfigError):
    """An output path cannot or must not be written: a folder, an input of the command, two outputs
    at one path, or a folder that cannot be written; checked before any work starts."""


def first_line(exc: BaseException, *, limit: int | None = 200, empty: str | None = None) -> str:
    """The first line of an exception's message, for one-line errors.

    At most ``limit`` characters (``None``: the whole line); an empty message gives ``empty``, or
    the exception's type name when ``empty`` is ``None``.
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if empty is None else empty
    return text.splitlines()[0][:limit]
