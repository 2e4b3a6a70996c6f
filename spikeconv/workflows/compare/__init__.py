"""The compare job: one table of conversion and direct-training methods on one architecture.

``job`` (CompareJob, compare_job: evaluate, cache and report), ``methods`` (the method names and
their defaults) and ``models`` (which model each method needs: cache keys, training budgets).
"""

from spikeconv.workflows.compare.job import CompareJob, CompareResult, compare_job, compare_job_from_options
from spikeconv.workflows.compare.methods import (
    COMPARE_METHODS,
    DEFAULT_COMPARE_METHODS,
    DEFAULT_COMPARE_TIMESTEPS,
    CompareMethod,
    MethodKind,
    compare_method,
)
from spikeconv.workflows.compare.models import TrainingBudget

__all__ = [
    "COMPARE_METHODS",
    "DEFAULT_COMPARE_METHODS",
    "DEFAULT_COMPARE_TIMESTEPS",
    "CompareJob",
    "CompareMethod",
    "CompareResult",
    "MethodKind",
    "TrainingBudget",
    "compare_job",
    "compare_job_from_options",
    "compare_method",
]
