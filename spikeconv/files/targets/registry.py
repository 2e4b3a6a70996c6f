"""The export targets, one per consumer library, in one registry keyed by target name.

A target is what ``spikeconv export --target NAME`` writes and what ``spikeconv convert --target
NAME`` converts for: the conventions the library's own NIR importer implements (measured by
running it, ``bench/interop_check.py``), as conversion rules (:class:`~spikeconv.convert.target_rules.TargetRules`)
and as a writing :class:`~spikeconv.files.targets.graph.Dialect`. ``nir`` is the exact NIR file
(:mod:`spikeconv.files.nir_export`), which no consumer maps but any NIR reader simulates. Adding a
target is one module that builds an :class:`ExportTarget` and calls :func:`register_target`.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeconv.convert.target_rules import TargetRules
from spikeconv.errors import ConfigError
from spikeconv.files.targets.graph import Dialect

__all__ = ["TARGETS", "ExportTarget", "available_targets", "export_target", "register_target", "target_rules"]


@dataclass(frozen=True)
class ExportTarget:
    """One consumer library's reading of NIR.

    Attributes:
        name: ``--target`` name.
        library: The library and the version whose importer was measured.
        importer: How a user loads the file, one line of Python.
        rules: The neuron and graph conversion must produce (None: the exact NIR file, no constraints).
        dialect: How the writer compensates for the importer (None for the exact file).
        depth_first: The importer's graph executor (``nirtorch.load``) runs nodes in depth-first order,
            so a node must be reached last through its longest input path.
        nir_1_0_4: The library installs nir <= 1.0.4, whose ``IF`` has no ``v_reset`` (the file leaves it out).
        conventions: (what, how the importer reads it), as measured; for ``info`` and the docs.
    """

    name: str
    library: str
    importer: str
    rules: TargetRules | None = None
    dialect: Dialect | None = None
    depth_first: bool = False
    nir_1_0_4: bool = False
    conventions: tuple[tuple[str, str], ...] = ()


TARGETS: dict[str, ExportTarget] = {}
"""Every export target by name, in registration order (the CLI's ``--target`` choices)."""


def register_target(target: ExportTarget) -> None:
    """Let ``export --target`` and ``convert --target`` use ``target``.

    Raises:
        ConfigError: Its name is already registered.
    """
    if target.name in TARGETS:
        raise ConfigError(f"an export target {target.name!r} is already registered")
    TARGETS[target.name] = target


def available_targets() -> list[str]:
    return list(TARGETS)


def export_target(name: str) -> ExportTarget:
    """The registered target called ``name``.

    Raises:
        ConfigError: No such target (the message lists them).
    """
    if name not in TARGETS:
        raise ConfigError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[name]


def target_rules(name: str | None) -> TargetRules | None:
    """What ``convert --target name`` constrains (None for no target and for the exact ``nir`` file)."""
    return None if name is None else export_target(name).rules
