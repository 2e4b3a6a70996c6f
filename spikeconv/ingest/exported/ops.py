"""One named function per ATen op: an exported program's node -> standard torch, in place.

In-place variants (``relu_``, ``hardtanh_``, ``add_``) are rewritten as their functional forms first
(:func:`~spikeconv.ingest.exported.ingest.out_of_place_`), so only the functional ones are registered.
Weights are constant ``get_attr`` nodes by now (constant folding runs first), and shapes come
from ``node.meta["val"]``, the fake tensor ``torch.export`` recorded. Before and after, for
``conv -> batch_norm -> relu -> view(x, [2, -1])`` exported with a batch of 2::

    conv2d = aten.conv2d(x, c1_weight, c1_bias, [1, 1]); bn = aten.batch_norm(conv2d, ...)
    relu = aten.relu(bn); view = aten.view(relu, [2, -1])
    conv2d = self.c1(x); bn = self.batch_norm(conv2d); relu = torch.relu(bn)      # nn.Conv2d, nn.BatchNorm2d
    view = torch.reshape(relu, (-1, 288))                                         # the batch is not fixed
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv.ingest.exported.op_helpers import (
    argument,
    constant,
    first_of_tuple,
    owner,
    shape,
    to_function,
    to_module,
)
from spikeconv.ingest.exported.registry import AtenSite, Varying, register_aten_op


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
    if node.target.overloadpacket.__name__ == "convolution" and argument(node, 6, "transposed", False):
        return "transposed convolution is not converted; use a convolution or upsampling by a constant"
    weight = shape(node.args[1])
    return None if weight is not None and len(weight) in (3, 4) else "only 1-D and 2-D convolutions are converted"


@register_aten_op("conv1d", "conv2d", note="nn.Conv1d / nn.Conv2d (any stride, padding, dilation, groups)", check=_conv_check)
def conv(site: AtenSite) -> None:
    """``aten.conv2d(x, w, b, stride, padding, dilation, groups)`` -> ``nn.Conv2d`` with those weights."""
    node = site.node
    weight, bias = constant(site, node.args[1]), constant(site, argument(node, 2, "bias", None))
    module = _conv_module(weight, bias, argument(node, 3, "stride", 1), argument(node, 4, "padding", 0),
                          argument(node, 5, "dilation", 1), argument(node, 6, "groups", 1))  # fmt: skip
    to_module(site, module, owner(site, node.args[1]))


@register_aten_op("convolution", note="nn.Conv1d / nn.Conv2d (not transposed)", check=_conv_check)
def convolution(site: AtenSite) -> None:
    """``aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups)`` -> conv module."""
    node = site.node
    weight, bias = constant(site, node.args[1]), constant(site, node.args[2])
    module = _conv_module(weight, bias, node.args[3], node.args[4], node.args[5], node.args[8])
    to_module(site, module, owner(site, node.args[1]))


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
    module = _linear_module(constant(site, node.args[1]), constant(site, argument(node, 2, "bias", None)))
    to_module(site, module, owner(site, node.args[1]))


def _addmm_check(node: fx.Node) -> str | None:
    varies = [isinstance(a, fx.Node) and a.op != "get_attr" for a in node.args[:3]]
    return None if varies == [False, True, False] else "needs the data as its second argument and constant bias and weight"


@register_aten_op("addmm", note="nn.Linear (core ATen form of a linear layer: bias + x @ W^T)", varying=Varying.ONE, check=_addmm_check)
def addmm(site: AtenSite) -> None:
    """``aten.addmm(b, x, W^T)`` -> ``nn.Linear(W, b)``."""
    node = site.node
    module = _linear_module(constant(site, node.args[2]).t(), constant(site, node.args[0]))
    site.node.args = (node.args[1],)
    to_module(site, module)


@register_aten_op("mm", note="nn.Linear without bias (x @ W^T with constant W)")
def mm(site: AtenSite) -> None:
    """``aten.mm(x, W^T)`` -> ``nn.Linear(W, bias=False)``."""
    to_module(site, _linear_module(constant(site, site.node.args[1]).t(), None))


def _bn_check(node: fx.Node) -> str | None:
    name = node.target.overloadpacket.__name__
    if name == "batch_norm" and (argument(node, 5, "training", False) or node.args[3] is None):
        return "normalises by batch statistics; export the model in eval mode with running statistics"
    return None


def _bn_module(site: AtenSite, args: tuple, eps: float) -> nn.Module:
    weight, bias, mean, var = (constant(site, a) for a in args)
    rank = len(shape(site.node.args[0]) or ())
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
    to_module(site, _bn_module(site, node.args[1:5], argument(node, 7, "eps", 1e-5)))


@register_aten_op("_native_batch_norm_legit_no_training", note="nn.BatchNorm1d / nn.BatchNorm2d (core ATen form)")
def native_batch_norm(site: AtenSite) -> None:
    """``aten._native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)[0]`` -> ``nn.BatchNorm2d``."""
    node = site.node
    module = _bn_module(site, node.args[1:5], argument(node, 6, "eps", 1e-5))
    first_of_tuple(site)
    to_module(site, module)


# ------------------------------------------------------------------ activations
@register_aten_op("relu", note="torch.relu: activation site -> IF neuron")
def relu(site: AtenSite) -> None:
    """``aten.relu(x)`` -> ``torch.relu(x)``, which ingest makes an activation site."""
    to_function(site, torch.relu, (site.node.args[0],))


@register_aten_op("hardtanh", note="F.hardtanh(x, 0, c): capped activation site (ReLU6 is hardtanh(0, 6))")
def hardtanh(site: AtenSite) -> None:
    """``aten.hardtanh(x, lo, hi)`` -> ``F.hardtanh``; a site when ``lo == 0`` (the support check names other bounds)."""
    node = site.node
    to_function(site, F.hardtanh, (node.args[0], float(argument(node, 1, "min_val", -1.0)), float(argument(node, 2, "max_val", 1.0))))


@register_aten_op("relu6", note="F.relu6: capped activation site (an IF neuron whose threshold is at most 6)")
def relu6(site: AtenSite) -> None:
    """``aten.relu6(x)`` -> ``F.relu6(x)``, which ingest makes a site capped at 6."""
    to_function(site, F.relu6, (site.node.args[0],))


@register_aten_op("clamp", "clamp_min", note="torch.clamp(x, 0, c): activation site when the lower bound is 0")
def clamp(site: AtenSite) -> None:
    """``aten.clamp(x, lo, hi)`` / ``aten.clamp_min(x, lo)`` -> ``torch.clamp``."""
    node = site.node
    high = argument(node, 2, "max", None) if node.target.overloadpacket.__name__ == "clamp" else None
    to_function(site, torch.clamp, (node.args[0], argument(node, 1, "min", None), high))
