"""Run an IF neuron and the average pool that follows it as one pass, when nothing watches the spikes.

Why: in a converted CNN the first neuron layer writes the largest tensor of the simulation (for
``fmnist-cnn`` at T = 32, batch 256: a 604 MB spike map) only for the pool after it to read it back
and shrink it 4x. Profiling put that write and read at a third of the forward, at a quarter of the
memory bandwidth. Fused, the C++ neuron loop pools each plane of a cache-sized block right after
computing it (``kernels_native.py``, ``pool``; ``csrc/if_loops.cpp``), so the spike map never reaches memory.

The fusion is a view, not a rewrite: :func:`fused_body` builds, once per graph, a second
``GraphModule`` over the *same* submodules (so membranes, thresholds and corrections are shared)
in which each ``pool(neuron(x))`` pair whose neuron has no other user is one :class:`NeuronPool`
call, and each residual ``conv(x) + y`` whose convolution output has no other use adds in place
(:class:`InPlaceAdd`). The converted graph itself (what exporters, op counters, recorders and ``info`` read) is
untouched. :class:`NeuronPool` runs the fused kernel only when the result cannot differ from the
two calls: a plain :class:`~spikeconv.neurons.IFNeuron` on a fast kernel, an ``nn.AvgPool2d``
without padding, ceil mode or divisor override, float32 on CPU with the C++ kernels, no autograd,
and no hook on either module or registered globally (spike counters and recorders attach hooks,
so they always see the unfused calls). Otherwise it calls ``pool(neuron(x))``.
Results are bit-identical (``tests/neurons/test_fusion.py``).
"""

from __future__ import annotations

import contextlib
import operator
import weakref
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor, fx, nn
from torch.nn.modules import module as module_hooks

from spikeconv.neurons.if_neuron import IFNeuron
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.pooling import exact_geometry
from spikeconv.neurons.spiking_maxpool import SpikingMaxPool2d
from spikeconv.neurons.strategies import Kernel

__all__ = ["InPlaceAdd", "NeuronPool", "fused_body", "pool_geometry", "unfused"]

_OFF: ContextVar[bool] = ContextVar("spikeconv_fusion_off", default=False)

_FAST_KERNELS = (Kernel.INPLACE, Kernel.NATIVE)


def pool_geometry(pool: nn.Module) -> tuple[int, int, int, int] | None:
    """``(kh, kw, sh, sw)`` of an average pool whose arithmetic the fused kernel reproduces (the C++ pooling's,
    :func:`~spikeconv.neurons.pooling.exact_geometry`), or of a 2x2 stride-2 spiking max-pool gate, else ``None``."""
    if type(pool) is SpikingMaxPool2d:
        return (2, 2, 2, 2) if pool.fusable_geometry() else None
    return exact_geometry(pool)


