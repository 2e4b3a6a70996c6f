"""Model registry: presets, notation fallback, duplicates, and a contract test per preset."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.models import (
    available_models,
    build_model,
    describe_model,
    register_model,
)
from spikeconv.models import registry as registry_module


def test_presets_are_registered_and_sorted() -> None:
    names = available_models()
    assert {"fmnist-cnn", "mlp", "digits-cnn"} <= set(names)
    assert names == sorted(names)


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ConfigError, match="'mlp' is already registered"):
        register_model("mlp", lambda **_: nn.Identity())


def test_register_and_build_custom_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # Work on a copy of the registry so the test leaves the real one untouched.
    monkeypatch.setattr(registry_module, "_MODELS", dict(registry_module._MODELS))
    seen: dict = {}

    def tiny(*, input_shape, num_classes, mean, std, batch_norm, dropout) -> nn.Module:
        seen.update(input_shape=input_shape, num_classes=num_classes, batch_norm=batch_norm)
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[1] * input_shape[2], num_classes))

    register_model("tiny", tiny)
    assert "tiny" in available_models()
    model = build_model("tiny", input_shape=(1, 3, 3), num_classes=4, batch_norm=False)
    assert model(torch.rand(2, 1, 3, 3)).shape == (2, 4)
    assert seen == {"input_shape": (1, 3, 3), "num_classes": 4, "batch_norm": False}


@pytest.mark.parametrize("name", ["", " mlp", "my model"])
def test_bad_names_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="model name"):
        register_model(name, lambda **_: nn.Identity())


def test_build_model_accepts_raw_notation() -> None:
    model = build_model("8C3-P2-16", input_shape=(1, 10, 10), num_classes=3, batch_norm=False)
    assert [name for name, _ in model.named_children()] == [
        "conv1", "relu1", "pool1", "flatten", "fc2", "relu2", "classifier",
    ]  # fmt: skip


def test_unknown_name_lists_presets_and_grammar() -> None:
    with pytest.raises(ConfigError) as info:
        build_model("resnet-999", input_shape=(1, 28, 28), num_classes=10)
    message = str(info.value)
    for name in available_models():
        assert name in message
    assert "invalid layer token 'resnet'" in message and "<n>C<k>" in message


def test_shape_errors_pass_through_without_preset_list() -> None:
    with pytest.raises(ConfigError, match=r"\(conv1\)") as info:
        build_model("8C9", input_shape=(1, 8, 8), num_classes=10)
    assert "fmnist-cnn" not in str(info.value)


def test_fmnist_cnn_preset_matches_paper_layers() -> None:
    model = build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (5, 5)),
        (32, 64, (5, 5)),
    ]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(1024, 1024), (1024, 10)]


def test_describe_model_one_line() -> None:
    text = describe_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10)
    assert text.startswith("fmnist-cnn: 1x28x28 -> conv1 32x24x24 -> pool1 32x12x12")
    assert "fc3 1024 -> classifier 10" in text
    model = build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10)
    assert f"({sum(p.numel() for p in model.parameters()):,} parameters)" in text
    assert "\n" not in text


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 16, 16)])
def test_every_preset_contract(name: str, input_shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(
        name, input_shape=input_shape, num_classes=7, mean=[0.5], std=[0.25], dropout=0.1
    )
    x = torch.rand(3, *input_shape, generator=torch.Generator().manual_seed(0))
    model.eval()
    assert model(x).shape == (3, 7)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and len({id(m) for m in relus}) == len(relus)
    assert not any(m.inplace for m in relus)
    traced = torch.fx.symbolic_trace(model)
    relu_calls = [n for n in traced.graph.nodes if n.op == "call_module" and "relu" in n.target]
    assert len(relu_calls) == len(relus)
    torch.testing.assert_close(traced(x), model(x))
