"""Which part of a data set to load: the training or the test split."""

from __future__ import annotations

from enum import Enum

from spikeconv.errors import ConfigError


class Split(Enum):
    """A data set split.

    Splits are a type rather than a string so that a typo fails at the CLI edge, not deep inside
    a loader; :meth:`from_name` turns the CLI's string into a member.
    """

    TRAIN = "train"
    TEST = "test"

    @classmethod
    def from_name(cls, name: str) -> Split:
        """Return the split called ``name`` (``"train"`` or ``"test"``, case-insensitive).

        Raises:
            ConfigError: ``name`` is not a split.
        """
        key = str(name).strip().lower()
        for member in cls:
            if member.value == key:
                return member
        choices = ", ".join(m.value for m in cls)
        raise ConfigError(f"unknown split {name!r}; choose one of: {choices}")
