"""Enums chosen by name at the CLI/JSON edge: one ``from_name`` for every mode Enum.

A leaf like ``errors``: every package may import it. Members are looked up ignoring case,
surrounding spaces, and treating ``-`` and ``_`` alike, by their value (for string values) or
their name, so ``calibrated-light``, ``CALIBRATED_LIGHT`` and ``calibrated_light`` all work.

Subclasses may set two dunder attributes (dunder names are not Enum members):

* ``__label__``: the noun of the error message (default: the class name), e.g. ``"max-pool mode"``;
* ``__choices_sep__``: what follows ``choose one of`` (default ``": "``).
"""

from __future__ import annotations

from enum import Enum
from typing import Self

from spikeconv.errors import ConfigError

__all__ = ["NamedEnum", "name_key"]


def name_key(text: object) -> str:
    """``text`` as names are compared: stripped, lower case, ``_`` read as ``-``."""
    return str(text).strip().lower().replace("_", "-")


class NamedEnum(Enum):
    """An Enum whose members are chosen by name; the error lists the valid names."""

    @classmethod
    def names(cls) -> list[str]:
        """The CLI names of all members, e.g. ``["subtract", "zero"]``."""
        return [member.cli_name for member in cls]

    @property
    def cli_name(self) -> str:
        """This member's CLI name: its string value, else its lower-case name with ``-``."""
        return self.value if isinstance(self.value, str) else self.name.lower().replace("_", "-")

    @classmethod
    def from_name(cls, name: str) -> Self:
        """The member called ``name``, or a one-line ConfigError listing the choices."""
        key = name_key(name)
        for member in cls:
            if key in (name_key(member.cli_name), name_key(member.name)):
                return member
        label = cls.__dict__.get("__label__", cls.__name__)
        sep = cls.__dict__.get("__choices_sep__", ": ")
        raise ConfigError(f"unknown {label} {name!r}; choose one of{sep}{', '.join(cls.names())}")
