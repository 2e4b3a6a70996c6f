"""What ``--method auto`` is asked for: the accuracy budget, the objective and the search bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError
from spikeconv.evaluation import EnergyModel
from spikeconv.training.snn.finetune import FinetuneBudget


class Objective(NamedEnum):
    """What the search minimises within the accuracy budget."""

    TIMESTEPS = "timesteps"
    ENERGY = "energy"

    __label__ = "objective"
    __choices_sep__ = " "


@dataclass(frozen=True)
class AutoConfig:
    """The user's budget and the search bounds.

    Attributes:
        max_drop: Largest accepted drop of validation accuracy below the ANN's, in points.
        objective: Fewest timesteps (ties: least energy), or least energy.
        max_timesteps: Largest T tried.
        validation_samples: Training samples held out for validation (disjoint from calibration).
        search_samples: How many of them every simulated candidate is scored on; one within budget there is confirmed
            on more of them (up to all) before it is chosen (the split's noise, not the network, decided too often).
        correction_samples: Calibration samples the potential correction uses.
        energy: Energy per operation for the estimate.
        allow_finetune: Let the search also try ``hybrid``, which trains (never without this).
        finetune: The budget of each such fine-tune.
    """

    max_drop: float = 1.0
    objective: Objective = Objective.TIMESTEPS
    max_timesteps: int = 16
    validation_samples: int = 10000
    search_samples: int = 2000
    correction_samples: int = 512
    energy: EnergyModel = EnergyModel()
    allow_finetune: bool = False
    finetune: FinetuneBudget = FinetuneBudget()

    def __post_init__(self) -> None:
        if not isinstance(self.allow_finetune, bool) or not isinstance(self.finetune, FinetuneBudget):
            raise ConfigError("AutoConfig.allow_finetune must be a bool and finetune a FinetuneBudget")
        if not isinstance(self.objective, Objective):
            raise ConfigError("AutoConfig.objective must be an Objective member")
        if not (isinstance(self.max_drop, (int, float)) and math.isfinite(self.max_drop) and self.max_drop >= 0):
            raise ConfigError(f"--max-drop must be a number >= 0, got {self.max_drop!r}")
        for name in ("max_timesteps", "validation_samples", "search_samples", "correction_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
