"""Parse the SNN papers' compact layer notation (``32C5-P2-64C5-P2-1024``) into layer specs.

The notation is how the papers we reproduce (e.g. Xu, Liu & Yang, arXiv:2112.07426, Table 5)
name their networks, so accepting it lets a user type an architecture on the command line
instead of writing a module. Parsing is separate from building so that errors name the
offending token before any module is made.

Grammar (tokens joined by ``-``; letters are case-insensitive, whitespace around tokens is
ignored)::

    spec    := token ("-" token)*
    token   := conv | avgpool | maxpool | gap | dense | dropout
    conv    := <n> "C" <k> [ "s" <stride> ] [ "p" <pad> ]   n filters of k x k; stride 1, no
                                                           padding unless given (either order)
    avgpool := "P" <k>                                     k x k average pooling, stride k
    maxpool := "M" <k>                                     k x k max pooling, stride k
    gap     := "AP"                                        global average pooling
    dense   := <n>                                         fully connected layer of width n
    dropout := "D" <p>                                     dropout with probability 0 <= p < 1

Convolution and pooling tokens must come before the first dense layer. The classifier (a dense
layer with one output per class and no activation) is not part of the notation; the builder
appends it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from spikeconv.errors import ConfigError

__all__ = [
    "NOTATION_GRAMMAR",
    "ConvSpec",
    "DenseSpec",
    "DropoutSpec",
    "GlobalAvgPoolSpec",
    "LayerSpec",
    "PoolKind",
    "PoolSpec",
    "parse_notation",
]

NOTATION_GRAMMAR = (
    "tokens joined by '-': <n>C<k>[s<stride>][p<pad>] = conv with n filters of k x k, "
    "P<k> = k x k average pooling (stride k), M<k> = k x k max pooling, AP = global average "
    "pooling, <n> = dense layer of width n, D<p> = dropout with 0 <= p < 1; "
    "e.g. 32C5-P2-64C5-P2-1024"
)

_CONV_RE = re.compile(r"(\d+)C(\d+)((?:[SP]\d+)*)", re.IGNORECASE)
_CONV_SUFFIX_RE = re.compile(r"([SP])(\d+)", re.IGNORECASE)
_POOL_RE = re.compile(r"([PM])(\d+)", re.IGNORECASE)
_DENSE_RE = re.compile(r"\d+")
_DROPOUT_RE = re.compile(r"D(\d+(?:\.\d*)?|\.\d+)", re.IGNORECASE)


class PoolKind(enum.Enum):
    """Pooling operator of a :class:`PoolSpec`."""

    AVG = "P"
    MAX = "M"


@dataclass(frozen=True)
class ConvSpec:
    """A 2-d convolution followed by (optional batch norm and) a ReLU.

    Attributes:
        out_channels: Number of filters.
        kernel_size: Side of the square kernel.
        stride: Stride in both dimensions.
        padding: Zero padding on every side.
    """

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0

    @property
    def token(self) -> str:
        """The canonical notation token, e.g. ``64C3p1``."""
        stride = f"s{self.stride}" if self.stride != 1 else ""
        padding = f"p{self.padding}" if self.padding != 0 else ""
        return f"{self.out_channels}C{self.kernel_size}{stride}{padding}"


@dataclass(frozen=True)
class PoolSpec:
    """A k x k pooling layer with stride k (average by default, as in the papers)."""

    kernel_size: int
    kind: PoolKind = PoolKind.AVG

    @property
    def token(self) -> str:
        """The canonical notation token, e.g. ``P2``."""
        return f"{self.kind.value}{self.kernel_size}"


@dataclass(frozen=True)
class GlobalAvgPoolSpec:
    """Global average pooling: each channel becomes one value."""

    @property
    def token(self) -> str:
        """The canonical notation token, ``AP``."""
        return "AP"


@dataclass(frozen=True)
class DenseSpec:
    """A hidden fully connected layer followed by (optional batch norm and) a ReLU."""

    features: int

    @property
    def token(self) -> str:
        """The canonical notation token, e.g. ``1024``."""
        return str(self.features)


@dataclass(frozen=True)
class DropoutSpec:
    """Dropout with probability ``p`` (identity in eval mode, so conversion ignores it)."""

    p: float

    @property
    def token(self) -> str:
        """The canonical notation token, e.g. ``D0.2``."""
        return f"D{self.p:g}"


LayerSpec = ConvSpec | PoolSpec | GlobalAvgPoolSpec | DenseSpec | DropoutSpec


def parse_notation(spec: str) -> tuple[LayerSpec, ...]:
    """Parse layer notation into a tuple of layer specs (the classifier is not included).

    Args:
        spec: Notation such as ``"32C5-P2-64C5-P2-1024"``; see the module docstring.

    Returns:
        One spec per token, in order.

    Raises:
        ConfigError: A token is malformed or out of place; the message names the token, its
            1-based position and the grammar.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty layer notation {spec!r}; expected {NOTATION_GRAMMAR}")
    layers: list[LayerSpec] = []
    seen_dense = False
    for position, raw in enumerate(spec.split("-"), start=1):
        token = raw.strip()
        layer = _parse_token(token, position, spec)
        if seen_dense and isinstance(layer, ConvSpec | PoolSpec | GlobalAvgPoolSpec):
            raise _token_error(
                token, position, spec, "convolution and pooling must come before dense layers"
            )
        seen_dense = seen_dense or isinstance(layer, DenseSpec)
        layers.append(layer)
    return tuple(layers)