def _watched(module: nn.Module) -> bool:
    """Whether a hook would see this module's call (its own hooks or global ones)."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module_hooks._global_forward_hooks
                or module_hooks._global_forward_pre_hooks)  # fmt: skip


class NeuronPool(nn.Module):
    """``pool(neuron(x, num_steps, static))``, through the fused kernel whenever that gives the same result.

    ``pool`` is an ``nn.AvgPool2d`` or a :class:`~spikeconv.neurons.SpikingMaxPool2d` (whose state the fused
    kernel advances as the gate's own loop would)."""

    def __init__(self, neuron: IFNeuron, pool: nn.Module) -> None:
        super().__init__()
        self.neuron = neuron
        self.pool = pool

    def fusable(self, x: Tensor) -> bool:
        """Whether this call may run fused (see the module docstring)."""
        neuron, pool = self.neuron, self.pool
        geometry = pool_geometry(pool)
        return (
            geometry is not None and type(neuron) is IFNeuron and neuron.kernel in _FAST_KERNELS
            and x.dtype == torch.float32 and x.dim() == 4 and x.shape[2] >= geometry[0] and x.shape[3] >= geometry[1]
            and x.numel() > 0 and not (torch.is_grad_enabled() and x.requires_grad)
            and not _watched(neuron) and not _watched(pool) and native_ops_for(x) is not None
        )  # fmt: skip

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        if not self.fusable(x):
            if isinstance(self.pool, SpikingMaxPool2d):
                return self.pool(self.neuron(x, num_steps, static=static), num_steps)
            return self.pool(self.neuron(x, num_steps, static=static))
        geometry = pool_geometry(self.pool)
        if not isinstance(self.pool, SpikingMaxPool2d):
            return self.neuron.forward_pooled(x, num_steps, static, geometry)
        step_shape = x.shape if static else torch.Size((x.shape[0] // num_steps, *x.shape[1:]))
        cumulative, emitted = self.pool.flat_state(step_shape, x)
        out = self.neuron.forward_pooled(x, num_steps, static, geometry, gate=(cumulative, emitted))
        self.pool.set_flat_state(cumulative, emitted, step_shape)
        return out


class InPlaceAdd(nn.Module):
    """``conv_out + other`` written into ``conv_out`` when the convolution's output has no other use.

    Why: a residual join adds two full-size maps; out of place, its fresh output costs page faults on
    top of the writes (the residual add of a held-out CNN took a sixth of the forward). Float addition is
    commutative, so ``conv_out.add_(other)`` equals ``other + conv_out`` bit for bit. Out of place where a
    hook watches the convolution (it may keep the output), under autograd, or where ``other`` would
    broadcast ``conv_out`` to a larger shape.
    """

    def __init__(self, conv: nn.Module, conv_first: bool) -> None:
        super().__init__()
        self.conv = conv
        self.conv_first = conv_first

    def forward(self, conv_out: Tensor, other: Tensor) -> Tensor:
        in_place = (
            isinstance(other, Tensor) and type(conv_out) is torch.Tensor and not torch.is_grad_enabled()
            and other.dtype == conv_out.dtype and other.device == conv_out.device and not _watched(self.conv)
            and torch.broadcast_shapes(conv_out.shape, other.shape) == conv_out.shape
        )  # fmt: skip
        if in_place:
            return conv_out.add_(other)
        return conv_out + other if self.conv_first else other + conv_out


def _residual_adds(body: fx.GraphModule) -> list[tuple[fx.Node, fx.Node, bool]]:
    """(add node, its convolution operand, whether the convolution is the first operand) where that
    convolution's output is used by the add alone."""
    found = []
    for node in body.graph.nodes:
        if node.op != "call_function" or node.target not in (operator.add, torch.add) or len(node.args) != 2 or node.kwargs:
            continue
        for position, operand in enumerate(node.args):
            other = node.args[1 - position]
            if (isinstance(operand, fx.Node) and operand.op == "call_module" and type(body.get_submodule(operand.target)) is nn.Conv2d
                    and len(operand.users) == 1 and isinstance(other, fx.Node) and other is not operand):  # fmt: skip
                found.append((node, operand, position == 0))
                break
    return found


def _pairs(body: fx.GraphModule) -> list[tuple[fx.Node, fx.Node]]:
    """(neuron node, pool node) pairs: the pool is the neuron's only user and takes nothing else."""
    found = []
    for node in body.graph.nodes:
        if node.op != "call_module" or type(body.get_submodule(node.target)) is not IFNeuron or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.op != "call_module" or not user.args or user.args[0] is not node:
            continue
        pool = body.get_submodule(user.target)
        if type(pool) is SpikingMaxPool2d:  # called as gate(x, num_steps, static=False): time-flattened spikes
            takes = len(user.args) == 2 and user.args[1] is node.args[1] and not user.kwargs.get("static", False)
        else:
            takes = len(user.args) == 1 and not user.kwargs
        if takes and pool_geometry(pool) is not None:
            found.append((node, user))
    return found


def _build(body: fx.GraphModule) -> fx.GraphModule | None:
    pairs, adds = _pairs(body), _residual_adds(body)
    if not pairs and not adds:
        return None
    graph = fx.Graph()
    remap: dict[fx.Node, fx.Node] = {}
    output = graph.graph_copy(body.graph, remap)
    graph.output(output)
    root: dict[str, object] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            root[node.target] = body.get_submodule(node.target)
        elif node.op == "get_attr":
            owner, _, name = node.target.rpartition(".")
            root[node.target] = getattr(body.get_submodule(owner) if owner else body, name)
    for index, (neuron_node, pool_node) in enumerate(pairs):
        neuron, pool = remap[neuron_node], remap[pool_node]
        target = f"_fused_{index}_{neuron_node.target.replace('.', '_')}"
        root[target] = NeuronPool(body.get_submodule(neuron_node.target), body.get_submodule(pool_node.target))
        with graph.inserting_before(pool):
            fused = graph.call_module(target, neuron.args, neuron.kwargs)
        pool.replace_all_uses_with(fused)
        graph.erase_node(pool)
        graph.erase_node(neuron)
    for index, (add_node, conv_node, conv_first) in enumerate(adds):
        add = remap[add_node]
        conv, other = remap[conv_node], add.args[1 if conv_first else 0]
        target = f"_add_{index}_{conv_node.target.replace('.', '_')}"
        root[target] = InPlaceAdd(body.get_submodule(conv_node.target), conv_first)
        with graph.inserting_before(add):
            joined = graph.call_module(target, (conv, other))
        add.replace_all_uses_with(joined)
        graph.erase_node(add)
    graph.lint()
    return fx.GraphModule(root, graph, class_name="FusedBody")


@contextlib.contextmanager
def unfused() -> Iterator[None]:
    """Run every network as its plain graph inside the block: e.g. to measure the memory of the unfused
    simulation, which counters and recorders (hooks) run, so that a plan made from it fits them too."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[str, dict[str, nn.Module], fx.GraphModule | None]] = weakref.WeakKeyDictionary()


def fused_body(body: nn.Module) -> nn.Module:
    """``body`` with its neuron→average-pool pairs fused, sharing its modules; ``body`` itself where
    there is nothing to fuse, it is not an fx graph, a hook watches it, it is being traced, exported or
    compiled, or inside :func:`unfused`."""
    if _OFF.get() or not isinstance(body, fx.GraphModule) or _watched(body) or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() \
            or torch.compiler.is_compiling():  # (a hook on the body, e.g. the op counter's, must see its calls)
        return body
    modules = dict(body.named_modules())
    held = _CACHE.get(body)
    if held is not None:
        code, used, fused = held
        if code == body.code and all(modules.get(name) is module for name, module in used.items()):
            return body if fused is None else fused
    fused = _build(body)
    used = {node.target: modules[node.target] for node in body.graph.nodes if node.op == "call_module"}
    _CACHE[body] = (body.code, used, fused)
    return body if fused is None else fused
