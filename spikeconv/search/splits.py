"""Which training samples ``--method auto`` calibrates on, validates on and fine-tunes on.

Kept apart from the search (:mod:`spikeconv.search.choose`) because the convert job and the Python API
draw these splits themselves and hand them to :func:`~spikeconv.search.choose_conversion`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from spikeconv.data import calibration_indices
from spikeconv.errors import ConfigError
from spikeconv.search.config import AutoConfig


def auto_calibration_samples(train_size: int, calib_samples: int, config: AutoConfig) -> int:
    """Calibration samples for a search: ``calib_samples``, or half the training set when it cannot also hold the validation split."""
    if train_size >= calib_samples + config.validation_samples:
        return calib_samples
    return max(1, min(calib_samples, train_size // 2))


def validation_split(train, *, calibration_samples: int, calibration_seed: int, samples: int):
    """``samples`` training samples disjoint from the calibration draw, with a seed of their own (sorted indices).

    Raises:
        ConfigError: Calibration takes every training sample, so none is left to validate on.
    """
    indices = validation_indices(len(train), calibration_samples=calibration_samples, calibration_seed=calibration_seed,
                                 samples=samples)  # fmt: skip
    return _subset(train, indices)


def finetune_split(train, *, calibration_samples: int, calibration_seed: int, samples: int):
    """The training samples outside :func:`validation_split` (in order): what ``allow_finetune``'s fine-tunes train on."""
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[validation_indices(len(train), calibration_samples=calibration_samples, calibration_seed=calibration_seed,
                            samples=samples)] = False  # fmt: skip
    return _subset(train, torch.nonzero(keep).flatten())


def search_and_confirmation(validation, search_samples: int) -> tuple[Any, list[Any]]:
    """The held-out samples the search simulates every candidate on (``search_samples`` of them, drawn with a fixed
    seed, in order), and the others in two confirmation stages: up to 1.5 times as many again, then the rest (an
    empty list when there are no others).

    Drawn, not the first ones: a data set stored class by class would otherwise give the search a few classes only."""
    if search_samples >= len(validation):
        return validation, []
    order = torch.randperm(len(validation), generator=torch.Generator().manual_seed(0))
    cuts = [search_samples, min(len(validation), search_samples + math.ceil(1.5 * search_samples)), len(validation)]
    parts = [order[:cuts[0]], order[cuts[0]:cuts[1]], order[cuts[1]:cuts[2]]]
    searched, *stages = (_subset(validation, part.sort().values) for part in parts if len(part))
    return searched, stages


def _subset(train, indices: torch.Tensor):
    subset = getattr(train, "subset", None)
    return subset(indices) if callable(subset) else torch.utils.data.Subset(train, indices.tolist())


def validation_indices(size: int, *, calibration_samples: int, calibration_seed: int, samples: int) -> torch.Tensor:
    """The sorted indices of :func:`validation_split`."""
    free = torch.ones(size, dtype=torch.bool)
    free[calibration_indices(size, num_samples=calibration_samples, seed=calibration_seed)] = False
    pool = torch.nonzero(free).flatten()
    if len(pool) == 0:
        raise ConfigError(f"--method auto needs training samples beyond the {calibration_samples} used for calibration "
                          "to validate on; lower --calib-samples or pick an explicit --method")  # fmt: skip
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(calibration_seed + 1))[:samples]
    return pool[order].sort().values
