"""Edge order for importers whose graph executor runs nodes depth first (``nirtorch.load``: sinabs, Norse).

nirtorch's old ``GraphExecutor`` computes its execution order once, as a pre-order depth-first walk
from the input along each node's outgoing edges in file order, and a node whose input has not run
yet in the current step reads that input's value from the previous step. A residual join is right
only if the walk reaches it last through its longest branch: with the children of every node sorted
longest-path-first, an identity shortcut (an edge straight into the join) comes out right, and a
join with a layer on both branches cannot (``bench/interop_consumer.py probe`` shows both).
"""

from __future__ import annotations

from typing import Any

from spikeconv.errors import ConversionError

__all__ = ["depth_first_order_"]


def _longest_paths(nodes: list[str], successors: dict[str, list[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for start in reversed(nodes):  # iterative post-order: the graph is a DAG
        stack = [(start, False)]
        while stack:
            name, done = stack.pop()
            if name in depth:
                continue
            if done:
                depth[name] = 1 + max((depth[s] for s in successors[name]), default=0)
                continue
            stack.append((name, True))
            stack.extend((s, False) for s in successors[name] if s not in depth)
    return depth


def depth_first_order_(graph: Any, library: str) -> None:
    """Sort ``graph.edges`` so that the depth-first executor runs every node after all its inputs (in place).

    Raises:
        ConversionError: No order does (a join with a layer on more than one branch); names the node.
    """
    names = list(graph.nodes)
    successors: dict[str, list[str]] = {name: [] for name in names}
    predecessors: dict[str, list[str]] = {name: [] for name in names}
    for source, target in graph.edges:
        successors[source].append(target)
        predecessors[target].append(source)
    depth = _longest_paths(names, successors)
    edges = sorted(graph.edges, key=lambda edge: -depth[edge[1]])
    ordered_successors: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        ordered_successors[source].append(target)
    roots = [name for name in names if not predecessors[name]]
    order, seen = [], set()
    stack = list(reversed(roots[:1]))
    while stack:  # pre-order, children in edge order (nirtorch's trace_execution)
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        order.append(name)
        stack.extend(reversed([s for s in ordered_successors[name] if s not in seen]))
    position = {name: i for i, name in enumerate(order)}
    for name in order:
        late = [p for p in predecessors[name] if position.get(p, len(order)) > position[name]]
        if late:
            raise ConversionError(f"node {name}: {library}'s graph executor (nirtorch.load) runs nodes depth first and would run "
                                  f"it before its input {late[0]}, which then arrives a step late; a residual join with a layer "
                                  "on more than one branch cannot be expressed for this target")  # fmt: skip
    graph.edges = edges
