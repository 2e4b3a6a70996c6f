"""BatchNorm folding leaves the ANN's outputs unchanged and removes the folded BatchNorms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeconv.ingest import ingest_module


def _randomise_bn_(bn: nn.modules.batchnorm._BatchNorm, seed: int) -> None:
    """Non-trivial running statistics (and affine parameters when present)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) * 2 + 0.1)
        if bn.affine:
            bn.weight.copy_(torch.randn(bn.num_features, generator=generator))
            bn.bias.copy_(torch.randn(bn.num_features, generator=generator))


def _conv_bn(*, bias: bool, affine: bool) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.BatchNorm2d(6, affine=affine), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 5 * 5, 4))  # fmt: skip


def _linear_bn(*, bias: bool, affine: bool) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(75, 8, bias=bias), nn.BatchNorm1d(8, affine=affine), nn.ReLU(), nn.Linear(8, 4))


def _strided_grouped_conv_bn(*, bias: bool, affine: bool) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=2, groups=3, bias=bias), nn.BatchNorm2d(6, affine=affine),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 4))  # fmt: skip


@pytest.mark.parametrize("builder", [_conv_bn, _linear_bn, _strided_grouped_conv_bn], ids=["conv", "linear", "strided-grouped"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
def test_folding_preserves_outputs_and_removes_bn(builder, bias, affine):
    torch.manual_seed(0)
    model = builder(bias=bias, affine=affine)
    bn = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    _randomise_bn_(bn, seed=1)
    model.eval()
    x = torch.randn(5, 3, 5, 5)
    gm = ingest_module(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in gm.modules())
    torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)


class _SharedProducer(nn.Module):
    """A conv whose output feeds BN and a residual path: folding would change the residual."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.bn(y)) + y


def test_bn_after_shared_conv_is_kept_and_outputs_match():
    torch.manual_seed(0)
    model = _SharedProducer()
    _randomise_bn_(model.bn, seed=2)
    model.eval()
    gm = ingest_module(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in gm.modules()) == 1
    x = torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-6)


def test_folded_weights_follow_the_formula():
    """W' = W·γ/σ and b' = γ·(b − μ)/σ + β with σ = sqrt(var + ε), per output channel."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.ReLU())
    _randomise_bn_(model[1], seed=3)
    model.eval()
    gm = ingest_module(model)
    folded = next(m for m in gm.modules() if isinstance(m, nn.Linear))
    bn, linear = model[1], model[0]
    sigma = torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded.weight, linear.weight * (bn.weight / sigma)[:, None])
    torch.testing.assert_close(folded.bias, bn.weight * (linear.bias - bn.running_mean) / sigma + bn.bias)
