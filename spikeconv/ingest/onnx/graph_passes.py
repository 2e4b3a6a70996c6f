"""fx passes on the graph onnx2torch returns, before the canonical passes shared with torch models.

Before and after, for the TorchScript export of ``x.view(x.size(0), -1) @ W``::

    shape = self.shape(x); gather = self.gather(shape, c0); ...; reshape = self.reshape(x, concat)
    matmul = self.matmul(reshape, initializers.w)                     # onnx2torch modules
    reshape = torch.reshape(x, (-1, 512)); matmul = self.matmul(reshape)   # matmul: nn.Linear
"""

from __future__ import annotations

import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

from spikeconv._fx import add_submodule, module_of
from spikeconv.ingest.onnx.registry import OnnxNodeSite, onnx_op


def _evaluate(gm: fx.GraphModule, node: fx.Node, env: dict[fx.Node, object]) -> object:
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
    if node.op == "get_attr":
        value = gm
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return value
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    return getattr(args[0], str(node.target))(*args[1:], **kwargs)


def _free_name(gm: fx.GraphModule, preferred: str) -> str:
    name, suffix = preferred, 1
    while hasattr(gm, name):
        name, suffix = f"{preferred}_{suffix}", suffix + 1
    return name


def fold_constants_(gm: fx.GraphModule) -> int:
    """Replace every tensor computed from constants alone by a buffer. Returns how many.

    onnx2torch keeps constant subgraphs (``Constant``, ``Cast`` of weights, ...) as modules;
    evaluated once here, they stop looking like operations on data.
    """
    env: dict[fx.Node, object] = {}
    folded = 0
    with torch.no_grad():
        for node in list(gm.graph.nodes):
            if node.op in ("placeholder", "output") or any(n not in env for n in node.all_input_nodes):
                continue
            env[node] = _evaluate(gm, node, env)
            if node.op != "get_attr" and isinstance(env[node], torch.Tensor):
                name = _free_name(gm, f"{node.name}_value")
                gm.register_buffer(name, env[node].detach().clone())
                with gm.graph.inserting_before(node):
                    replacement = gm.graph.get_attr(name)
                node.replace_all_uses_with(replacement)
                env[replacement] = env[node]
                folded += 1
    gm.graph.eliminate_dead_code()
    return folded


def record_shapes_(gm: fx.GraphModule, probe: torch.Tensor) -> None:
    """Run ``probe`` through ``gm`` and keep each node's output shape in ``node.meta["tensor_meta"]``."""
    with torch.no_grad():
        gm(probe)  # a node that fails on the probe raises here, before ShapeProp prints its traceback to stderr
        ShapeProp(gm).propagate(probe)


def canonicalize_nodes_(gm: fx.GraphModule, op_types: dict[str, str]) -> None:
    """Rewrite each onnx2torch node with the canonicaliser of its ONNX op type (in place).

    Args:
        gm: The graph from onnx2torch.
        op_types: onnx2torch module name (the ``call_module`` target) -> ONNX op type.
    """
    for node in list(gm.graph.nodes):
        op = onnx_op(op_types.get(str(node.target), "")) if node.op == "call_module" else None
        if op is not None:
            op.canonicalize(OnnxNodeSite(gm, node, module_of(gm, node), op.op_type))
    gm.graph.eliminate_dead_code()
    for node in gm.graph.nodes:
        node.meta.pop("tensor_meta", None)  # shapes of the probe run, stale after the rewrites
    _drop_unused_constants_(gm)
    gm.delete_all_unused_submodules()
    gm.recompile()


def _drop_unused_constants_(gm: fx.GraphModule) -> None:
    """Delete onnx2torch's initializer buffers and folded constants no node reads any more.

    A weight that a canonicaliser moved into an ``nn.Linear`` would otherwise stay twice in the
    state dict.
    """
    used = {str(node.target) for node in gm.graph.nodes if node.op == "get_attr"}
    for name, _ in list(gm.named_buffers()):
        owner_path, _, attribute = name.rpartition(".")
        owner = gm.get_submodule(owner_path)
        if name not in used and (owner is gm or owner_path == "initializers"):
            delattr(owner, attribute)


def rename_modules_(gm: fx.GraphModule) -> None:
    """Move each called module to an attribute named after its node (``conv1/Conv`` -> ``conv1_conv``)."""
    for node in gm.graph.nodes:
        if node.op == "call_module" and ("/" in str(node.target) or "." in str(node.target)):
            node.target = add_submodule(gm, node.name, gm.get_submodule(str(node.target)))
    gm.delete_all_unused_submodules()
    gm.recompile()
