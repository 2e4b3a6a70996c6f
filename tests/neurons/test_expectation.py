"""Spike-equivalent operators: the chunked module is the reference step, and its running mean is f of the input's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeconv.errors import ConversionError
from spikeconv.neurons.expectation import SpikeEquivalentOperator, expectation_step


class _Product(nn.Module):
    def forward(self, a, b):
        return a @ b


OPS = {
    "layer_norm": (nn.LayerNorm(6), ((4, 6),)),
    "gelu": (nn.GELU(), ((4, 6),)),
    "softmax": (nn.Softmax(-1), ((4, 6),)),
    "product": (_Product(), ((4, 6), (6, 3))),
}


def _inputs(shapes, steps, batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(steps * batch, *shape, generator=gen) for shape in shapes]


def _reference(op, inputs, steps):
    sums = tuple(torch.zeros_like(x.reshape(steps, -1, *x.shape[1:])[0]) for x in inputs)
    emitted, outs = None, []
    for t in range(steps):
        step = tuple(x.reshape(steps, -1, *x.shape[1:])[t] for x in inputs)
        out, sums, emitted = expectation_step(op, step, sums, emitted, t)
        outs.append(out)
    return torch.cat(outs)


@pytest.mark.parametrize("kind", list(OPS))
def test_module_equals_the_reference_step_whole_and_in_chunks(kind):
    op, shapes = OPS[kind]
    module = SpikeEquivalentOperator(op, kind=kind)
    inputs = _inputs(shapes, steps=6, batch=3)
    expected = _reference(op, inputs, 6)
    with torch.no_grad():
        torch.testing.assert_close(module(*inputs, 6), expected, rtol=1e-5, atol=1e-5)
        module.reset_state()
        first = module(*[x[:6] for x in inputs], 2)  # steps 1-2, then 3-6: the state carries over
        rest = module(*[x[6:] for x in inputs], 4)
    torch.testing.assert_close(torch.cat([first, rest]), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", list(OPS))
def test_running_mean_of_the_output_is_the_operation_on_the_running_means(kind):
    op, shapes = OPS[kind]
    steps, batch = 7, 2
    inputs = _inputs(shapes, steps, batch, seed=1)
    with torch.no_grad():
        per_step = OPS[kind][0](*[x[:batch] for x in inputs]).shape[1:]
        out = SpikeEquivalentOperator(op, kind=kind)(*inputs, steps).reshape(steps, batch, *per_step)
        for t in (1, 3, 7):
            means = [x.reshape(steps, batch, *x.shape[1:])[:t].mean(0) for x in inputs]
            torch.testing.assert_close(out[:t].mean(0), op(*means), rtol=1e-4, atol=1e-5)


def test_a_constant_input_is_passed_through_exactly_at_every_step():
    op = nn.LayerNorm(5)
    x = torch.randn(1, 5).repeat(4, 1)  # the same input at each of 4 steps (batch 1)
    with torch.no_grad():
        out = SpikeEquivalentOperator(op, kind="layer_norm")(x, 4)
        torch.testing.assert_close(out, op(x), rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_operation_and_the_inputs():
    op = nn.LayerNorm(4)
    module = SpikeEquivalentOperator(op, kind="layer_norm")
    x = torch.randn(3 * 2, 4, requires_grad=True)
    module(x, 3).square().sum().backward()
    assert x.grad is not None and module.op.weight.grad is not None and op.weight.grad is None  # a copy, not the ANN's


def test_an_input_that_is_not_time_flattened_is_refused():
    with pytest.raises(ConversionError, match="not time-flattened"):
        SpikeEquivalentOperator(nn.GELU(), kind="gelu")(torch.randn(5, 3), 2)
