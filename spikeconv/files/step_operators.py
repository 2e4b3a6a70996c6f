"""The one-step, explicit-state form of a transformer's spike-equivalent operators (ONNX step export).

A :class:`~spikeconv.neurons.expectation.SpikeEquivalentOperator` carries, per input, the running
sum of its input, the total it has emitted ``A = t·f(means)`` and the step count ``t``. As a step
(:func:`~spikeconv.neurons.expectation.expectation_step`, the same definition the simulator is tested
against)::

    (x_1, ..., x_n, S_1, ..., S_n, A, t) -> (y, S_1', ..., S_n', A', t + 1)

so the exported file loops like any other neuron: the caller feeds each step's state outputs back.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeconv.files.step_graph import NeuronStep, register_step_form
from spikeconv.neurons.expectation import SpikeEquivalentOperator

__all__: list[str] = []


def _operator_form(module: nn.Module, shapes: tuple[tuple[int, ...], ...]) -> NeuronStep:
    assert isinstance(module, SpikeEquivalentOperator)
    op = module.op
    zeros = tuple(torch.zeros(shape) for shape in shapes)
    with torch.no_grad():
        emitted = torch.zeros(op(*zeros).shape)
    count = len(shapes)

    def step(*values: Tensor) -> tuple[Tensor, ...]:
        inputs, sums, total, t = values[:count], values[count : 2 * count], values[2 * count], values[2 * count + 1]
        t = t + 1.0
        sums = tuple(s + x for s, x in zip(sums, inputs, strict=True))
        new_total = op(*(s / t for s in sums)) * t
        return (new_total - total, *sums, new_total, t)

    names = (*(f"sum{i}" for i in range(count)), "emitted", "step")
    return NeuronStep(names, (*zeros, emitted, torch.zeros(1)), step, unbatched=("step",))


register_step_form(SpikeEquivalentOperator, _operator_form, all_inputs=True)
