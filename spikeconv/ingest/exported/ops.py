"""One named function per ATen op: an exported program's node -> standard torch, in place.

``torch.export`` functionalises the graph, so in-place variants (``relu_``) never appear.
Weights are constant ``get_attr`` nodes by now (constant folding runs first), and shapes come
from ``node.meta["val"]``, the fake tensor ``torch.export`` recorded. Before and after, for
``conv -> batch_norm -> relu -> view(x, [2, -1])`` exported with a batch of 2::

    conv2d = aten.conv2d(x, c1_weight, c1_bias, [1, 1]); bn = aten.batch_norm(conv2d, ...)
    relu = aten.relu(bn); view = aten.view(relu, [2, -1])
    conv2d = self.c1(x); bn = self.batch_norm(conv2d); relu = torch.relu(bn)      # nn.Conv2d, nn.BatchNorm2d
    view = torch.reshape(relu, (-1, 288))                                         # the batch is not fixed
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import add_submodule
from spikeconv.ingest.exported.registry import AtenSite, Varying, register_aten_op


def _argument(node: fx.Node, index: int, name: str, default: object) -> object:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _constant(site: AtenSite, arg: object) -> torch.Tensor | None:
    """The tensor a ``get_attr`` argument holds (weights, folded constants), else ``None``."""
    if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
        return None
    value = site.gm
    for part in str(arg.target).split("."):
        value = getattr(value, part)
    return value.detach().clone()


def _shape(node: object) -> tuple | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _owner(site: AtenSite, arg: object) -> str:
    """A module name for a weight layer: its weight's owner (``layer1.0.conv1``), else the node's name."""
    if isinstance(arg, fx.Node) and arg.op == "get_attr" and "." in str(arg.target):
        return str(arg.target).rsplit(".", 1)[0]
    return site.node.name


def _to_module(site: AtenSite, module: nn.Module, name: str | None = None) -> None:
    site.node.op, site.node.target = "call_module", add_submodule(site.gm, name or site.node.name, module)
    site.node.args, site.node.kwargs = (site.node.args[0],), {}


def _to_function(site: AtenSite, fn: Callable, args: tuple, kwargs: dict | None = None) -> None:
    site.node.op, site.node.target = "call_function", fn
    site.node.args, site.node.kwargs = args, kwargs or {}


def _first_of_tuple(site: AtenSite) -> None:
    """The op returned ``(out, extra...)``; its ``getitem(·, 0)`` readers now read the node itself."""
    for user in list(site.node.users):
        if user.op == "call_function" and user.target is operator.getitem and user.args[1] == 0:
            user.replace_all_uses_with(site.node)
            site.gm.graph.erase_node(user)


def _pair(value: object, default: int) -> tuple[int, int]:
    values = [int(v) for v in value] if isinstance(value, Sequence) else [int(value)] if value is not None else []
    if not values:
        return default, default
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _batch_kept(node: fx.Node) -> str | None:
    before, after = _shape(node.args[0]), _shape(node)
    if before is None or after is None or not before or not after or before[0] != after[0]:
        return "reshapes across the batch dimension; keep dimension 0 as the batch"
    return None


def _dim_not_batch(index: int, name: str, default: object) -> Callable[[fx.Node], str | None]:
    def check(node: fx.Node) -> str | None:
        dims = _argument(node, index, name, default)
        if dims is None:
            return "acts on every dimension, the batch too; name the feature dimensions"
        dims = list(dims) if isinstance(dims, Sequence) else [dims]
        first = node.args[0][0] if isinstance(node.args[0], Sequence) else node.args[0]  # cat takes a list
        rank = len(_shape(first) or ()) or 1
        return "operates on the batch dimension 0; keep the batch apart" if any(int(d) % rank == 0 for d in dims) else None

    return check


# ------------------------------------------------------------------ weight layers
def _conv_module(weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation, groups) -> nn.Module:
    kind = nn.Conv1d if weight.dim() == 3 else nn.Conv2d
    expand = (lambda v: tuple(int(x) for x in v) if isinstance(v, Sequence) and not isinstance(v, str) else v)  # noqa: E731
    module = kind(weight.shape[1] * int(groups), weight.shape[0], tuple(weight.shape[2:]), stride=expand(stride) or 1,
                  padding=expand(padding) if padding not in (None, []) else 0, dilation=expand(dilation) or 1,
                  groups=int(groups), bias=bias is not None)  # fmt: skip
    module.weight = nn.Parameter(weight)
    if bias is not None:
        module.bias = nn.Parameter(bias)
    return module


def _conv_check(node: fx.Node) -> str | None:
    if node.target.overloadpacket.__name__ == "convolution" and _argument(node, 6, "transposed", False):
        return "transposed convolution is not converted; use a convolution or upsampling by a constant"
    weight = _shape(node.args[1])
    return None if weight is not None and len(weight) in (3, 4) else "only 1-D and 2-D convolutions are converted"


@register_aten_op("conv1d", "conv2d", note="nn.Conv1d / nn.Conv2d (any stride, padding, dilation, groups)", check=_conv_check)
def conv(site: AtenSite) -> None:
    """``aten.conv2d(x, w, b, stride, padding, dilation, groups)`` -> ``nn.Conv2d`` with those weights."""
    node = site.node
    weight, bias = _constant(site, node.args[1]), _constant(site, _argument(node, 2, "bias", None))
    module = _conv_module(weight, bias, _argument(node, 3, "stride", 1), _argument(node, 4, "padding", 0),
                          _argument(node, 5, "dilation", 1), _argument(node, 6, "groups", 1))  # fmt: skip
    _to_module(site, module, _owner(site, node.args[1]))


@register_aten_op("convolution", note="nn.Conv1d / nn.Conv2d (not transposed)", check=_conv_check)
def convolution(site: AtenSite) -> None:
    """``aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups)`` -> conv module."""
    node = site.node
    weight, bias = _constant(site, node.args[1]), _constant(site, node.args[2])
    module = _conv_module(weight, bias, node.args[3], node.args[4], node.args[5], node.args[8])
    _to_module(site, module, _owner(site, node.args[1]))


def _linear_module(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    module.weight = nn.Parameter(weight.contiguous())
    if bias is not None:
        module.bias = nn.Parameter(bias.reshape(-1))
    return module


@register_aten_op("linear", note="nn.Linear")
def linear(site: AtenSite) -> None:
    """``aten.linear(x, w, b)`` -> ``nn.Linear``."""
    node = site.node
    module = _linear_module(_constant(site, node.args[1]), _constant(site, _argument(node, 2, "bias", None)))
    _to_module(site, module, _owner(site, node.args[1]))


def _addmm_check(node: fx.Node) -> str | None:
    varies = [isinstance(a, fx.Node) and a.op != "get_attr" for a in node.args[:3]]
    return None if varies == [False, True, False] else "needs the data as its second argument and constant bias and weight"


@register_aten_op("addmm", note="nn.Linear (core ATen form of a linear layer: bias + x @ W^T)", varying=Varying.ONE, check=_addmm_check)
def addmm(site: AtenSite) -> None:
    """``aten.addmm(b, x, W^T)`` -> ``nn.Linear(W, b)``."""
    node = site.node
    module = _linear_module(_constant(site, node.args[2]).t(), _constant(site, node.args[0]))
    site.node.args = (node.args[1],)
    _to_module(site, module)


@register_aten_op("mm", note="nn.Linear without bias (x @ W^T with constant W)")
def mm(site: AtenSite) -> None:
    """``aten.mm(x, W^T)`` -> ``nn.Linear(W, bias=False)``."""
    _to_module(site, _linear_module(_constant(site, site.node.args[1]).t(), None))


def _bn_check(node: fx.Node) -> str | None:
    name = node.target.overloadpacket.__name__
    if name == "batch_norm" and (_argument(node, 5, "training", False) or node.args[3] is None):
        return "normalises by batch statistics; export the model in eval mode with running statistics"
    return None


def _bn_module(site: AtenSite, args: tuple, eps: float) -> nn.Module:
    weight, bias, mean, var = (_constant(site, a) for a in args)
    rank = len(_shape(site.node.args[0]) or ())
    module = (nn.BatchNorm1d if rank in (2, 3) else nn.BatchNorm2d)(mean.numel(), eps=float(eps), affine=weight is not None)
    module.running_mean.copy_(mean)
    module.running_var.copy_(var)
    if weight is not None:
        module.weight = nn.Parameter(weight)
        module.bias = nn.Parameter(bias if bias is not None else torch.zeros_like(weight))
    return module.eval()


@register_aten_op("batch_norm", note="nn.BatchNorm1d / nn.BatchNorm2d (eval mode), folded into the conv/linear before it",
                  check=_bn_check)  # fmt: skip
def batch_norm(site: AtenSite) -> None:
    """``aten.batch_norm(x, w, b, mean, var, training=False, momentum, eps, cudnn)`` -> ``nn.BatchNorm2d``."""
    node = site.node
    _to_module(site, _bn_module(site, node.args[1:5], _argument(node, 7, "eps", 1e-5)))


@register_aten_op("_native_batch_norm_legit_no_training", note="nn.BatchNorm1d / nn.BatchNorm2d (core ATen form)")
def native_batch_norm(site: AtenSite) -> None:
    """``aten._native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)[0]`` -> ``nn.BatchNorm2d``."""
    node = site.node
    module = _bn_module(site, node.args[1:5], _argument(node, 6, "eps", 1e-5))
    _first_of_tuple(site)
    _to_module(site, module)


# ------------------------------------------------------------------ activations
@register_aten_op("relu", note="torch.relu: activation site -> IF neuron")
def relu(site: AtenSite) -> None:
    """``aten.relu(x)`` -> ``torch.relu(x)``, which ingest makes an activation site."""
    _to_function(site, torch.relu, (site.node.args[0],))


@register_aten_op("hardtanh", note="F.hardtanh(x, 0, c): capped activation site (ReLU6 is hardtanh(0, 6))")
def hardtanh(site: AtenSite) -> None:
    """``aten.hardtanh(x, lo, hi)`` -> ``F.hardtanh``; a site when ``lo == 0`` (the support check names other bounds)."""
    node = site.node
    _to_function(site, F.hardtanh, (node.args[0], float(_argument(node, 1, "min_val", -1.0)), float(_argument(node, 2, "max_val", 1.0))))


@register_aten_op("relu6", note="F.relu6: capped activation site (an IF neuron whose threshold is at most 6)")
def relu6(site: AtenSite) -> None:
    """``aten.relu6(x)`` -> ``F.relu6(x)``, which ingest makes a site capped at 6."""
    _to_function(site, F.relu6, (site.node.args[0],))


@register_aten_op("clamp", "clamp_min", note="torch.clamp(x, 0, c): activation site when the lower bound is 0")
def clamp(site: AtenSite) -> None:
    """``aten.clamp(x, lo, hi)`` / ``aten.clamp_min(x, lo)`` -> ``torch.clamp``."""
    node = site.node
    high = _argument(node, 2, "max", None) if node.target.overloadpacket.__name__ == "clamp" else None
    _to_function(site, torch.clamp, (node.args[0], _argument(node, 1, "min", None), high))


# ------------------------------------------------------------------ pooling
def _max_pool(site: AtenSite) -> nn.MaxPool2d:
    node = site.node
    kernel = _pair(node.args[1], 1)
    stride = _pair(_argument(node, 2, "stride", []), 0)
    return nn.MaxPool2d(kernel, stride=stride if stride != (0, 0) else kernel, padding=_pair(_argument(node, 3, "padding", 0), 0),
                        dilation=_pair(_argument(node, 4, "dilation", 1), 1),
                        ceil_mode=bool(_argument(node, 5, "ceil_mode", False)))  # fmt: skip


@register_aten_op("max_pool2d", note="nn.MaxPool2d: convert makes it a spiking max-pool or an explicit average pool")
def max_pool2d(site: AtenSite) -> None:
    """``aten.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)`` -> ``nn.MaxPool2d``."""
    _to_module(site, _max_pool(site))


@register_aten_op("max_pool2d_with_indices", note="nn.MaxPool2d (core ATen form; the indices must be unused)")
def max_pool2d_with_indices(site: AtenSite) -> None:
    """``aten.max_pool2d_with_indices(...)[0]`` -> ``nn.MaxPool2d``."""
    module = _max_pool(site)
    _first_of_tuple(site)
    _to_module(site, module)


@register_aten_op("avg_pool2d", note="nn.AvgPool2d")
def avg_pool2d(site: AtenSite) -> None:
    """``aten.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)`` -> ``nn.AvgPool2d``."""
    node = site.node
    kernel = _pair(node.args[1], 1)
    stride = _pair(_argument(node, 2, "stride", []), 0)
    module = nn.AvgPool2d(kernel, stride=stride if stride != (0, 0) else kernel, padding=_pair(_argument(node, 3, "padding", 0), 0),
                          ceil_mode=bool(_argument(node, 4, "ceil_mode", False)),
                          count_include_pad=bool(_argument(node, 5, "count_include_pad", True)),
                          divisor_override=_argument(node, 6, "divisor_override", None))  # fmt: skip
    _to_module(site, module)


@register_aten_op("adaptive_avg_pool2d", "_adaptive_avg_pool2d", note="nn.AdaptiveAvgPool2d")
def adaptive_avg_pool2d(site: AtenSite) -> None:
    """``aten.adaptive_avg_pool2d(x, size)`` -> ``nn.AdaptiveAvgPool2d(size)``."""
    _to_module(site, nn.AdaptiveAvgPool2d(_pair(site.node.args[1], 1)))


@register_aten_op("mean", note="torch.mean over feature dimensions (global average pooling)", check=_dim_not_batch(1, "dim", 0))
def mean(site: AtenSite) -> None:
    """``aten.mean.dim(x, dims, keepdim)`` -> ``torch.mean``."""
    node = site.node
    _to_function(site, torch.mean, (node.args[0], list(node.args[1])), {"keepdim": bool(_argument(node, 2, "keepdim", False))})


@register_aten_op("sum", note="torch.sum over feature dimensions", check=_dim_not_batch(1, "dim", 0))
def sum_(site: AtenSite) -> None:
    """``aten.sum.dim_IntList(x, dims, keepdim)`` -> ``torch.sum``."""
    node = site.node
    _to_function(site, torch.sum, (node.args[0], list(node.args[1])), {"keepdim": bool(_argument(node, 2, "keepdim", False))})


# ------------------------------------------------------------------ sums, scalings, joins
def _scaled_binary(site: AtenSite, op) -> None:
    """``op(a, alpha * b)`` for aten's ``add``/``sub`` with their optional ``alpha`` factor."""
    node = site.node
    other, alpha = node.args[1], _argument(node, 2, "alpha", 1)
    if alpha != 1:
        with site.gm.graph.inserting_before(node):
            other = site.gm.graph.call_function(operator.mul, (other, alpha))
    _to_function(site, op, (node.args[0], other))


