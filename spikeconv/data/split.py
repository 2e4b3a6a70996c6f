"""Which part of a data set to load: the training or the test split."""

from __future__ import annotations

from spikeconv._names import NamedEnum


class Split(NamedEnum):
    """A data set split.

    Splits are a type rather than a string so that a typo fails at the CLI edge, not deep inside
    a loader; :meth:`from_name` turns the CLI's string into a member.
    """

    TRAIN = "train"
    TEST = "test"

    __label__ = "split"
