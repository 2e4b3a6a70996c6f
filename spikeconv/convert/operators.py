"""The converted-operator registry: what each transformer operation becomes in the SNN, by name.

Ingest records every LayerNorm, GELU, softmax and activation product of a graph in
``gm.meta["spikeconv_operators"]`` (module name -> operation name). :func:`convert` then calls
:func:`spike_equivalent_operators_` after the time layout: each operation whose input varies over
time is replaced by the module its registered builder makes from the ANN's module (by default a
:class:`~spikeconv.neurons.expectation.SpikeEquivalentOperator`, which emits the change of ``t``
times the operation on the running means of its inputs), and it is given the number of steps.
Operations on time-invariant values (the first LayerNorm of a ViT, on the patch embedding of a
direct-encoded image) run once, as in the ANN. Before and after, for ``ln -> site``::

    ln = self.ln(add); site = self.site(ln)
    ln = self.ln(add, num_steps); site = self.site(ln, num_steps)            # SpikeEquivalentOperator

Adding an operation: a spelling in ``spikeconv/ingest/transformer_ops.py`` and one
:func:`register_converted_operator` call here.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import fx, nn

from spikeconv.convert.time_layout import TimeKind
from spikeconv.errors import ConfigError
from spikeconv.neurons import SpikingNeuron
from spikeconv.neurons.expectation import SpikeEquivalentOperator

__all__ = ["CONVERTED_OPERATORS", "OPERATORS_KEY", "available_converted_operators", "register_converted_operator",
           "spike_equivalent_operators_"]  # fmt: skip

OPERATORS_KEY = "spikeconv_operators"
"""``gm.meta`` key ingest writes: operation module name -> operation name."""

OperatorBuilder = Callable[[nn.Module, str], SpikingNeuron]
"""``(the ANN's module, operation name) -> stateful module called as (*inputs, num_steps)``."""

CONVERTED_OPERATORS: dict[str, OperatorBuilder] = {}
"""Every transformer operation conversion can make spiking, by operation name."""


def register_converted_operator(kind: str, builder: OperatorBuilder) -> None:
    """Let conversion make the operation ``kind`` spiking with ``builder``.

    Raises:
        ConfigError: ``kind`` is already registered.
    """
    if kind in CONVERTED_OPERATORS:
        raise ConfigError(f"converted operator {kind!r} is already registered")
    CONVERTED_OPERATORS[kind] = builder


def available_converted_operators() -> list[str]:
    """The registered operation names, in registration order."""
    return list(CONVERTED_OPERATORS)


def _expectation(module: nn.Module, kind: str) -> SpikingNeuron:
    return SpikeEquivalentOperator(module, kind=kind)


for _kind in ("layer_norm", "gelu", "softmax", "product"):
    register_converted_operator(_kind, _expectation)


def spike_equivalent_operators_(gm: fx.GraphModule, operators: dict[str, str], kinds: dict[fx.Node, TimeKind],
                                steps: fx.Node) -> dict[str, dict[str, str]]:  # fmt: skip
    """Replace every time-varying transformer operation of ``gm`` by its registered spiking module (in place).

    Args:
        gm: The converted graph after the time layout.
        operators: Module name -> operation name (ingest's ``gm.meta[OPERATORS_KEY]``).
        kinds: The time layout's classification of every node.
        steps: The ``num_steps`` placeholder.

    Returns:
        ``{"spiking": {name: operation}, "static": {name: operation}}`` for the SNN's metadata.

    Raises:
        ConfigError: An operation has no registered builder.
    """
    spiking, static = {}, {}
    for node in gm.graph.nodes:
        kind = operators.get(str(node.target)) if node.op == "call_module" else None
        if kind is None:
            continue
        if kinds.get(node) is not TimeKind.DYNAMIC:
            static[str(node.target)] = kind  # computed once on a time-invariant input, exactly as the ANN does
            continue
        if kind not in CONVERTED_OPERATORS:
            raise ConfigError(f"no converted operator is registered for {kind!r} ({node.name}); "
                              f"registered: {', '.join(available_converted_operators())}")  # fmt: skip
        setattr(gm, str(node.target), CONVERTED_OPERATORS[kind](gm.get_submodule(str(node.target)), kind))
        node.args = (*node.args, steps)
        spiking[str(node.target)] = kind
    return {"spiking": spiking, "static": static}