@register_aten_op("add", note="operator.add: residual sum (alpha scales the second term)", varying=Varying.ANY)
def add(site: AtenSite) -> None:
    """``aten.add(a, b, alpha)`` -> ``a + b`` (``a + alpha * b`` when alpha is not 1)."""
    _scaled_binary(site, operator.add)


@register_aten_op("sub", note="operator.sub: difference", varying=Varying.ANY)
def sub(site: AtenSite) -> None:
    """``aten.sub(a, b, alpha)`` -> ``a - b`` (``a - alpha * b`` when alpha is not 1)."""
    _scaled_binary(site, operator.sub)


@register_aten_op("mul", note="operator.mul: scaling by a constant", varying=Varying.ONE)
def mul(site: AtenSite) -> None:
    """``aten.mul(a, b)`` -> ``a * b`` (the support check requires one of them to be constant)."""
    _to_function(site, operator.mul, tuple(site.node.args[:2]))


def _div_check(node: fx.Node) -> str | None:
    return "rounded division has no rate equivalent" if node.kwargs.get("rounding_mode") is not None else None


@register_aten_op("div", note="operator.truediv: division by a constant", check=_div_check)
def div(site: AtenSite) -> None:
    """``aten.div(a, c)`` -> ``a / c``."""
    _to_function(site, operator.truediv, tuple(site.node.args[:2]))


