"""What a transformer operation costs per sample, in the ANN and at every step of the SNN.

LayerNorm, GELU, softmax and the product of two activations are not synaptic operations: they
multiply, divide and evaluate functions densely, whether their inputs are spikes or not. Every
arithmetic operation they need is therefore counted as a multiply-accumulate (MAC, the expensive
kind of :class:`~spikeconv.evaluation.EnergyModel`), never as an accumulate. Per element of the
operation's output (``n`` elements) or per product term:

| operation | ANN (one forward) |
|---|---|
| ``layer_norm`` | 5 MAC per element (mean, centre, square, normalise, scale and shift) |
| ``softmax`` | 4 MAC per element (max, subtract and exp, sum, divide) |
| ``gelu`` | 4 MAC per element (``x·Φ(x)``: scale, erf or tanh, add, multiply) |
| ``product`` | ``a @ b``: one MAC per term (``M·K·N`` per matrix), ``a * b``: 1 per element; a scale adds 1 per element |

A spike-equivalent operator (:class:`~spikeconv.neurons.expectation.SpikeEquivalentOperator`)
evaluates the operation on the running means at **every step**, so it costs the ANN's operation at
every step, plus its bookkeeping: per input element one AC (the running sum) and one MAC (the mean),
per output element one MAC (times ``t``) and one AC (the difference with the last step).
``nn.MultiheadAttention`` left whole in an ANN is priced as its parts (projections, two products,
softmax). Memory traffic is not counted, as for every other layer.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from spikeconv.neurons.expectation import SpikeEquivalentOperator

__all__ = ["is_priced_operator", "operator_kind_of", "operator_ops"]

_PER_ELEMENT = {"layer_norm": 5, "softmax": 4, "gelu": 4}
_TORCH_OPERATORS = {nn.LayerNorm: "layer_norm", nn.GELU: "gelu", nn.Softmax: "softmax", nn.MultiheadAttention: "attention"}


def operator_kind_of(module: nn.Module) -> str | None:
    """The operation a module computes (``layer_norm``, ``gelu``, ``softmax``, ``product``, ``attention``), else ``None``."""
    if isinstance(module, SpikeEquivalentOperator):
        return module.kind
    return _TORCH_OPERATORS.get(type(module)) or getattr(type(module), "spikeconv_operator", None)


def is_priced_operator(module: nn.Module) -> bool:
    """Whether :func:`operator_ops` prices ``module``."""
    return operator_kind_of(module) is not None


def _product_macs(module: nn.Module, a: Tensor, b: Tensor, out: Tensor) -> float:
    mode = getattr(module, "mode", "matmul")
    per_sample = out[0].numel()
    terms = per_sample * a.shape[-1] if mode == "matmul" and a.dim() > 1 else per_sample
    scaled = getattr(module, "scale_by_depth", False) or getattr(module, "scale", 1.0) != 1.0
    return float(terms + (per_sample if scaled else 0))


def _attention_macs(module: nn.MultiheadAttention, query: Tensor, out: Tensor) -> float:
    """An unsplit ``nn.MultiheadAttention``: projections, ``Q·Kᵀ`` (scaled), softmax and ``·V``, per sample."""
    length = query.shape[1] if module.batch_first else query.shape[0]
    e, heads = module.embed_dim, module.num_heads
    projections = 4 * length * e * e
    scores = heads * length * length * (module.head_dim + 1)
    return float(projections + scores + _PER_ELEMENT["softmax"] * heads * length * length + length * length * e)


def _ann_macs(kind: str, module: nn.Module, inputs: tuple, out: Tensor) -> float:
    if kind == "product":
        return _product_macs(module, inputs[0], inputs[1], out)
    if kind == "attention":
        return _attention_macs(module, inputs[0], out)
    return float(_PER_ELEMENT[kind] * out[0].numel())


def operator_ops(module: nn.Module, inputs: tuple, output: object, samples: int) -> tuple[float, float]:
    """``(AC, MAC)`` of one call of ``module`` on ``samples`` samples (one step of a spiking operator).

    Args:
        module: A priced operation (:func:`is_priced_operator`): an ANN module or a spike-equivalent operator.
        inputs: The call's positional arguments (a spiking operator's step count last).
        output: What it returned (``nn.MultiheadAttention``: its tuple).
        samples: Samples the call covered (for a spiking operator: ``N``, one step).
    """
    kind = operator_kind_of(module)
    out = output[0] if isinstance(output, tuple) else output
    tensors = tuple(x for x in inputs if isinstance(x, Tensor))
    if isinstance(module, SpikeEquivalentOperator):
        steps = inputs[-1]
        rows = out.shape[0] // steps
        step_out = out[:rows]
        step_in = tuple(x[: x.shape[0] // steps] for x in tensors)
        macs = _ann_macs(kind, module.op, step_in, step_out) * samples
        in_elements = sum(math.prod(x.shape[1:]) for x in step_in) * samples
        out_elements = math.prod(step_out.shape[1:]) * samples
        return float(in_elements + out_elements), float(macs + in_elements + out_elements)
    return 0.0, _ann_macs(kind, module, tensors, out) * samples
