"""Activation call sites: one module per call, whatever the spelling; capped ReLUs keep their cap."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest import CAPS_KEY, activation_sites, ingest_module


class _SharedReLU(nn.Module):
    """torchvision BasicBlock style: one ReLU module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.relu(self.conv1(x))
        return self.relu(self.conv2(y) + x)


def test_module_called_twice_gives_two_sites_with_distinct_modules():
    gm = ingest_module(_SharedReLU())
    sites = activation_sites(gm)
    assert sites == ("relu", "relu_1")
    first, second = (gm.get_submodule(name) for name in sites)
    assert first is not second
    assert type(first) is nn.ReLU and type(second) is nn.ReLU
    calls = [n.target for n in gm.graph.nodes if n.op == "call_module" and n.target in sites]
    assert calls == list(sites)


class _Spellings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(2, 2, 1) for _ in range(6))
        self.inplace = nn.ReLU(inplace=True)

    def forward(self, x):
        a = F.relu(self.convs[0](x))
        b = torch.relu(self.convs[1](a))
        c = self.inplace(self.convs[2](b))
        d = self.convs[3](c).relu()
        e = F.relu(self.convs[4](d), inplace=True)
        return torch.relu_(self.convs[5](e))


def test_every_relu_spelling_becomes_a_site_and_outputs_match():
    torch.manual_seed(0)
    model = _Spellings().eval()
    gm = ingest_module(model)
    sites = activation_sites(gm)
    assert len(sites) == 6
    assert all(type(gm.get_submodule(site)) is nn.ReLU for site in sites)
    assert not [n for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    x = torch.randn(2, 2, 3, 3)
    torch.testing.assert_close(gm(x), model(x))


class _Capped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(2, 2, 1) for _ in range(6))
        self.relu6 = nn.ReLU6()
        self.hardtanh = nn.Hardtanh(0.0, 2.5)

    def forward(self, x):
        a = self.relu6(self.convs[0](x))
        b = F.relu6(self.convs[1](a))
        c = torch.clamp(self.convs[2](b), 0.0, 3.0)
        d = self.convs[3](c).clamp(min=0)
        e = self.hardtanh(self.convs[4](d))
        return F.hardtanh(self.convs[5](e), 0.0, 1.5)


def test_capped_relus_become_hardtanh_sites_with_recorded_caps():
    torch.manual_seed(0)
    model = _Capped().eval()
    gm = ingest_module(model)
    sites = activation_sites(gm)
    assert len(sites) == 6
    caps = [getattr(gm.get_submodule(site), "max_val", math.inf) for site in sites]
    assert caps == [6.0, 6.0, 3.0, math.inf, 2.5, 1.5]
    assert [type(gm.get_submodule(site)) for site in sites] == [nn.Hardtanh] * 3 + [nn.ReLU] + [nn.Hardtanh] * 2
    assert all(gm.get_submodule(site).min_val == 0.0 for site in sites if site != sites[3])
    assert gm.meta[CAPS_KEY] == {site: cap for site, cap in zip(sites, caps, strict=True) if cap != math.inf}
    x = torch.randn(4, 2, 3, 3) * 5
    torch.testing.assert_close(gm(x), model(x))


@pytest.mark.parametrize("cap", [0.0, -1.0])
def test_clamp_with_non_positive_cap_is_not_a_site(cap):
    class Clamped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return torch.clamp(self.conv(x), 0.0, cap)

    with pytest.raises(UnsupportedLayerError, match="clamp"):
        ingest_module(Clamped())


class _InplaceThenReused(nn.Module):
    """An in-place ReLU overwrites ``y``; the later ``y + z`` reads the activated tensor twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.conv(x)
        before = y * 1.0  # read before the in-place op: keeps the raw values
        z = self.relu(y)
        w = F.relu(y.clamp_(0.0, 1.0) * 2.0, inplace=True)
        return y + z + before + w


def test_inplace_sites_keep_their_overwrite_semantics():
    torch.manual_seed(0)
    model = _InplaceThenReused().eval()
    gm = ingest_module(model)
    assert len(activation_sites(gm)) == 3
    x = torch.randn(3, 2, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))
