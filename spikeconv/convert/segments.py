"""Run a graph a segment at a time over several batches, keeping each batch's live values in between.

The layer-by-layer corrections measure site 1 on every batch, then site 2 with site 1 corrected, and so
on. Simulating each batch from the input again for every site costs ``L/2`` whole simulations for ``L``
sites; continuing from where the previous site stopped costs one. :class:`SegmentRunner` does that:
it executes the graph's nodes in order up to a stopping node, and keeps, per batch, only the values that
later nodes still read (the frontier). Stateful modules (neurons, spiking max-pools) are reset before
they run, as :class:`~spikeconv.neurons.SpikingNetwork` resets them before every forward, and each runs
once per batch with all its steps, so the values are those of a whole-network forward.

The frontier of a deep network at a large input can be large, so it is kept only while all batches'
frontiers together fit ``limit`` bytes; :attr:`SegmentRunner.kept` turns False when they would not, and
the caller then runs each batch from the input again (the same values, more work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx

__all__ = ["SegmentRunner"]


def _nbytes(values: dict[fx.Node, Any]) -> int:
    seen, total = set(), 0
    for value in values.values():
        if isinstance(value, Tensor) and value.untyped_storage().data_ptr() not in seen:
            seen.add(value.untyped_storage().data_ptr())
            total += value.untyped_storage().nbytes()
    return total


class SegmentRunner:
    """Execute ``graph``'s nodes in order on several batches, pausing before chosen nodes.

    Args:
        graph: The module graph (an SNN body or an ANN); its placeholders are bound by ``inputs(x)``.
        inputs: Values of the placeholders for a batch ``x``, in order.
        limit: Most bytes all batches' frontiers may take together; beyond it nothing is kept.
    """

    def __init__(self, graph: fx.GraphModule, inputs: Callable[[Tensor], tuple[Any, ...]], limit: int) -> None:
        self.graph, self.inputs, self.limit = graph, inputs, limit
        self.nodes = list(graph.graph.nodes)
        self.position = {node: index for index, node in enumerate(self.nodes)}
        self.last_use = {node: max((self.position[user] for user in node.users), default=-1) for node in self.nodes}
        self.frontiers: dict[int, tuple[int, dict[fx.Node, Any]]] = {}
        self.kept = True
        self.interpreter = fx.Interpreter(graph, garbage_collect_values=False)

    def advance(self, batch: int, x: Tensor, stop: fx.Node) -> dict[fx.Node, Any]:
        """Run batch ``batch`` (input ``x``) from where it paused up to ``stop`` (not included); return its values.

        Without a kept frontier (the first call, or once :attr:`kept` is False) the batch starts at the input.
        """
        start, env = self.frontiers.pop(batch, (0, None)) if self.kept else (0, None)
        if env is None:
            env = {}
        end = self.position[stop]
        for index in range(start, end):
            self._run(self.nodes[index], env, x)
            for node in [n for n in env if self.last_use[n] <= index]:
                del env[node]  # read by no later node (a batch that starts again binds the inputs anew)
        if self.kept:
            self.frontiers[batch] = (end, env)
            if sum(_nbytes(values) for _, values in self.frontiers.values()) > self.limit:
                self.kept, self.frontiers = False, {}
        return env

    def frontier_bytes(self, x: Tensor, stops: list[fx.Node]) -> int:
        """The largest frontier of ``x`` over ``stops`` (run in order, nothing kept): what one batch like ``x`` keeps."""
        probe = SegmentRunner(self.graph, self.inputs, limit=1 << 62)
        return max((_nbytes(probe.advance(0, x, stop)) for stop in stops), default=0)

    def value(self, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
        """Evaluate ``node`` on ``env`` without keeping its result (the site being measured)."""
        return self._evaluate(node, env)

    def _run(self, node: fx.Node, env: dict[fx.Node, Any], x: Tensor) -> None:
        if node.op == "placeholder":
            placeholders = [n for n in self.nodes if n.op == "placeholder"]
            env[node] = self.inputs(x)[placeholders.index(node)]
        elif node.op != "output":
            env[node] = self._evaluate(node, env)

    def _evaluate(self, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
        if node.op == "call_module":
            module = self.graph.get_submodule(str(node.target))
            if hasattr(module, "reset_state"):
                module.reset_state()  # every batch starts from fresh state, as a whole forward does
        self.interpreter.env = env
        return self.interpreter.run_node(node)
