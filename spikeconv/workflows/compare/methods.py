"""The methods ``spikeconv compare`` can put side by side, and its option strings turned into types.

A method is the ANN itself (``ann``), a conversion recipe of :mod:`spikeconv.convert.methods`
applied to that ANN (``rate``, ``calibrated``, ...), or a directly trained SNN named after its
neuron (``srif``, ``srif-mpr``, ``mtlif``, ...; ``-mpr`` adds the membrane potential rectifier),
trained from scratch or, with ``-from-ann`` (``srif-mpr-from-ann``), starting from the ANN's weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from spikeconv.convert.methods import METHODS
from spikeconv.errors import ConfigError
from spikeconv.neurons import available_trainable_neurons
from spikeconv.options import has_mpr

__all__ = [
    "COMPARE_METHODS",
    "DIRECT_INITS",
    "DEFAULT_COMPARE_METHODS",
    "DEFAULT_COMPARE_TIMESTEPS",
    "CompareMethod",
    "MethodKind",
    "compare_method",
    "expand_direct_inits",
    "parse_checkpoints",
    "parse_methods",
    "parse_per_method",
    "parse_timesteps",
]


class MethodKind(Enum):
    """How a compared network is made."""

    ANN = "ann"
    CONVERSION = "conversion"
    DIRECT = "direct"


@dataclass(frozen=True)
class CompareMethod:
    """One compared method: its name, kind, and for direct training the neuron, MPR switch and starting weights."""

    name: str
    kind: MethodKind
    neuron: str | None = None
    mpr: bool = False
    from_ann: bool = False  # direct training that starts from the compared ANN's weights

    @property
    def label(self) -> str:
        """Name in tables and plots."""
        if self.kind is MethodKind.ANN:
            return "ANN"
        return f"{'conversion' if self.kind is MethodKind.CONVERSION else 'direct'}: {self.name}"

    @property
    def scratch_name(self) -> str:
        """The direct method's name without ``-from-ann``."""
        return self.name.removesuffix(FROM_ANN)


FROM_ANN = "-from-ann"
DIRECT_INITS = ("scratch", "ann", "both")
"""``--direct-init``: where directly trained methods start (``both`` lists each twice: ``X`` and ``X-from-ann``)."""


def _direct_methods() -> dict[str, CompareMethod]:
    found = {}
    for neuron in available_trainable_neurons():
        for name, mpr in [(neuron, False)] + ([(f"{neuron}-mpr", True)] if has_mpr(neuron) else []):
            found[name] = CompareMethod(name, MethodKind.DIRECT, neuron=neuron, mpr=mpr)
            found[name + FROM_ANN] = CompareMethod(name + FROM_ANN, MethodKind.DIRECT, neuron=neuron, mpr=mpr, from_ann=True)
    return found


def expand_direct_inits(names: Iterable[str], direct_init: str) -> tuple[str, ...]:
    """Each directly trained method once per starting point of ``direct_init`` (order kept, each name once).

    Raises:
        ConfigError: ``direct_init`` is not one of :data:`DIRECT_INITS`.
    """
    if direct_init not in DIRECT_INITS:
        raise ConfigError(f"--direct-init must be one of {', '.join(DIRECT_INITS)}, got {direct_init!r}")
    expanded: list[str] = []
    for name in names:
        method = compare_method(name)
        if method.kind is not MethodKind.DIRECT or method.from_ann:
            expanded.append(method.name)
            continue
        expanded += {"scratch": [method.name], "ann": [method.name + FROM_ANN],
                     "both": [method.name, method.name + FROM_ANN]}[direct_init]  # fmt: skip
    return tuple(dict.fromkeys(expanded))


def _all_methods() -> dict[str, CompareMethod]:
    methods = {"ann": CompareMethod("ann", MethodKind.ANN)}
    methods.update({name: CompareMethod(name, MethodKind.CONVERSION) for name in METHODS})
    methods.update(_direct_methods())
    return methods


COMPARE_METHODS = tuple(_all_methods())
"""Every method name ``--methods`` accepts."""

DEFAULT_COMPARE_METHODS = ("ann", "calibrated", "srif-mpr", "mtlif")
DEFAULT_COMPARE_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64)


def compare_method(name: str) -> CompareMethod:
    """The method called ``name``.

    Raises:
        ConfigError: Unknown name (the message lists the known ones).
    """
    method = _all_methods().get(str(name).strip().lower())
    if method is None:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(COMPARE_METHODS)}")
    return method


def _split(text: str | Iterable[str]) -> list[str]:
    items = [text] if isinstance(text, str) else list(text)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def parse_methods(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"ann,calibrated,mtlif"`` -> canonical method names, in order, each once.

    Raises:
        ConfigError: No method, an unknown one, or one named twice.
    """
    names = [compare_method(part).name for part in _split(text)]
    if not names:
        raise ConfigError("--methods is empty; name at least one method, e.g. ann,calibrated")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"method(s) {', '.join(duplicates)} named twice in --methods")
    return tuple(names)


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{what} must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"{what} must be >= 1, got {value}")
    return value


def parse_timesteps(text: str | Iterable[str | int]) -> tuple[int, ...]:
    """``"1,2,4,8"`` -> sorted distinct budgets ``(1, 2, 4, 8)``.

    Raises:
        ConfigError: The list is empty or holds something that is not an integer >= 1.
    """
    parts = _split(text if isinstance(text, str) else [str(t) for t in text])
    if not parts:
        raise ConfigError("--timesteps is empty; give a list such as 1,2,4,8,16,32,64")
    return tuple(sorted({_positive_int(p, "each timestep in --timesteps") for p in parts}))


def parse_per_method(values: Iterable[str], *, option: str) -> dict[str, int]:
    """``["3", "mtlif=5"]`` -> ``{"*": 3, "mtlif": 5}``: a bare number applies to every method.

    Raises:
        ConfigError: A value is not ``N`` or ``METHOD=N``, names an unknown method, or N < 1.
    """
    parsed: dict[str, int] = {}
    for value in _split(values):
        name, sep, number = value.rpartition("=")
        key = compare_method(name).name if sep else "*"
        if key in parsed:
            raise ConfigError(f"{option} gives {'a default' if key == '*' else key} twice")
        parsed[key] = _positive_int(number, f"{option} {value!r}")
    return parsed


def parse_checkpoints(values: Iterable[str]) -> dict[str, Path]:
    """``["ann=ann.pt", "srif-mpr=snn.pt"]`` -> ``{"ann": Path("ann.pt"), ...}``.

    Raises:
        ConfigError: A value is not ``METHOD=PATH``, names an unknown method, or one twice.
    """
    parsed: dict[str, Path] = {}
    for value in values:
        name, sep, path = str(value).partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--checkpoint takes METHOD=PATH (e.g. ann=ann.pt), got {value!r}")
        key = compare_method(name).name
        if key in parsed:
            raise ConfigError(f"--checkpoint gives {key} twice")
        parsed[key] = Path(path.strip())
    return parsed


def check_method_keys(mapping: Mapping[str, object], methods: Iterable[CompareMethod], *, option: str,
                      kinds: tuple[MethodKind, ...]) -> None:  # fmt: skip
    """Every key of ``mapping`` (but ``*``) must be a selected method of one of ``kinds``."""
    chosen = {m.name: m for m in methods}
    for key in mapping:
        if key == "*":
            continue
        if key not in chosen:
            raise ConfigError(f"{option} names {key!r}, which is not among the compared methods {', '.join(chosen)}")
        if chosen[key].kind not in kinds:
            raise ConfigError(f"{option} does not apply to {key!r} ({chosen[key].kind.value})")
