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
   on the validation split, counting operations for the energy estimate. A variant simulated before
   is ranked by its rate-code drop (:func:`_level`) plus the timing gap its last simulation showed (:func:`_predicted_drop`),
   so a neuron whose spikes fall far behind its rate code is not simulated again at every T; with the
   ``timesteps`` objective a runner-up is simulated only within ``RUNNER_UP_MARGIN`` of the best prediction.
3. A candidate is within budget when its drop plus one standard error of that paired drop
   (from the samples the ANN and the SNN disagree on) is at most ``max_drop``, and so is the drop the
   ANN's own calibrated confidence expects (:mod:`spikeconv.search.expected_drop`) plus its standard
   error: the counted drop rests on the few samples whose class the SNN changes, and on labels the ANN
   was trained on, so it can read low (on the shipped CNN a validation drop of 0.40 ± 0.36 at T = 3 was a
   test-set drop of 1.00; on a 20-epoch ViT 0.40 ± 0.40 at T = 6 was 1.15, where the expected drop read
   0.97 ± 0.14). Search rows are scored on ``search_samples``; a candidate worth it is confirmed on more
   held-out samples (:func:`_confirm_best`), and only a confirmed one is chosen.
   ``timesteps`` objective: the smallest T at which a simulated candidate is within budget; ties
   go to the least estimated energy. ``energy`` objective: the least energy among all simulated
   candidates within budget. If none is (the search stops early once three more T in a row did
   not lower the best drop), the candidate with the smallest such bound is kept and the report says so.

Multi-spike neurons (``burst``, Γ = 2) carry more than one bit per step, so they are ranked by
binary-equivalent steps, T·⌈log2(Γ + 1)⌉, not by T alone.

4. Only with ``allow_finetune`` (``--allow-finetune``) does the search train: after the conversion
   search, ``hybrid`` (a conversion fine-tuned at T, :mod:`spikeconv.training.snn.finetune`) is tried
   below the chosen T in binary-equivalent steps (up to ``max_timesteps`` when nothing met the budget), from the
   largest such T down, at the T whose best conversion is within ``FINETUNE_REACH`` points of the budget,
   at most ``FINETUNE_TRIALS`` fine-tunes, stopping at the first that misses the budget. Each starts from
   the variant of the best simulated candidate at its T or the nearest below (:func:`_hybrid_start`;
   per-channel thresholds and signed neurons included, burst and bistable neurons cannot be trained) and
   is labelled so, e.g. ``hybrid (calibrated + per-channel + signed)``. Each is trained on training
   samples outside the validation split and scored on that split like any candidate; the smallest T that
   meets the budget wins. The report records every fine-tune and its wall time.
   Without it nothing is ever trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from torch import fx

from spikeconv.convert import ConvertConfig
from spikeconv.convert.for_target import allowed_for_target
from spikeconv.errors import ConfigError
from spikeconv.search.candidates import Candidates
from spikeconv.search.config import AutoConfig, Objective
from spikeconv.search.variants import AutoChoice, Variant, bits_per_step, variants_for

SCREEN_MARGIN = 2.0  # points: a rate-code prediction this far outside the budget is not simulated
SIMULATED_PER_T = 2  # at most this many variants are simulated at each T
RUNNER_UP_MARGIN = 1.0  # points: with the timesteps objective, a variant predicted this much below the best is not
# simulated beside it (gap-corrected predictions erred by at most 0.8 points on MobileNetV2 and the residual net)
PATIENCE = 3  # stop after this many T without a better simulated drop, when nothing is within budget yet
STANDARD_ERRORS = 1.0  # the budget must hold this many standard errors of the paired drop above the measured drop
EARLY_STANDARD_ERRORS = 2.0  # a confirmation stops before the last held-out samples only with this many to spare
FINETUNE_REACH = 3.0  # points: hybrid is tried where the best conversion misses the budget by at most this much (it
# closed 1.6 points on the residual net at T = 4 and 2.0 on the shipped CNN at T = 2, docs/benchmarks.md)
FINETUNE_TRIALS = 2  # at most this many fine-tunes per search


