"""Random images of any shape, made on demand: ``synthetic:CxHxW[:SAMPLES[:CLASSES]]``.

For checking memory and speed on networks whose data is not at hand (an ImageNet-sized ResNet on a
laptop, ``bench/scale.py``): sample ``i`` of a split is uniform noise in [0, 1] drawn from a generator
seeded by the split and ``i``, so any sample can be made again without keeping the set, and its label
is ``i mod CLASSES``. Nothing is held in memory but the sample being read. Accuracy on it means
nothing; its train and test splits are different noise (default 10,000 and 2,000 samples, 10 classes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from spikeconv.data.split import Split
from spikeconv.errors import ConfigError

PREFIX = "synthetic:"
_FORM = re.compile(r"(\d+)x(\d+)x(\d+)(?::(\d+))?(?::(\d+))?")
_DEFAULT_SAMPLES = {Split.TRAIN: 10_000, Split.TEST: 2_000}
_SPLIT_SEED = {Split.TRAIN: 0, Split.TEST: 0x9E3779B1}  # torch seeds its CPU generator with 32 bits: offsets stay below
MAX_SAMPLE_VALUES = 1 << 28
"""The largest sample (values) made: 1 GiB of float32, so a typo in the shape fails at once."""


@dataclass(frozen=True)
class SyntheticSpec:
    """The shape ``(C, H, W)``, the number of samples per split (None: the defaults) and of classes."""

    shape: tuple[int, int, int]
    samples: int | None = None
    classes: int = 10

    @classmethod
    def from_name(cls, name: str) -> SyntheticSpec:
        """Parse ``synthetic:CxHxW[:SAMPLES[:CLASSES]]``.

        Raises:
            ConfigError: Another form, a zero size, or a sample over 2^28 values.
        """
        match = _FORM.fullmatch(name[len(PREFIX) :]) if name.startswith(PREFIX) else None
        if match is None:
            raise ConfigError(f"{name!r} is not a synthetic data set; write synthetic:CxHxW[:SAMPLES[:CLASSES]], "
                              "e.g. synthetic:3x224x224:2000")  # fmt: skip
        c, h, w, samples, classes = (None if g is None else int(g) for g in match.groups())
        if min(c, h, w) < 1 or (samples is not None and samples < 1) or (classes is not None and classes < 2):
            raise ConfigError(f"{name}: sizes and samples must be >= 1 and classes >= 2")
        if c * h * w > MAX_SAMPLE_VALUES:
            raise ConfigError(f"{name}: one sample would hold {c * h * w} values, more than {MAX_SAMPLE_VALUES}")
        return cls(shape=(c, h, w), samples=samples, classes=classes or 10)


class SyntheticDataset(Dataset):
    """``(uniform noise C,H,W, i mod classes)`` for ``i`` in the chosen indices, each made when read."""

    def __init__(self, spec: SyntheticSpec, split: Split, indices: Sequence[int] | None = None) -> None:
        count = spec.samples or _DEFAULT_SAMPLES[split]
        self.spec, self.split = spec, split
        self.indices = range(count) if indices is None else indices
        self.num_classes = spec.classes
        self.sample_shape = spec.shape
        self.name = f"{PREFIX}{'x'.join(map(str, spec.shape))}"

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = int(self.indices[index])
        generator = torch.Generator().manual_seed((_SPLIT_SEED[self.split] + i) % (1 << 32))
        return torch.rand(self.spec.shape, generator=generator), i % self.spec.classes

    def subset(self, indices: Sequence[int] | torch.Tensor) -> SyntheticDataset:
        """The samples at ``indices`` of this set (still made when read)."""
        chosen = [int(self.indices[int(j)]) for j in indices]
        return SyntheticDataset(self.spec, self.split, chosen)

    def head(self, n: int) -> SyntheticDataset:
        return self.subset(range(min(n, len(self))))


def load_synthetic(name: str, split: Split) -> SyntheticDataset:
    """The ``split`` of ``synthetic:CxHxW[:SAMPLES[:CLASSES]]`` (see the module docstring)."""
    return SyntheticDataset(SyntheticSpec.from_name(name), split)
