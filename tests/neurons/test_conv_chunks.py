"""Row-chunked convolutions: bit-identical to one call on the whole batch, and only where that is safe."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import spikeconv
from spikeconv.neurons import conv_chunks
from spikeconv.neurons.conv_chunks import chunk_convolutions_, chunked_conv2d

CONVS = [
    nn.Conv2d(24, 24, 3, padding=1),
    nn.Conv2d(32, 64, 5),
    nn.Conv2d(16, 32, 1, stride=2, bias=False),
    nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4),
    nn.Conv2d(6, 10, 3, stride=2, padding=1, padding_mode="reflect"),
]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few rows, so that test-sized batches are split."""
    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_chunks, "MIN_ROWS", 40)


@pytest.mark.parametrize("index", range(len(CONVS)))
def test_chunked_conv_equals_one_call(index, small_chunks):
    conv = CONVS[index]
    gen = torch.Generator().manual_seed(index)
    spikes = (torch.rand(130, conv.in_channels, 14, 12, generator=gen) > 0.8).float() * 0.7
    currents = torch.randn(130, conv.in_channels, 14, 12, generator=gen)
    with torch.inference_mode():
        for x in (spikes, currents):
            expected = nn.Conv2d.forward(conv, x)
            got = chunked_conv2d(conv, x)
            assert got.shape == expected.shape and torch.equal(got, expected)
            assert torch.equal(chunked_conv2d(conv, x), expected)  # the reused buffer again


def test_autograd_and_small_batches_use_the_plain_call(small_chunks):
    conv = nn.Conv2d(3, 4, 3)
    x = torch.randn(100, 3, 8, 8, requires_grad=True)
    out = chunked_conv2d(conv, x)
    out.sum().backward()  # plain call under autograd: gradients flow
    assert x.grad is not None and x.grad.shape == x.shape
    with torch.no_grad():
        assert torch.equal(chunked_conv2d(conv, x[:10]), nn.Conv2d.forward(conv, x[:10]))


def test_converted_network_reads_out_the_same_chunked(monkeypatch):
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10)).eval()  # fmt: skip
    snn = spikeconv.convert(model, [images[:200]], method="calibrated", timesteps=4).eval()
    convs = [m for m in snn.body.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is nn.Conv2d and "forward" in vars(m) for m in convs)  # still plain convs, rerouted
    probe = images[200:264]
    with torch.inference_mode():
        monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 1 << 40)
        expected = snn(probe, 6)
        monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 1)
        monkeypatch.setattr(conv_chunks, "MIN_ROWS", 33)
        got = snn(probe, 6)
    assert torch.equal(got, expected)
    assert chunk_convolutions_(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Linear(2, 2))) == 1