def _level(row: dict[str, Any]) -> float:
    """A candidate's drop as the search ranks it: the larger of the counted and the expected drop."""
    return max(float(row["drop"]), float(row["expected_drop"]))


def _bound(row: dict[str, Any], standard_errors: float = STANDARD_ERRORS) -> float:
    """The larger of the counted and the expected drop, each with ``standard_errors`` standard errors added: the counted
    drop alone is noisy and can read low on training samples (:mod:`spikeconv.search.expected_drop`)."""
    return max(row["drop"] + standard_errors * row["drop_se"], row["expected_drop"] + standard_errors * row["expected_se"])


def _meets(row: dict[str, Any], config: AutoConfig) -> bool:
    """Within budget by :func:`_bound`."""
    return _bound(row) <= config.max_drop


def _final(row: dict[str, Any], search: Candidates) -> bool:
    """Whether ``row`` may be chosen: confirmed, or scored on every held-out sample (there were no others)."""
    return row["how"] == "confirmed" or not search.stages


def _settled(row: dict[str, Any], config: AutoConfig) -> bool:
    """Whether a confirmation can stop at ``row``'s samples: it misses the budget, or meets it with
    ``EARLY_STANDARD_ERRORS`` standard errors to spare (the rest would not change the verdict)."""
    return not _meets(row, config) or _bound(row, EARLY_STANDARD_ERRORS) <= config.max_drop


def _worth_confirming(row: dict[str, Any], config: AutoConfig) -> bool:
    """Whether a row scored on the search samples only may meet the budget once more samples are read: its expected drop
    with one standard error, and its counted drop itself, are within budget. The counted drop's standard error on 2,000
    samples (0.3-0.5 points) is left to the confirmation, which shrinks it: required here, it kept the 6-epoch ViT from
    confirming anything below T = 11, where T = 8 held on 5,000 samples."""
    return row["expected_drop"] + STANDARD_ERRORS * row["expected_se"] <= config.max_drop and row["drop"] <= config.max_drop


def _confirm_best(search: Candidates, simulated: list[tuple[dict[str, Any], AutoChoice]], latest: int, config: AutoConfig,
                  on_candidate: Callable[[dict[str, Any]], None] | None) -> None:  # fmt: skip
    """Confirm the latest ``latest`` simulations worth it (:func:`_worth_confirming`; within budget, when there are no
    other samples), most preferred first, on more held-out samples (:func:`_settled` says how many), until one holds;
    each confirmed row replaces its search row in ``simulated``."""
    first = len(simulated) - latest
    worth = _worth_confirming if search.stages else _meets
    passing = sorted((i for i in range(first, len(simulated)) if worth(simulated[i][0], config)),
                     key=lambda i: _preference(simulated[i][0], config))  # fmt: skip
    for i in passing:
        simulated[i] = search.confirm(*simulated[i], settled=lambda row: _settled(row, config))
        if on_candidate is not None and _final(simulated[i][0], search):
            on_candidate(simulated[i][0])
        if _meets(simulated[i][0], config):
            return