@register_aten_op("neg", note="operator.neg: negation")
def neg(site: AtenSite) -> None:
    """``aten.neg(x)`` -> ``-x``."""
    _to_function(site, operator.neg, (site.node.args[0],))


@register_aten_op("cat", "concat", note="torch.cat: concatenation along a feature dimension", varying=Varying.ANY,
                  check=_dim_not_batch(1, "dim", 0))  # fmt: skip
def cat(site: AtenSite) -> None:
    """``aten.cat(tensors, dim)`` -> ``torch.cat``."""
    node = site.node
    _to_function(site, torch.cat, (list(node.args[0]), int(_argument(node, 1, "dim", 0))))


# ------------------------------------------------------------------ reshapes and no-ops
def _flatten_check(node: fx.Node) -> str | None:
    return "flattens the batch into the features; use start_dim >= 1" if int(_argument(node, 1, "start_dim", 0)) == 0 else None


@register_aten_op("flatten", note="torch.flatten (start_dim >= 1)", check=_flatten_check)
def flatten(site: AtenSite) -> None:
    """``aten.flatten(x, start, end)`` -> ``torch.flatten``."""
    node = site.node
    _to_function(site, torch.flatten, (node.args[0], int(_argument(node, 1, "start_dim", 0)), int(_argument(node, 2, "end_dim", -1))))


