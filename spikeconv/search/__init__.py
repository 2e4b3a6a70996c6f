"""``--method auto``: the search for the conversion method and T that meet an accuracy budget at least cost.

One module per concern: ``config`` (the budget: AutoConfig, Objective), ``variants`` (what is tried and the
choice returned), ``candidates`` (screening, simulating and fine-tuning candidates on the validation split),
``choose`` (the search and its decision), ``expected_drop`` (the drop the ANN's calibrated confidence expects, beside
the counted one), ``splits`` (which training samples calibrate, validate, confirm and fine-tune), ``report`` (the
report as text). The convert job and the Python API (``workflows``) draw the
splits and call :func:`choose_conversion`.
"""

from spikeconv.search.choose import choose_conversion
from spikeconv.search.config import AutoConfig, Objective
from spikeconv.search.report import format_choice
from spikeconv.search.splits import auto_calibration_samples, finetune_split, validation_indices, validation_split
from spikeconv.search.variants import AutoChoice, Variant, variants_for

__all__ = [
    "AutoChoice",
    "AutoConfig",
    "Objective",
    "Variant",
    "auto_calibration_samples",
    "choose_conversion",
    "finetune_split",
    "format_choice",
    "validation_indices",
    "validation_split",
    "variants_for",
]
