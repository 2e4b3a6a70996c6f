"""ONNX attention made batch first, before the support scan: each attention block as projections, products and softmax.

Both torch exporters write ``nn.MultiheadAttention`` (``batch_first=True``) as a transpose of the batch
to dimension 1, the packed input projection, reshapes that merge the batch with the heads (computed
from ``Shape`` by the TorchScript exporter, fixed at the export's batch by the dynamo one), the
scaled products and the softmax, and the same moves back. A converted network runs on a
time-flattened batch ``T·N``, so nothing may fix or move the batch. Each attention block, from the
tensor its projections read to the tensor its output projection's result becomes, is replaced by
batch-first ONNX nodes::

    q, k, v = MatMul(x, Wᵀ) + b -> Reshape [0, 0, h, d] -> Transpose [0, 2, 1, 3]     (each)
    y = MatMul(Softmax(MatMul(q, Transpose(k)) · s), v) -> Transpose -> Reshape [0, 0, E] -> MatMul(·, W_oᵀ) + b_o

The rows of the projections that feed each head, the columns of the output projection that read
each head, and the scale ``s`` (every constant factor on the way) are not read off the op sequence
(the exporters differ) but traced: the block's layout ops run, with ONNX's reference evaluator, on
tensors that hold each element's batch, token and feature index, and must put every element where
the batch-first form puts it; a block whose layout does not is refused, naming its softmax. The
ingested graph is compared with onnxruntime on the original model afterwards, values included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest.onnx.attention_trace import (
    Graph,
    Projection,
    back,
    data_inputs,
    forward,
    index,
    projection_at,
    readers,
    run,
)

__all__ = ["rewrite_attention_"]


@dataclass(frozen=True)
class _Operand:
    """One of q, k, v traced to its projection: the entry it reads, the projection, its factor, and per leading position
    of the attention tensors the batch and the projection row of each element of the head."""

    entry: str
    projection: Projection
    factor: float
    batch: np.ndarray  # [P]
    rows: np.ndarray  # [P, d]


def _refuse(where: str, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"cannot convert attention {where}: {why}")


def _through_projection(x: np.ndarray, features: int) -> np.ndarray:
    return np.broadcast_to(x[..., :1], (*x.shape[:-1], features)).copy()


def _operand(g: Graph, name: str, transposed: bool, where: str) -> _Operand:
    top, to_core, factor = back(g, name, stop=lambda n: projection_at(g, n) is not None)
    projection = projection_at(g, top)
    if projection is None:
        raise _refuse(where, "its query, key or value does not come from a linear projection")
    entry, to_projection, before = back(g, projection.data, stop=lambda n: False)
    shape = tuple(g.values[entry].shape)
    if len(shape) != 3:
        raise _refuse(where, f"its projections read a {len(shape)}-D tensor; expected [N, L, E]")
    batch, token, feature = (run(g, to_projection, index(shape, axis)) for axis in range(3))
    if not np.array_equal(feature, index(feature.shape, feature.ndim - 1)):
        raise _refuse(where, "its projection does not act on the feature dimension")
    out = projection.weight.shape[0]
    traced = [run(g, to_core, v) for v in (_through_projection(batch, out), _through_projection(token, out),
                                              index((*batch.shape[:-1], out), batch.ndim - 1))]  # fmt: skip
    if transposed:
        traced = [np.swapaxes(v, -1, -2) for v in traced]
    if traced[0].ndim < 3:
        raise _refuse(where, "its heads are not [..., L, d] tensors")
    length, depth = traced[0].shape[-2:]
    batch_at, token_at, feature_at = (v.reshape(-1, length, depth) for v in traced)
    if not np.array_equal(token_at, np.broadcast_to(index((1, length, depth), 1), token_at.shape)):
        raise _refuse(where, "its heads do not keep the tokens in order")
    if not (np.array_equal(batch_at, np.broadcast_to(batch_at[:, :1, :1], batch_at.shape))
            and np.array_equal(feature_at, np.broadcast_to(feature_at[:, :1, :], feature_at.shape))):  # fmt: skip
        raise _refuse(where, "its heads mix samples or tokens")
    return _Operand(entry, projection, factor * before, batch_at[:, 0, 0].astype(np.int64), feature_at[:, 0, :].astype(np.int64))


def _heads(operands: list[_Operand], where: str) -> tuple[np.ndarray, int]:
    """Head of every leading position (its rank among its sample's positions) and the number of heads."""
    batch = operands[0].batch
    if any(not np.array_equal(o.batch, batch) for o in operands):
        raise _refuse(where, "its query, key and value split the batch differently")
    head = np.zeros_like(batch)
    counts = set()
    for b in np.unique(batch):
        positions = np.flatnonzero(batch == b)
        head[positions] = np.arange(len(positions))
        counts.add(len(positions))
    if len(counts) != 1:
        raise _refuse(where, "its samples have different numbers of heads")
    return head, counts.pop()


def _canonical_rows(operand: _Operand, head: np.ndarray, heads: int, where: str) -> np.ndarray:
    """Projection rows in head order ``[h·d + j]``; the same for every sample."""
    first = {h: operand.rows[np.flatnonzero(head == h)] for h in range(heads)}
    if any(not np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)) for rows in first.values()):
        raise _refuse(where, "its samples read different projection rows")
    return np.concatenate([first[h][0] for h in range(heads)])