@register_aten_op("view", "reshape", "_unsafe_view", note="torch.reshape(x, (-1, ...)): the exported batch size is not kept",
                  check=_batch_kept)  # fmt: skip
def view(site: AtenSite) -> None:
    """``aten.view(x, [2, 64])`` (batch fixed at export) -> ``torch.reshape(x, (-1, 64))``."""
    features = tuple(int(v) for v in _shape(site.node)[1:])
    _to_function(site, torch.reshape, (site.node.args[0], (-1, *features)))


@register_aten_op("unsqueeze", note="torch.unsqueeze (not at dimension 0)", check=_dim_not_batch(1, "dim", 0))
def unsqueeze(site: AtenSite) -> None:
    """``aten.unsqueeze(x, d)`` -> ``torch.unsqueeze``."""
    _to_function(site, torch.unsqueeze, tuple(site.node.args[:2]))


@register_aten_op("squeeze", note="torch.squeeze of given feature dimensions", check=_dim_not_batch(1, "dim", 0))
def squeeze(site: AtenSite) -> None:
    """``aten.squeeze.dims(x, dims)`` -> ``torch.squeeze``."""
    node = site.node
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    _to_function(site, torch.squeeze, (node.args[0], tuple(dims) if isinstance(dims, Sequence) else dims))