def _predicted_drop(row: dict[str, Any], gap: tuple[int, float] | None) -> float:
    """The simulated drop a screened row predicts: its rate-code drop plus the variant's last measured timing gap
    (simulated − screened drop at T'), scaled by T'/T as timing errors shrink with the steps (0 before any simulation).

    The rate code cannot tell a signed from a plain neuron, or see what the initial potential does; the gap can: on a
    MobileNetV2 the plain per-channel neuron simulated 15-27 points below its rate code at every T, the signed one
    within 2, so only the signed one is simulated after the first T. A variant never simulated borrows the most
    favourable gap measured so far, and goes first on a tie: with its own gap unknown, 0 would rank it behind twins whose
    simulations beat their rate codes, and it would never be tried (the residual net's per-channel signed neuron: the
    search ended at T = 9 instead of 7)."""
    if gap is None:
        return _level(row)
    measured_at, difference = gap
    return _level(row) + difference * measured_at / int(row["timesteps"])


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
    search = Candidates(graph, calibration, validation, base, config, dict(extra or {}))
    if config.allow_finetune and base.target is not None:
        raise ConfigError(f"--allow-finetune trains hybrid's thresholds, which --target {base.target.name} folds into the weights; "
                          "drop one of them")  # fmt: skip
    variants = [v for v in variants_for(graph) if base.target is None or allowed_for_target(v.method, v.sin, base.target)]
    simulated: list[tuple[dict[str, Any], AutoChoice]] = []
    best_cost, best_drop, stalled = None, math.inf, 0
    gaps: dict[str, tuple[int, float]] = {}  # variant -> (T, simulated − screened drop) at its last simulation
    for timesteps in range(1, config.max_timesteps + 1):
        screened = []
        for variant in variants:
            if best_cost is not None and timesteps * bits_per_step(variant.settings(base, timesteps, 1).convert) > best_cost:
                continue
            row = search.screen(variant, timesteps)
            screened.append((row, variant))
            if on_candidate is not None:
                on_candidate(row)
        screened.sort(key=lambda item: (-item[0]["accuracy"], _cost(item[0])))
        untried = min(gaps.values(), key=lambda gap: gap[0] * gap[1], default=None)  # optimistic for the never simulated
        predicted = sorted((_predicted_drop(row, gaps.get(v.label, untried)), _cost(row), v.label in gaps, i)
                           for i, (row, v) in enumerate(screened))  # fmt: skip
        limit = config.max_drop + SCREEN_MARGIN
        if config.objective is Objective.TIMESTEPS and predicted:  # a runner-up only where it may still win
            limit = min(limit, predicted[0][0] + RUNNER_UP_MARGIN)
        picked = [i for drop, _, _, i in predicted if drop <= limit][:SIMULATED_PER_T]
        promising = [screened[i][1] for i in sorted(picked)]  # simulated in screened order
        for variant in promising:
            row, choice = search.simulate(variant, timesteps)
            simulated.append((row, choice))
            screened_drop = next(_level(r) for r, v in screened if v is variant)
            gaps[variant.label] = (timesteps, _level(row) - screened_drop)
            if on_candidate is not None:
                on_candidate(row)
        _confirm_best(search, simulated, len(promising), config, on_candidate)
        drops = [_bound(row) for row, _ in simulated if row["timesteps"] == timesteps]
        drops = drops or [drop for drop, *_ in predicted]  # nothing simulated at this T: do more steps still promise more?
        stalled = 0 if drops and min(drops) < best_drop - 0.05 else stalled + 1
        best_drop = min([best_drop, *drops])
        within = [item for item in simulated if _final(item[0], search) and _meets(item[0], config)]
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
    return _consider_hybrid(search, choice, config, train_data, on_candidate, starts=_finetunable(simulated, base))


def _hybrid_steps(search: Candidates, choice: AutoChoice, config: AutoConfig) -> list[int]:
    """Where a fine-tune may pay: below the chosen cost in binary-equivalent steps (up to ``max_timesteps`` when nothing
    met the budget: the largest T allowed starts from the best conversion and trains with the most steps, where the
    closest conversion kept may lie several steps lower), near enough the budget, largest T first."""
    chosen = choice.report["chosen"]
    top = min(_cost(chosen) - 1, config.max_timesteps) if choice.report["met_budget"] else config.max_timesteps
    best: dict[int, float] = {}
    for row in search.rows:
        best[int(row["timesteps"])] = min(best.get(int(row["timesteps"]), math.inf), _level(row))
    return [t for t in range(top, 0, -1) if best.get(t, math.inf) <= config.max_drop + FINETUNE_REACH]


def _finetunable(simulated: list[tuple[dict[str, Any], AutoChoice]], base: ConvertConfig) -> list[tuple[dict[str, Any], Variant]]:
    """The simulated rows whose neurons hybrid can train (not burst or bistable), with their variants."""
    return [(row, choice.variant) for row, choice in simulated if choice.variant.can_finetune(base)]


