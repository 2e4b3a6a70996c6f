"""``--method auto``: the conversion method and T that meet the user's accuracy budget at least cost.

The search answers "what is the fewest timesteps (or the least energy) at which my network stays
within ``max_drop`` points of its ANN, and with which method?" on a validation split of the
*training* data (never the test set; disjoint from the calibration samples):

1. Calibrate once per family of statistics: per-layer and per-channel MMSE histograms (shared by
   every target T through :func:`~spikeconv.calibration.recalibrate`), percentile histograms for
   ``burst``, the learned clip for ``qcfs`` when the ANN has QCFS activations.
2. For T = 1, 2, ... ``max_timesteps``: screen every variant (method x per-channel x signed
   neuron) by the accuracy of its ideal T-step rate code (:func:`~spikeconv.convert.rate_code_ann`,
   one ANN pass, no simulation); simulate the most promising ones (with their measured correction)
   on the validation split, counting operations for the energy estimate.
3. A candidate is within budget when its drop plus one standard error of that paired drop
   (from the samples the ANN and the SNN disagree on) is at most ``max_drop``: the split is small,
   and the ANN has seen these samples in training, so the measured drop errs low (on the shipped
   CNN a validation drop of 0.40 ± 0.36 at T = 3 was a test-set drop of 1.00).
   ``timesteps`` objective: the smallest T at which a simulated candidate is within budget; ties
   go to the least estimated energy. ``energy`` objective: the least energy among all simulated
   candidates within budget. If none is (the search stops early once three more T in a row did
   not lower the best drop), the candidate with the smallest drop is kept and the report says so.

Multi-spike neurons (``burst``, Γ = 2) carry more than one bit per step, so they are ranked by
binary-equivalent steps, T·⌈log2(Γ + 1)⌉, not by T alone.

4. Only with ``allow_finetune`` (``--allow-finetune``) does the search train: after the conversion
   search, ``hybrid`` (the calibrated conversion fine-tuned at T, :mod:`spikeconv.workflows.hybrid`)
   is tried below the chosen T in binary-equivalent steps (at the chosen T when nothing met the budget), from the largest such
   T down, at the T whose best conversion is within ``FINETUNE_REACH`` points of the budget, at most
   ``FINETUNE_TRIALS`` fine-tunes, stopping at the first that misses the budget. Each is trained on
   training samples outside the validation split and scored on that split like any candidate; the
   smallest T that meets the budget wins. The report records every fine-tune and its wall time.
   Without it nothing is ever trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import fx

from spikeconv._names import NamedEnum
from spikeconv.calibration import calibrate, plan_of, prepare, recalibrate, sharing_layers
from spikeconv.convert import ConvertConfig, convert, correct
from spikeconv.convert.for_target import allowed_for_target
from spikeconv.convert.methods import MethodOverrides, MethodSettings, method_settings
from spikeconv.convert.rate_code_ann import rate_code_ann
from spikeconv.data import make_loader
from spikeconv.errors import ConfigError
from spikeconv.evaluation import EnergyModel, count_operations
from spikeconv.evaluation.memory import measure_simulation, time_chunk_set
from spikeconv.neurons import SinCorrection, SpikingNetwork
from spikeconv.runtime import BatchesOn
from spikeconv.runtime.memory import WORKING_SET, MemoryBudget, measure_batch_cost, plan_batch, rebatch, resolve_budget
from spikeconv.workflows.hybrid import FinetuneBudget, finetune_converted

SCREEN_MARGIN = 2.0  # points: a rate-code prediction this far outside the budget is not simulated
SIMULATED_PER_T = 2  # at most this many variants are simulated at each T
PATIENCE = 3  # stop after this many T without a better simulated drop, when nothing is within budget yet
STANDARD_ERRORS = 1.0  # the budget must hold this many standard errors of the paired drop above the measured drop
FINETUNE_REACH = 3.0  # points: hybrid is tried where the best conversion misses the budget by at most this much (it
# closed 1.6 points on the residual net at T = 4 and 2.0 on the shipped CNN at T = 2, docs/benchmarks.md)
FINETUNE_TRIALS = 2  # at most this many fine-tunes per search


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
        correction_samples: Calibration samples the potential correction uses.
        energy: Energy per operation for the estimate.
        allow_finetune: Let the search also try ``hybrid``, which trains (never without this).
        finetune: The budget of each such fine-tune.
    """

    max_drop: float = 1.0
    objective: Objective = Objective.TIMESTEPS
    max_timesteps: int = 16
    validation_samples: int = 2000
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
        for name in ("max_timesteps", "validation_samples", "correction_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class Variant:
    """One method with its neuron options: a row family of the candidate table."""

    method: str
    per_channel: bool = False
    sin: SinCorrection = SinCorrection.NONE

    @property
    def label(self) -> str:
        parts = [self.method] + (["per-channel"] if self.per_channel else []) + (["signed"] if self.sin is SinCorrection.SIGNED else [])
        return " + ".join(parts)

    def settings(self, base: ConvertConfig, timesteps: int, correction_samples: int) -> MethodSettings:
        overrides = MethodOverrides(per_channel=self.per_channel, sin_correction=self.sin)
        return method_settings(self.method, base, target_timesteps=timesteps, correction_samples=correction_samples,
                               overrides=overrides)  # fmt: skip


@dataclass(frozen=True)
class AutoChoice:
    """The chosen conversion: its calibrated graph (corrections included), neuron settings, method and evidence."""

    calibrated: fx.GraphModule
    convert: ConvertConfig
    variant: Variant
    report: dict[str, Any]
    snn: SpikingNetwork | None = None  # the fine-tuned network when hybrid was chosen (a conversion is rebuilt from the rest)
    hybrid: dict[str, Any] | None = None  # what that fine-tune cost (workflows/hybrid.py's record)

    @property
    def timesteps(self) -> int:
        """The chosen T (the converted network's default simulation length)."""
        return self.convert.timesteps


def has_qcfs_sites(graph: fx.GraphModule) -> bool:
    """Whether the ANN's activations carry a learned clip (QCFS-trained), so the qcfs methods apply."""
    return any(hasattr(module, "learned_threshold") for module in graph.modules())


def variants_for(graph: fx.GraphModule) -> list[Variant]:
    """Every applicable variant: calibrated (per-layer/per-channel, with/without the signed neuron), burst, qcfs."""
    found = [Variant("calibrated", per_channel, sin) for per_channel in (False, True) for sin in (SinCorrection.NONE, SinCorrection.SIGNED)]
    if has_qcfs_sites(graph):
        found = [Variant("qcfs-calibrated"), Variant("qcfs-calibrated", sin=SinCorrection.SIGNED), Variant("qcfs"), *found]
    return [*found, Variant("burst")]


def _bits_per_step(convert_config: ConvertConfig) -> int:
    return max(1, math.ceil(math.log2(convert_config.max_spikes + 1)))


class _Search:
    """The state of one search: shared statistics, data, and the table of candidates."""

    def __init__(self, graph: fx.GraphModule, calibration, validation, base: ConvertConfig, config: AutoConfig,
                 extra: dict[str, Any]) -> None:  # fmt: skip
        self.graph, self.base, self.config, self.extra = graph, base, config, extra
        self.device = next(iter(graph.parameters()), torch.empty(0)).device  # convert --device put the graph there
        self.calibration_loader = BatchesOn(make_loader(calibration, batch_size=256, shuffle=False), self.device)
        self.validation = validation
        self.correction_samples = config.correction_samples
        self.statistics: dict[tuple, fx.GraphModule] = {}
        self.plans: dict[tuple, fx.GraphModule] = {}
        self.rows: list[dict[str, Any]] = []
        # read again for every candidate (one batch in memory at a time); only the labels are kept
        self.batches = BatchesOn(make_loader(validation, batch_size=256, shuffle=False), self.device)
        self.labels = torch.cat([y for _, y in self.batches])
        self.example = next(iter(self.batches))[0][:1]
        self.ann_correct = self._correct(graph, self._ann_batch(graph))
        self.ann_accuracy = 100.0 * float(self.ann_correct.float().mean())

    def _ann_batch(self, model: torch.nn.Module) -> int:
        """The validation batch an ANN-like ``model`` (the ANN, a rate code) may take within the working set."""
        with torch.inference_mode():
            cost = measure_batch_cost(model.eval(), self.example)
        room, source = resolve_budget(MemoryBudget(), self.device)
        return plan_batch(cost, wanted=256, room=min(room, WORKING_SET), source=source, what="scoring the validation split")

    def _correct(self, predict: Callable[[torch.Tensor], torch.Tensor], batch: int) -> torch.Tensor:
        """Which validation samples ``predict`` (logits or summed readout) classifies right, ``batch`` samples at a time;
        ties go to the lowest class."""
        with torch.inference_mode():
            found = [predict(x).argmax(dim=1) for x in rebatch((x for x, _ in self.batches), batch)]
        return torch.cat(found) == self.labels

    def _scored(self, right: torch.Tensor) -> dict[str, float]:
        """Accuracy, drop below the ANN, and the standard error of that paired drop (McNemar's discordant pairs)."""
        n = right.numel()
        lost = float((self.ann_correct & ~right).sum())
        gained = float((~self.ann_correct & right).sum())
        se = math.sqrt(max(lost + gained - (lost - gained) ** 2 / n, 0.0)) / n * 100.0
        accuracy = 100.0 * float(right.float().mean())
        return {"accuracy": round(accuracy, 2), "drop": round(self.ann_accuracy - accuracy, 2), "drop_se": round(se, 2)}

    def calibrated(self, settings: MethodSettings) -> fx.GraphModule:
        """The plan of ``settings``' rules, from statistics gathered once per observer family.

        Each plan shares the ANN's layers with its family's statistics and keeps no statistics itself
        (:func:`~spikeconv.calibration.sharing_layers`), so a plan per target T costs only the plan."""
        rule = settings.calibration.default.to_dict()
        family = (rule["kind"], rule.get("per_channel", False), rule.get("q"))
        if family not in self.statistics:
            self.statistics[family] = calibrate(prepare(self.graph, settings.calibration), self.calibration_loader,
                                                extra=self.extra, memory=MemoryBudget(limit=self._room()))  # fmt: skip
        key = (family, rule.get("timesteps"))
        if key not in self.plans:  # per-channel MMSE searches cost seconds; signed and plain variants share them
            planned = recalibrate(self.statistics[family], settings.calibration)
            self.plans[key] = sharing_layers(self.statistics[family], plan_of(planned), rules=planned.meta["spikeconv_rules"])
        return self.plans[key]

    def _room(self) -> int:
        """What a stage of the search may use: the budget, at most the working set."""
        return min(resolve_budget(MemoryBudget(), self.device)[0], WORKING_SET)

    def screen(self, variant: Variant, timesteps: int) -> dict[str, Any]:
        settings = variant.settings(self.base, timesteps, self.correction_samples)
        code = rate_code_ann(self.calibrated(settings), timesteps, settings.convert).to(self.device).eval()
        row = {"method": variant.method, "variant": variant.label, "timesteps": timesteps,
               "bits_per_step": _bits_per_step(settings.convert), **self._scored(self._correct(code, self._ann_batch(code))),
               "energy_uj": None, "how": "screened"}  # fmt: skip
        self.rows.append(row)
        return row

    def _converted(self, variant: Variant, timesteps: int) -> tuple[fx.GraphModule, ConvertConfig, SpikingNetwork]:
        settings = variant.settings(self.base, timesteps, self.correction_samples)
        calibrated = self.calibrated(settings)
        if settings.correction is not None:
            corrected = correct(calibrated, self.calibration_loader, settings.correction, settings.convert,
                                memory=MemoryBudget(limit=self._room()))  # fmt: skip
            calibrated = sharing_layers(calibrated, plan_of(corrected))  # the candidate keeps its plan, not a copy of the layers
        convert_config = replace(settings.convert, timesteps=timesteps)
        return calibrated, convert_config, convert(calibrated, convert_config).to(self.device).eval()

    def _measured(self, snn: SpikingNetwork, variant: Variant, timesteps: int, convert_config: ConvertConfig,
                  how: str) -> dict[str, Any]:  # fmt: skip
        plan = measure_simulation(snn, self.example, timesteps, wanted=256, memory=MemoryBudget(limit=self._room()))
        with count_operations(snn) as counter, time_chunk_set(snn, plan.chunk):
            right = self._correct(lambda x: snn(x, timesteps).sum(dim=0), plan.batch)
        totals = counter.result().totals(timesteps)
        row = {"method": variant.method, "variant": variant.label, "timesteps": timesteps,
               "bits_per_step": _bits_per_step(convert_config), **self._scored(right), "how": how,
               "energy_uj": round(self.config.energy.energy_pj(ac=totals["ac"], mac=totals["mac"]) / 1e6, 4),
               "spike_rate": round(float(totals["spike_rate"]), 4)}  # fmt: skip
        self.rows.append(row)
        return row

    def simulate(self, variant: Variant, timesteps: int) -> tuple[dict[str, Any], AutoChoice]:
        calibrated, convert_config, snn = self._converted(variant, timesteps)
        row = self._measured(snn, variant, timesteps, convert_config, "simulated")
        if convert_config.weight_bits is not None:  # --weight-bits: the same candidate with float weights, for comparison
            floats = convert(calibrated, replace(convert_config, weight_bits=None)).to(self.device).eval()
            plan = measure_simulation(floats, self.example, timesteps, wanted=256, memory=MemoryBudget(limit=self._room()))
            with time_chunk_set(floats, plan.chunk):
                right = self._correct(lambda x: floats(x, timesteps).sum(dim=0), plan.batch)
            row["float_accuracy"] = self._scored(right)["accuracy"]
        return row, AutoChoice(calibrated, convert_config, variant, {})

    def finetune(self, timesteps: int, train_data) -> tuple[dict[str, Any], AutoChoice]:
        """``hybrid`` at ``timesteps``: converted, fine-tuned on ``train_data``, scored on the validation split."""
        variant = Variant("hybrid")
        calibrated, convert_config, snn = self._converted(variant, timesteps)
        trained, record = finetune_converted(snn, train_data, timesteps=timesteps, budget=self.config.finetune)
        row = self._measured(trained.eval(), variant, timesteps, convert_config, "fine-tuned")
        row["train_seconds"] = record["seconds"]
        return row, AutoChoice(calibrated, convert_config, variant, {}, snn=trained, hybrid=record)


def _meets(row: dict[str, Any], config: AutoConfig) -> bool:
    """Within budget with one standard error to spare: the validation split is small and was seen in training."""
    return row["drop"] + STANDARD_ERRORS * row["drop_se"] <= config.max_drop


def _cost(row: dict[str, Any]) -> int:
    return int(row["timesteps"]) * int(row["bits_per_step"])


def _preference(row: dict[str, Any], config: AutoConfig) -> tuple:
    """How the objective ranks candidates within budget: smaller is better."""
    if config.objective is Objective.ENERGY:
        return (row["energy_uj"], _cost(row))
    return (_cost(row), row["energy_uj"])


def choose_conversion(graph: fx.GraphModule, calibration, validation, base: ConvertConfig, config: AutoConfig, *,
                      extra: dict[str, Any] | None = None, on_candidate: Callable[[dict[str, Any]], None] | None = None,
                      train_data=None) -> AutoChoice:  # fmt: skip
    """Search methods x T as the module docstring describes; return the choice with its evidence.

    Args:
        graph: The canonical ANN graph.
        calibration: Training samples for thresholds and corrections.
        validation: Other training samples, for the ANN's and every candidate's accuracy.
        base: The user's neuron settings (reset, v_init, encoding, max-pool mode).
        config: Budget, objective and bounds.
        extra: Facts recorded in the threshold plan (data set, split, seed).
        on_candidate: Called with each table row as it is measured (for a live log).
        train_data: Labelled training samples outside ``validation`` for the fine-tunes of
            ``config.allow_finetune`` (required then, unused otherwise).

    Raises:
        ConfigError: ``allow_finetune`` without ``train_data``.
    """
    if config.allow_finetune and train_data is None:
        raise ConfigError("allow_finetune trains hybrid candidates: pass train_data (labelled samples outside the validation split)")
    search = _Search(graph, calibration, validation, base, config, dict(extra or {}))
    if config.allow_finetune and base.target is not None:
        raise ConfigError(f"--allow-finetune trains hybrid's thresholds, which --target {base.target.name} folds into the weights; "
                          "drop one of them")  # fmt: skip
    variants = [v for v in variants_for(graph) if base.target is None or allowed_for_target(v.method, v.sin, base.target)]
    simulated: list[tuple[dict[str, Any], AutoChoice]] = []
    best_cost, best_drop, stalled = None, math.inf, 0
    for timesteps in range(1, config.max_timesteps + 1):
        screened = []
        for variant in variants:
            if best_cost is not None and timesteps * _bits_per_step(variant.settings(base, timesteps, 1).convert) > best_cost:
                continue
            row = search.screen(variant, timesteps)
            screened.append((row, variant))
            if on_candidate is not None:
                on_candidate(row)
        screened.sort(key=lambda item: (-item[0]["accuracy"], _cost(item[0])))
        promising = [v for row, v in screened if row["drop"] <= config.max_drop + SCREEN_MARGIN][:SIMULATED_PER_T]
        for variant in promising:
            row, choice = search.simulate(variant, timesteps)
            simulated.append((row, choice))
            if on_candidate is not None:
                on_candidate(row)
        drops = [row["drop"] + STANDARD_ERRORS * row["drop_se"] for row, _ in simulated if row["timesteps"] == timesteps]
        stalled = 0 if drops and min(drops) < best_drop - 0.05 else stalled + 1
        best_drop = min([best_drop, *drops])
        within = [item for item in simulated if _meets(item[0], config)]
        if not within and simulated and stalled >= PATIENCE:  # the budget is out of reach: more steps stopped helping
            break
        if within and best_cost is None:
            cheapest = min(_cost(row) for row, _ in within)  # a multi-spike candidate may cost more than this T
            best_cost = cheapest if config.objective is Objective.TIMESTEPS else 2 * cheapest  # energy: look further, not forever
        if best_cost is not None and timesteps >= best_cost:
            break
    choice = _decide(search, simulated, variants, config)
    if not config.allow_finetune:
        return replace(choice, report={**choice.report, "finetune": {"allowed": False}})
    return _consider_hybrid(search, choice, config, train_data, on_candidate)


def _hybrid_steps(search: _Search, choice: AutoChoice, config: AutoConfig) -> list[int]:
    """Where a fine-tune may pay: below the chosen cost in binary-equivalent steps (at the chosen T when nothing met the
    budget), near enough the budget, largest T first."""
    chosen = choice.report["chosen"]
    top = min(_cost(chosen) - 1, config.max_timesteps) if choice.report["met_budget"] else int(chosen["timesteps"])
    best: dict[int, float] = {}
    for row in search.rows:
        best[int(row["timesteps"])] = min(best.get(int(row["timesteps"]), math.inf), float(row["drop"]))
    return [t for t in range(top, 0, -1) if best.get(t, math.inf) <= config.max_drop + FINETUNE_REACH]


def _consider_hybrid(search: _Search, choice: AutoChoice, config: AutoConfig, train_data,
                     on_candidate: Callable[[dict[str, Any]], None] | None) -> AutoChoice:  # fmt: skip
    """Fine-tune hybrid where :func:`_hybrid_steps` says, keep the smallest T that meets the budget (else the closest)."""
    trials: list[tuple[dict[str, Any], AutoChoice]] = []
    for timesteps in _hybrid_steps(search, choice, config)[:FINETUNE_TRIALS]:
        trials.append(search.finetune(timesteps, train_data))
        if on_candidate is not None:
            on_candidate(trials[-1][0])
        if not _meets(trials[-1][0], config):
            break
    report = {**choice.report, "candidates": list(search.rows), "simulated": sum(r["how"] != "screened" for r in search.rows),
              "finetune": {"allowed": True, "budget": config.finetune.to_dict(), "trained": len(trials),
                           "seconds": round(sum(row["train_seconds"] for row, _ in trials), 1)}}  # fmt: skip
    within = [item for item in trials if _meets(item[0], config)]
    best = min(within, key=lambda item: _preference(item[0], config)) if within else None
    conversion_wins = best is not None and choice.report["met_budget"] and (
        _preference(choice.report["chosen"], config) <= _preference(best[0], config))  # fmt: skip
    if best is not None and not conversion_wins:
        row, picked = best
    elif not choice.report["met_budget"] and trials and min(r["drop"] for r, _ in trials) < choice.report["chosen"]["drop"]:
        row, picked = min(trials, key=lambda item: item[0]["drop"])
    else:
        return replace(choice, report=report)
    return replace(picked, report={**report, "chosen": dict(row), "met_budget": bool(within)})


def _decide(search: _Search, simulated, variants, config: AutoConfig) -> AutoChoice:
    if not simulated:  # nothing was promising: simulate the best-screened candidate at the largest T
        best = max((row for row in search.rows), key=lambda row: row["accuracy"])
        variant = next(v for v in variants if v.label == best["variant"])
        simulated = [search.simulate(variant, int(best["timesteps"]))]
    within = [item for item in simulated if _meets(item[0], config)]
    if within:
        row, choice = min(within, key=lambda item: _preference(item[0], config))
    else:
        row, choice = min(simulated, key=lambda item: (item[0]["drop"], _cost(item[0])))
    report = {
        "objective": config.objective.value, "max_drop": config.max_drop, "max_timesteps": config.max_timesteps,
        "met_budget": bool(within), "validation": {"samples": len(search.validation), "ann_accuracy": round(search.ann_accuracy, 2)},
        "chosen": dict(row), "screened": sum(r["how"] == "screened" for r in search.rows),
        "simulated": sum(r["how"] == "simulated" for r in search.rows), "candidates": list(search.rows),
        "energy_model": config.energy.to_dict(),
    }  # fmt: skip
    return replace(choice, report=report)