@dataclass(frozen=True)
class _Output:
    """The output projection with its columns in head order, the block's last tensor."""

    weight: np.ndarray
    bias: np.ndarray | None
    exit: str


def _output(g: Graph, context: str, head: np.ndarray, batch: np.ndarray, where: str) -> _Output:
    to_projection = forward(g, context)
    last = to_projection[-1].output if to_projection else context
    users = readers(g, last)
    candidate = users[0].output[0] if len(users) == 1 else None
    add = readers(g, candidate) if candidate else []
    if len(add) == 1 and add[0].op_type == "Add":
        candidate = add[0].output[0] if projection_at(g, add[0].output[0]) is not None else candidate
    projection = projection_at(g, candidate) if candidate else None
    if projection is None or projection.data != last:
        raise _refuse(where, "its result does not reach a linear output projection")
    after = forward(g, projection.output)
    exit_name = after[-1].output if after else projection.output
    shape = tuple(g.values[context].shape)
    length, depth = shape[-2:]
    feature = (head[:, None, None] * depth + np.arange(depth)[None, None, :]).astype(np.float64)
    traces = [np.broadcast_to(feature, (len(head), length, depth)).reshape(shape),
              np.broadcast_to(index((1, length, depth), 1), (len(head), length, depth)).reshape(shape),
              np.broadcast_to(batch[:, None, None].astype(np.float64), (len(head), length, depth)).reshape(shape)]  # fmt: skip
    columns, token, sample = (run(g, to_projection, v) for v in traces)
    flat = columns.reshape(-1, columns.shape[-1])
    out = projection.weight.shape[0]
    token, sample = (run(g, after, _through_projection(v, out)) for v in (token, sample))
    exit_shape = (int(batch.max()) + 1, length, out)
    if not (np.array_equal(flat, np.broadcast_to(flat[:1], flat.shape)) and token.shape == exit_shape
            and np.array_equal(token, index(exit_shape, 1)) and np.array_equal(sample, index(exit_shape, 0))):  # fmt: skip
        raise _refuse(where, "its output does not merge the heads batch first")
    weight = np.empty_like(projection.weight)
    weight[:, flat[0].astype(np.int64)] = projection.weight
    return _Output(weight, projection.bias, exit_name)


