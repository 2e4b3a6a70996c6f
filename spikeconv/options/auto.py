"""``--method auto`` and the hybrid fine-tune from the CLI's options: the search's budget, the flags auto refuses,
and the ``--finetune-*`` budget."""

from __future__ import annotations

from spikeconv.errors import ConfigError
from spikeconv.search import AutoConfig, Objective
from spikeconv.training import FinetuneBudget

OBJECTIVES = tuple(Objective.names())
_EXPLICIT_ONLY = {"target_timesteps": "--target-timesteps", "threshold": "--threshold", "percentile": "--percentile",
                  "per_channel": "--per-channel", "max_spikes": "--max-spikes", "half_period": "--half-period",
                  "sin_correction": "--sin-correction"}  # fmt: skip


def finetune_budget(*, finetune: bool, method: str, epochs: int | None, samples: int | None, lr: float | None,
                    seed: int = 0) -> FinetuneBudget | None:  # fmt: skip
    """The hybrid fine-tune budget from ``--finetune-*`` (None for methods that do not train; the flags are refused there)."""
    given = [flag for flag, value in (("--finetune-epochs", epochs), ("--finetune-samples", samples), ("--finetune-lr", lr))
             if value is not None]  # fmt: skip
    if not finetune:
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to --method hybrid and --method auto --allow-finetune "
                              f"(method {method} does not train)")  # fmt: skip
        return None
    default = FinetuneBudget()
    return FinetuneBudget(epochs=epochs or default.epochs, samples=samples or default.samples, lr=lr or default.lr, seed=seed)


def check_auto_flags(**given: object) -> None:
    """Refuse the flags that tune one method when ``--method auto`` chooses the method and its options itself."""
    named = [_EXPLICIT_ONLY[name] for name, value in given.items() if value not in (None, False)]
    if named:
        raise ConfigError(f"{', '.join(named)} tune(s) one conversion method, but --method auto chooses the method, its options "
                          "and T itself; drop them, or name the method (e.g. --method calibrated)")  # fmt: skip


def auto_from_options(*, max_drop: float, objective: str, max_timesteps: int, val_samples: int, search_samples: int,
                      correction_samples: int, allow_finetune: bool = False,
                      finetune: FinetuneBudget | None = None) -> AutoConfig:  # fmt: skip
    """``--method auto`` settings from CLI values (``finetune``: the ``--finetune-*`` budget of ``--allow-finetune``)."""
    return AutoConfig(max_drop=float(max_drop), objective=Objective.from_name(objective), max_timesteps=max_timesteps,
                      validation_samples=val_samples, search_samples=search_samples, correction_samples=correction_samples,
                      allow_finetune=allow_finetune, finetune=finetune or FinetuneBudget())  # fmt: skip