def _permute_check(node: fx.Node) -> str | None:
    return None if int(node.args[1][0]) == 0 else "moves the batch dimension; keep dimension 0 first"


@register_aten_op("permute", note="torch.permute (the batch stays first)", check=_permute_check)
def permute(site: AtenSite) -> None:
    """``aten.permute(x, dims)`` -> ``torch.permute``."""
    _to_function(site, torch.permute, (site.node.args[0], tuple(site.node.args[1])))


def _transpose_check(node: fx.Node) -> str | None:
    rank = len(_shape(node.args[0]) or ()) or 1
    return "moves the batch dimension" if 0 in (int(node.args[1]) % rank, int(node.args[2]) % rank) else None


@register_aten_op("transpose", note="torch.transpose of two feature dimensions", check=_transpose_check)
def transpose(site: AtenSite) -> None:
    """``aten.transpose(x, a, b)`` -> ``torch.transpose``."""
    _to_function(site, torch.transpose, tuple(site.node.args[:3]))


@register_aten_op("dropout", "feature_dropout", "alpha_dropout", "clone", "contiguous", "alias", "detach",
                  note="removed (identity at inference)")  # fmt: skip
def identity(site: AtenSite) -> None:
    """Dropout at inference, copies and aliases: readers read the input instead."""
    site.node.replace_all_uses_with(site.node.args[0])
    site.gm.graph.erase_node(site.node)


@register_aten_op("native_dropout", note="removed (identity at inference; the mask must be unused)")
def native_dropout(site: AtenSite) -> None:
    """``aten.native_dropout(x, p, train)[0]`` -> ``x``."""
    _first_of_tuple(site)
    identity(site)
