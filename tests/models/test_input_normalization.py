"""InputNormalization: numerics, validation, and that torch.fx traces through it."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx

from spikeconv.errors import ConfigError
from spikeconv.models import InputNormalization, build_model


def test_normalises_each_channel() -> None:
    norm = InputNormalization((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.stack(
        [(x[:, 0] - 0.1) / 0.5, (x[:, 1] - 0.2) / 0.25, (x[:, 2] - 0.3) / 2.0], dim=1
    )
    torch.testing.assert_close(norm(x), expected)
    assert norm.mean.shape == (1, 3, 1, 1) and norm.std.shape == (1, 3, 1, 1)
    assert norm.mean_values == pytest.approx((0.1, 0.2, 0.3))
    assert norm.std_values == (0.5, 0.25, 2.0)


def test_buffers_are_in_state_dict_and_follow_load() -> None:
    norm = InputNormalization([0.5], [0.5])
    assert set(norm.state_dict()) == {"mean", "std"}
    norm.load_state_dict({"mean": torch.full((1, 1, 1, 1), 0.25), "std": torch.ones(1, 1, 1, 1)})
    assert norm.mean_values == (0.25,) and norm.std_values == (1.0,)


def test_single_value_broadcast_to_num_channels() -> None:
    norm = InputNormalization([0.5], [0.5, 0.25, 1.0])
    assert norm.mean_values == (0.5, 0.5, 0.5)
    norm = InputNormalization(0.5, 2.0, num_channels=2)
    assert norm.std.shape == (1, 2, 1, 1)


@pytest.mark.parametrize(
    ("mean", "std", "num_channels", "expected"),
    [
        ([0.5], [0.0], None, "std must be > 0"),
        ([0.5, 0.5], [0.5, -1.0], None, "std must be > 0"),
        ([0.1, 0.2], [0.5], 3, "has 2 values but the input has 3 channels"),
        ([], [1.0], None, "mean is empty"),
        ([float("nan")], [1.0], None, "must be finite"),
        ("0.5", [1.0], None, "sequence of numbers"),
    ],
)
def test_invalid_values_rejected(
    mean: object, std: object, num_channels: int | None, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        InputNormalization(mean, std, num_channels=num_channels)  # type: ignore[arg-type]


def test_fx_traces_through_normalisation() -> None:
    model = build_model(
        "digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=[0.3], std=[0.4]
    ).eval()
    traced = torch.fx.symbolic_trace(model)
    nodes = list(traced.graph.nodes)
    module_targets = [n.target for n in nodes if n.op == "call_module"]
    assert "input_norm" not in module_targets
    assert module_targets[0] == "conv1"
    ops = [n.target for n in nodes if n.op in ("call_function", "call_method")]
    assert operator.sub in ops or "sub" in ops
    assert operator.truediv in ops or "div" in ops
    attrs = {n.target for n in nodes if n.op == "get_attr"}
    assert attrs == {"input_norm.mean", "input_norm.std"}
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(traced(x), model(x))
