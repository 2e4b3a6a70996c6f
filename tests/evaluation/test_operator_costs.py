"""Transformer operations are priced as MACs, in the ANN once and in the SNN at every step; linear layers see spikes."""

from __future__ import annotations

import torch
from torch import nn

import spikeconv
from spikeconv.evaluation import count_operations
from spikeconv.evaluation.operator_costs import operator_ops
from spikeconv.ingest import ingest_module
from spikeconv.ingest.transformer_ops import ActivationProduct
from spikeconv.neurons.expectation import SpikeEquivalentOperator
from tests.ingest.test_transformer_ingest import tiny_vit


def test_hand_counts_of_each_operation():
    x = torch.randn(2, 5, 6)
    assert operator_ops(nn.LayerNorm(6), (x,), x, 2) == (0.0, 2 * 5 * 30.0)
    assert operator_ops(nn.Softmax(-1), (x,), x, 2) == (0.0, 2 * 4 * 30.0)
    a, b = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 4, 5)
    out = a @ b
    assert operator_ops(ActivationProduct("matmul"), (a, b), out, 2) == (0.0, 2 * (3 * 5 * 5 * 4.0))
    assert operator_ops(ActivationProduct("matmul", scale=0.5), (a, b), out * 0.5, 2) == (0.0, 2 * (3 * 5 * 5 * 4.0 + 75))


def test_a_spiking_operator_costs_its_operation_plus_bookkeeping_at_every_step():
    op = SpikeEquivalentOperator(nn.GELU(), kind="gelu")
    steps, batch = 3, 2
    x = torch.randn(steps * batch, 7)
    out = op(x, steps)
    ac, mac = operator_ops(op, (x, steps), out, batch)
    assert mac == batch * (4 * 7 + 7 + 7) and ac == batch * (7 + 7)  # GELU, the mean, t·f; the running sum, the difference


def test_vit_counts_macs_for_operations_and_only_accumulates_for_linear_layers():
    model = tiny_vit(layers=1)
    snn = spikeconv.convert(model, [torch.randn(16, 1, 8, 8)], method="calibrated", timesteps=4)
    x = torch.randn(3, 1, 8, 8)
    with count_operations(snn) as counter:
        snn(x, 4)
    totals = counter.result().totals(4)
    layers = totals["layers"]
    linear = {n: v for n, v in layers.items() if v["kind"] == "linear"}
    assert linear and all(v["mac"] == 0.0 for v in linear.values())  # spikes in: accumulates only
    operators = {n: v for n, v in layers.items() if v["kind"] in ("layer_norm", "gelu", "softmax", "product")}
    assert not any(".op" in n for n in operators)  # the wrapped operation is priced once, with its operator
    assert len(operators) == 7 and all(v["mac"] > 0 for v in operators.values())
    assert operators["encoder_layers_encoder_layer_0_ln_1"]["static"]  # time-invariant: as a static layer
    ann_graph = ingest_module(model)
    with count_operations(ann_graph) as ann_counter:
        ann_graph(x)
    ann = ann_counter.result().totals()
    per_step = {n: v["mac"] / 4 for n, v in operators.items() if not v["static"]}
    for name, mac in per_step.items():  # every step costs at least what the ANN's operation costs once
        assert mac >= ann["layers"][name]["mac"], name
