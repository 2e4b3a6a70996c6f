"""Transformer ingest: ViT operations get their own modules, attention is split, signed spike sites precede affine layers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest import activation_sites, ingest_module
from spikeconv.ingest.exported import ingest_exported
from spikeconv.ingest.transformer import OPERATORS_KEY
from spikeconv.ingest.transformer_ops import ActivationProduct


def tiny_vit(layers: int = 1) -> nn.Module:
    """torchvision's ViT on 1x8x8 images: 4 patches + class token, width 16, 2 heads; a random head."""
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=8, patch_size=4, num_layers=layers, num_heads=2, hidden_dim=16,
                                                 mlp_dim=32, num_classes=3)  # fmt: skip
    model.conv_proj = nn.Conv2d(1, 16, 4, 4)
    nn.init.normal_(model.heads.head.weight, std=0.3)
    return model.eval()


def _modules(gm, kind):
    return [n for n in gm.graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(str(n.target)), kind)]


def test_torchvision_vit_ingests_to_the_same_function_with_one_module_per_operation():
    model = tiny_vit(layers=2)
    gm = ingest_module(model)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)
    operators = gm.meta[OPERATORS_KEY]
    assert sorted(set(operators.values())) == ["gelu", "layer_norm", "product", "softmax"]
    assert list(operators.values()).count("product") == 4 and list(operators.values()).count("layer_norm") == 5
    assert not _modules(gm, nn.MultiheadAttention)  # split into its parts
    # a signed pair of sites in front of every linear layer after the patch embedding: qkv, out, fc1, fc2 per block, head
    sites = activation_sites(gm)
    assert len(sites) == 2 * (4 * 2 + 1) and all(s.endswith(("_in_pos", "_in_neg")) for s in sites)
    assert all(isinstance(gm.get_submodule(s), nn.ReLU) for s in sites)
    assert not any("conv_proj" in s for s in sites)  # the patch embedding reads the image: analog first layer


def test_a_relu_cnn_graph_gets_no_pairs_and_no_operators():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    gm = ingest_module(model)
    assert activation_sites(gm) == ("_1",) and gm.meta[OPERATORS_KEY] == {}


