"""Turn the CLI's option strings into the library's typed configs (the string -> type edge).

The library below never parses strings. ``workflows`` re-exports these for the CLI, which imports only
``workflows`` (style.md); ``compare`` builds its configs with them too. One module per family of options:
``conversion``, ``training``, ``model``, ``auto`` (``--method auto`` and ``--finetune-*``).
"""

from spikeconv.options.auto import OBJECTIVES, auto_from_options, check_auto_flags, finetune_budget
from spikeconv.options.conversion import (
    ENCODINGS,
    MAXPOOL_MODES,
    RESETS,
    SIN_CORRECTIONS,
    TARGET_NAMES,
    THRESHOLD_RULES,
    convert_from_options,
    settings_from_options,
    target_note,
)
from spikeconv.options.model import model_spec_from_options
from spikeconv.options.training import (
    ACTIVATIONS,
    AUGMENTS,
    OPTIMIZERS,
    SCHEDULES,
    SNN_LOSSES,
    SNN_RECIPES,
    TRAINABLE_NEURONS,
    activation_from_options,
    ann_training_from_options,
    has_mpr,
    snn_training_from_options,
)

__all__ = [
    "ACTIVATIONS",
    "AUGMENTS",
    "ENCODINGS",
    "MAXPOOL_MODES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "RESETS",
    "SCHEDULES",
    "SIN_CORRECTIONS",
    "SNN_LOSSES",
    "SNN_RECIPES",
    "TARGET_NAMES",
    "THRESHOLD_RULES",
    "TRAINABLE_NEURONS",
    "activation_from_options",
    "ann_training_from_options",
    "auto_from_options",
    "check_auto_flags",
    "convert_from_options",
    "finetune_budget",
    "has_mpr",
    "model_spec_from_options",
    "settings_from_options",
    "snn_training_from_options",
    "target_note",
]