class _Emit:
    """New batch-first nodes and initializers, named after the attention block's softmax."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self.initializers, self.taken = prefix, [], [], set()

    def name(self, what: str) -> str:
        name, suffix = f"{self.prefix}/{what}", 1
        while name in self.taken:
            name, suffix = f"{self.prefix}/{what}_{suffix}", suffix + 1
        self.taken.add(name)
        return name

    def constant(self, what: str, value: np.ndarray) -> str:
        name = self.name(what)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, *, what: str | None = None, **attributes) -> str:
        name = self.name(what or op.lower())
        out = output or f"{name}_output"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attributes))
        return out

    def linear(self, what: str, x: str, weight: np.ndarray, bias: np.ndarray | None, output: str | None = None) -> str:
        weight_name = self.constant(f"{what}.weight", np.ascontiguousarray(weight.T).astype(np.float32))
        if bias is None:
            return self.node("MatMul", [x, weight_name], output, what=what)
        y = self.node("MatMul", [x, weight_name], what=what)
        return self.node("Add", [y, self.constant(f"{what}.bias", np.asarray(bias, dtype=np.float32))], output, what=f"{what}_bias")

    def heads(self, x: str, heads: int, depth: int) -> str:
        split = self.node("Reshape", [x, self.constant("heads_shape", np.array([0, 0, heads, depth], dtype=np.int64))], what="heads")
        return self.node("Transpose", [split], perm=[0, 2, 1, 3], what="heads_first")


def _rewrite_block(g: Graph, softmax: onnx.NodeProto) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str] | None:
    where = softmax.name
    scores, _, score_factor = back(g, softmax.input[0], stop=lambda n: g.producer.get(n) is not None
                                    and g.producer[n].op_type == "MatMul" and len(data_inputs(g, g.producer[n])) == 2)  # fmt: skip
    product = g.producer.get(scores)
    users = readers(g, softmax.output[0])
    if product is None or product.op_type != "MatMul" or len(users) != 1 or users[0].op_type != "MatMul" \
            or users[0].input[0] != softmax.output[0]:  # fmt: skip
        return None  # a softmax that is not attention's: the support scan judges it
    context = users[0]
    q = _operand(g, product.input[0], False, where)
    k = _operand(g, product.input[1], True, where)
    v = _operand(g, context.input[1], False, where)
    head, heads = _heads([q, k, v], where)
    depth = q.rows.shape[1]
    output = _output(g, context.output[0], head, q.batch, where)
    emit = _Emit(where.rsplit("/", 1)[0] if "/" in where.strip("/") else f"{where}_attention")
    split = []
    for label, operand in zip("qkv", (q, k, v), strict=True):
        rows = _canonical_rows(operand, head, heads, where)
        bias = (
            None if operand.projection.bias is None else np.broadcast_to(operand.projection.bias, operand.projection.weight.shape[:1])[rows]
        )
        split.append(emit.heads(emit.linear(f"{label}_proj", operand.entry, operand.projection.weight[rows],
                                            None if bias is None else bias), heads, depth))  # fmt: skip
    # every constant factor on the q and k paths scales the scores (and v's the context, so the output projection)
    scale = np.array(score_factor * q.factor * k.factor, dtype=np.float32)
    keys = emit.node("Transpose", [split[1]], perm=[0, 1, 3, 2], what="keys_transposed")
    scores = emit.node("Mul", [emit.node("MatMul", [split[0], keys], what="scores"), emit.constant("scale", scale)], what="scaled")
    probs = emit.node("Softmax", [scores], axis=-1, what="softmax")
    context = emit.node("MatMul", [probs, split[2]], what="context")
    tokens_first = emit.node("Transpose", [context], perm=[0, 2, 1, 3], what="tokens_first")
    merged_shape = emit.constant("merged_shape", np.array([0, 0, heads * depth], dtype=np.int64))
    merged = emit.node("Reshape", [tokens_first, merged_shape], what="merge")
    emit.linear("out_proj", merged, output.weight * v.factor, output.bias, output=output.exit)
    return emit.nodes, emit.initializers, output.exit


def _remove_dead_(model: onnx.ModelProto) -> None:
    outputs = {v.name for v in model.graph.output}
    while True:
        used = {name for node in model.graph.node for name in node.input} | outputs
        keep = [node for node in model.graph.node if any(o in used for o in node.output if o)]
        if len(keep) == len(model.graph.node):
            break
        del model.graph.node[:]
        model.graph.node.extend(keep)
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def rewrite_attention_(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> int:
    """Rewrite every attention block of ``model`` batch first (in place; see the module docstring). Returns how many.

    Args:
        model: A tidied model (:func:`~spikeconv.ingest.onnx.tidy.tidy_model`): named nodes, constants as initializers.
        values: Every tensor's value on a probe batch (``ReferenceEvaluator(...).run(..., intermediate=True)``); it guides
            the tracing (shapes, and the scales the exporters compute from sizes).

    Raises:
        UnsupportedLayerError: An attention block whose layout is not a multi-head split of batch-first tensors, named.
    """
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    if not softmaxes:
        return 0
    g = Graph(model, values)
    rewritten = 0
    for softmax in softmaxes:
        if softmax.input[0] not in g.data:
            continue
        block = _rewrite_block(g, softmax)
        if block is None:
            continue
        nodes, initializers, exit_name = block
        position = next(i for i, node in enumerate(model.graph.node) if exit_name in node.output)
        old = model.graph.node[position]
        old.output[list(old.output).index(exit_name)] = f"{exit_name}/replaced"
        for offset, node in enumerate(nodes):
            model.graph.node.insert(position + 1 + offset, node)
        model.graph.initializer.extend(initializers)
        rewritten += 1
    if rewritten:
        _remove_dead_(model)
    return rewritten
