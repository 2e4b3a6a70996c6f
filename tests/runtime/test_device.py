"""--device and --precision resolution, batches moved as they are read, and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

from spikeconv.errors import ConfigError
from spikeconv.runtime import BatchesOn, Precision, autocast, check_precision, resolve_device

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_cpu_and_auto_resolve_to_the_cpu_without_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@NO_CUDA
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cuda_is_one_line(spec):
    with pytest.raises(ConfigError, match="CUDA is not available") as caught:
        resolve_device(spec)
    assert "\n" not in str(caught.value) and "--device cpu" in str(caught.value)


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:-1", "mps0", ""])
def test_unknown_device_names_are_refused(spec):
    if spec == "":
        assert resolve_device(spec) == torch.device("cpu")  # an empty value is the default
        return
    with pytest.raises(ConfigError, match="is not one of"):
        resolve_device(spec)


def test_float16_is_refused_on_the_cpu_and_bf16_runs():
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        check_precision("16", cpu)
    with pytest.raises(ConfigError, match="is not one of"):
        check_precision("64", cpu)
    assert check_precision("bf16", cpu) is Precision.BF16
    layer = torch.nn.Linear(4, 3)
    with autocast(cpu, "bf16"):
        assert layer(torch.ones(2, 4)).dtype == torch.bfloat16
    with autocast(cpu, "32"):
        assert layer(torch.ones(2, 4)).dtype == torch.float32


def test_batches_on_moves_tensors_and_pairs_and_can_be_read_twice():
    batches = BatchesOn([torch.ones(2, 3), (torch.zeros(1, 3), torch.tensor([1]))], torch.device("cpu"))
    assert len(batches) == 2
    for _ in range(2):
        first, (x, y) = list(batches)
        assert first.shape == (2, 3) and x.shape == (1, 3) and y.tolist() == [1]