def _parse_token(token: str, position: int, spec: str) -> LayerSpec:
    """Turn one token into its spec, or raise a ConfigError naming it."""
    if match := _CONV_RE.fullmatch(token):
        return _parse_conv(match, token, position, spec)
    if match := _POOL_RE.fullmatch(token):
        kernel = _positive(match.group(2), "pool size", token, position, spec)
        kind = PoolKind.AVG if match.group(1).upper() == "P" else PoolKind.MAX
        return PoolSpec(kernel_size=kernel, kind=kind)
    if token.upper() == "AP":
        return GlobalAvgPoolSpec()
    if _DENSE_RE.fullmatch(token):
        return DenseSpec(features=_positive(token, "dense width", token, position, spec))
    if match := _DROPOUT_RE.fullmatch(token):
        p = float(match.group(1))
        if not 0.0 <= p < 1.0:
            raise _token_error(token, position, spec, f"dropout probability {p:g} is not in [0, 1)")
        return DropoutSpec(p=p)
    reason = "empty token (two '-' in a row?)" if not token else "not a known layer token"
    raise _token_error(token, position, spec, reason)


def _parse_conv(match: re.Match[str], token: str, position: int, spec: str) -> ConvSpec:
    """Build a ConvSpec from a matched ``<n>C<k>[s<stride>][p<pad>]`` token."""
    filters = _positive(match.group(1), "number of filters", token, position, spec)
    kernel = _positive(match.group(2), "kernel size", token, position, spec)
    options: dict[str, int] = {}
    for letter, value in _CONV_SUFFIX_RE.findall(match.group(3)):
        key = "stride" if letter.lower() == "s" else "padding"
        if key in options:
            raise _token_error(token, position, spec, f"{key} given twice")
        options[key] = int(value)
    if options.get("stride", 1) < 1:
        raise _token_error(token, position, spec, "stride must be >= 1")
    return ConvSpec(out_channels=filters, kernel_size=kernel, **options)


def _positive(text: str, what: str, token: str, position: int, spec: str) -> int:
    """Parse a positive integer field of a token."""
    value = int(text)
    if value < 1:
        raise _token_error(token, position, spec, f"{what} must be >= 1, got {value}")
    return value


def _token_error(token: str, position: int, spec: str, reason: str) -> ConfigError:
    """A one-line error naming the token, its position and the grammar."""
    return ConfigError(
        f"invalid layer token {token!r} at position {position} of {spec!r}: {reason}; "
        f"expected {NOTATION_GRAMMAR}"
    )