class _Functional(nn.Module):
    """timm-style attention written with functions and methods, and a functional LayerNorm with weights."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Linear(4, 8)
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.weight, self.bias = nn.Parameter(torch.rand(8) + 0.5), nn.Parameter(torch.randn(8))
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        t = self.embed(x.flatten(2).transpose(1, 2))  # [N, 4, 8]
        b, n, c = t.shape
        q, k, v = self.qkv(F.layer_norm(t, (8,), self.weight, self.bias)).reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1) * (c // 2) ** -0.5).softmax(dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(b, n, c)) + F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        return self.head(F.gelu(y).mean(1))


def test_functional_attention_layer_norm_and_products_become_modules():
    model = _Functional().eval()
    x = torch.randn(3, 4, 2, 2)
    gm = ingest_module(model)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)
    products = _modules(gm, ActivationProduct)
    assert len(products) == 4  # q·kᵀ and ·v, twice (explicit, and scaled_dot_product_attention split)
    depth_scaled = [gm.get_submodule(str(n.target)) for n in products if gm.get_submodule(str(n.target)).scale_by_depth]
    assert len(depth_scaled) == 1
    assert len(_modules(gm, nn.Softmax)) == 2 and len(_modules(gm, nn.LayerNorm)) == 1 and len(_modules(gm, nn.GELU)) == 1


@pytest.mark.parametrize(
    ("attention", "call", "message"),
    [
        (nn.MultiheadAttention(8, 2), lambda a, t: a(t, t, t)[0], "batch_first=False"),
        (nn.MultiheadAttention(8, 2, batch_first=True), lambda a, t: a(t, t, t, attn_mask=torch.zeros(4, 4))[0], "masks"),
        (nn.MultiheadAttention(8, 2, batch_first=True), lambda a, t: a(t, t, t)[1], "need_weights=False"),
        (nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True), lambda a, t: a(t, t, t)[0], "add_bias_kv"),
    ],
    ids=["batch-second", "mask", "weights-read", "bias-kv"],
)
def test_attention_it_cannot_convert_is_refused_in_one_line(attention, call, message):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.attention = nn.Linear(4, 8), attention

        def forward(self, x):
            return call(self.attention, self.embed(x.flatten(2).transpose(1, 2))).flatten(1)

    with pytest.raises(UnsupportedLayerError, match=message) as info:
        ingest_module(Net().eval())
    assert "\n" not in str(info.value) and "attention" in str(info.value)


def test_cross_attention_with_separate_projections_is_split_exactly():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.a, self.b = nn.Linear(4, 8), nn.Linear(4, 8)
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True, kdim=8, vdim=8)

        def forward(self, x):
            t = x.flatten(2).transpose(1, 2)
            return self.attention(self.a(t), self.b(t), self.b(t), need_weights=False)[0].sum(1)

    model = Net().eval()
    x = torch.randn(2, 4, 2, 2)
    gm = ingest_module(model)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("export", ["batch-1", "batch-3", "dynamic-batch"])
def test_exported_vit_attention_is_made_batch_first_and_matches_at_another_batch(export):
    model = tiny_vit(layers=2)
    example = torch.zeros(1 if export == "batch-1" else 3, 1, 8, 8)
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if export == "dynamic-batch" else None
    gm = ingest_exported(torch.export.export(model, (example,), dynamic_shapes=dynamic))
    x = torch.randn(6, 1, 8, 8)  # another batch than the export's (whose class token is a constant of that batch)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)
    assert list(gm.meta[OPERATORS_KEY].values()).count("product") == 4
    assert not any(getattr(n.target, "namespace", "") == "aten" for n in gm.graph.nodes)


def test_sdpa_scale_defaults_to_one_over_sqrt_depth():
    product = ActivationProduct("matmul", scale_by_depth=True)
    a, b = torch.randn(2, 3, 5), torch.randn(2, 5, 4)
    torch.testing.assert_close(product(a, b), a @ b / math.sqrt(5))


@pytest.mark.parametrize("exporter", ["torchscript-opset17", "torchscript-opset20-static", "dynamo", "torchscript-opset14",
                                      "torchscript-unfolded", "torchscript-batch3", "dynamo-batch3"])  # fmt: skip
def test_onnx_vit_of_either_exporter_ingests_batch_first_and_matches_at_another_batch(tmp_path, exporter):
    """opset 14 writes LayerNorm out in elementary ops; ``do_constant_folding=False`` leaves the weights' transposes in the
    graph; a static batch of 3 holds the class token as 3 equal rows. Each ingests to the same function at batch 4."""
    import onnx

    from spikeconv.ingest import ingest_onnx

    model = tiny_vit(layers=1)
    path = tmp_path / "vit.onnx"
    example = torch.zeros(3 if exporter.endswith("batch3") else 1, 1, 8, 8)
    if exporter.startswith("dynamo"):
        torch.onnx.export(model, example, path, dynamo=True, input_names=["x"], external_data=False)
    elif exporter == "torchscript-opset14":
        torch.onnx.export(model, example, path, dynamo=False, opset_version=14, input_names=["x"], dynamic_axes={"x": {0: "n"}})
        assert not any(n.op_type == "LayerNormalization" for n in onnx.load(path).graph.node)
    elif exporter == "torchscript-unfolded":
        torch.onnx.export(model, example, path, dynamo=False, opset_version=17, input_names=["x"], do_constant_folding=False)
    elif exporter == "torchscript-batch3":
        torch.onnx.export(model, example, path, dynamo=False, opset_version=17, input_names=["x"])
    elif exporter == "torchscript-opset17":
        torch.onnx.export(model, example, path, dynamo=False, opset_version=17, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    else:  # Gelu is an ONNX op from opset 20; the batch is fixed at 1 in every reshape
        torch.onnx.export(model, example, path, dynamo=False, opset_version=20, input_names=["x"])
    assert any(n.op_type == "Softmax" for n in onnx.load(path).graph.node)
    gm = ingest_onnx(path)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-4, atol=1e-5)
    kinds = list(gm.meta[OPERATORS_KEY].values())
    assert kinds.count("product") == 2 and kinds.count("softmax") == 1 and kinds.count("gelu") == 1 and kinds.count("layer_norm") == 3
    assert len(activation_sites(gm)) == 2 * 5  # qkv, out, fc1, fc2, head


def test_a_written_out_gelu_is_one_gelu_and_a_lone_erf_is_refused():
    class Written(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(x)
            return self.fc(y * 0.5 * (1.0 + torch.erf(y / math.sqrt(2.0))))

    gm = ingest_module(Written().eval())
    assert list(gm.meta[OPERATORS_KEY].values()) == ["gelu"]
    with pytest.raises(UnsupportedLayerError, match="erf outside an exact GELU"):
        ingest_module(nn.Sequential(nn.Linear(4, 4), _Erf()).eval())


class _Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)