def _hybrid_start(starts: list[tuple[dict[str, Any], Variant]], timesteps: int) -> Variant:
    """What hybrid fine-tunes at ``timesteps``: the variant of the best simulated row at the nearest T at or below it
    (above when none is), else hybrid's own recipe (per-layer calibrated, plain IF).

    On a MobileNetV2 the plain neuron simulated 15-67 points below its rate code and the per-channel signed one within
    about 1.5 at T = 8: a fine-tune from the fixed plain recipe started far behind the best conversion."""
    if not starts:
        return Variant("calibrated")

    def nearest(item: tuple[dict[str, Any], Variant]) -> tuple:
        at = int(item[0]["timesteps"])
        return (at > timesteps, abs(at - timesteps), _level(item[0]))

    return min(starts, key=nearest)[1]


def _consider_hybrid(search: Candidates, choice: AutoChoice, config: AutoConfig, train_data,
                     on_candidate: Callable[[dict[str, Any]], None] | None,
                     starts: list[tuple[dict[str, Any], Variant]]) -> AutoChoice:  # fmt: skip
    """Fine-tune hybrid where :func:`_hybrid_steps` says, from :func:`_hybrid_start`'s variant; keep the smallest T that
    meets the budget (else the closest)."""
    trials: list[tuple[dict[str, Any], AutoChoice]] = []
    for timesteps in _hybrid_steps(search, choice, config)[:FINETUNE_TRIALS]:
        trials.append(search.finetune(timesteps, train_data, _hybrid_start(starts, timesteps)))
        if on_candidate is not None:
            on_candidate(trials[-1][0])
        _confirm_best(search, trials, 1, config, on_candidate)
        if not _meets(trials[-1][0], config):
            break
    report = {**choice.report, "candidates": list(search.rows),
              "simulated": sum(r["how"] not in ("screened", "confirmed") for r in search.rows),
              "confirmed": sum(r["how"] == "confirmed" for r in search.rows),
              "finetune": {"allowed": True, "budget": config.finetune.to_dict(), "trained": len(trials),
                           "seconds": round(sum(row["train_seconds"] for row, _ in trials), 1)}}  # fmt: skip
    within = [item for item in trials if _final(item[0], search) and _meets(item[0], config)]
    best = min(within, key=lambda item: _preference(item[0], config)) if within else None
    conversion_wins = best is not None and choice.report["met_budget"] and (
        _preference(choice.report["chosen"], config) <= _preference(best[0], config))  # fmt: skip
    if best is not None and not conversion_wins:
        row, picked = best
    elif not choice.report["met_budget"] and trials and min(_bound(r) for r, _ in trials) < _bound(choice.report["chosen"]):
        row, picked = min(trials, key=lambda item: _bound(item[0]))
    else:
        return replace(choice, report=report)
    return replace(picked, report={**report, "chosen": dict(row), "met_budget": bool(within)})


def _decide(search: Candidates, simulated, variants, config: AutoConfig) -> AutoChoice:
    if not simulated:  # nothing was promising: simulate the best-screened candidate at the largest T
        best = max((row for row in search.rows), key=lambda row: row["accuracy"])
        variant = next(v for v in variants if v.label == best["variant"])
        simulated = [search.simulate(variant, int(best["timesteps"]))]
        _confirm_best(search, simulated, 1, config, None)  # chosen only if confirmed, like any other
    within = [item for item in simulated if _final(item[0], search) and _meets(item[0], config)]
    if within:
        row, choice = min(within, key=lambda item: _preference(item[0], config))
    else:
        row, choice = min(simulated, key=lambda item: (_bound(item[0]), _cost(item[0])))
    report = {
        "objective": config.objective.value, "max_drop": config.max_drop, "max_timesteps": config.max_timesteps,
        "met_budget": bool(within), "validation": search.validation_record(),
        "chosen": dict(row), "screened": sum(r["how"] == "screened" for r in search.rows),
        "simulated": sum(r["how"] == "simulated" for r in search.rows),
        "confirmed": sum(r["how"] == "confirmed" for r in search.rows), "candidates": list(search.rows),
        "energy_model": config.energy.to_dict(),
    }  # fmt: skip
    return replace(choice, report=report)
