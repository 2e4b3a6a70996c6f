"""`--method auto`: shared statistics, the validation split, the search's choice and its record (digits)."""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.calibration import CalibrationConfig, MseThreshold, PercentileThreshold, calibrate, plan_of, prepare, recalibrate
from spikeconv.cli import main
from spikeconv.convert import ConvertConfig, convert
from spikeconv.data import Split, calibration_indices, calibration_subset, load_dataset, make_loader
from spikeconv.errors import CalibrationError
from spikeconv.files import load_ann, load_snn
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model
from spikeconv.search import AutoConfig, Objective, choose_conversion, validation_split
from spikeconv.search.expected_drop import ExpectedDrop

DIGITS = ["--dataset", "digits"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits CNN trained once by the CLI (about 5 s); tests only read it."""
    ckpt = tmp_path_factory.mktemp("auto") / "ann.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "4", "--seed", "0", "--out", str(ckpt)]) == 0
    return ckpt


@pytest.fixture(scope="module")
def train_data():
    return load_dataset("digits", split=Split.TRAIN)


def _graph(trained):
    return ingest_module(load_ann(trained).model)


@pytest.mark.parametrize("per_channel", [False, True])
def test_recalibrate_equals_calibrating_afresh(trained, train_data, per_channel):
    graph, loader = _graph(trained), make_loader(calibration_subset(train_data, num_samples=300), batch_size=128, shuffle=False)
    first = calibrate(prepare(graph, CalibrationConfig(default=MseThreshold(timesteps=2, per_channel=per_channel))), loader)
    target = CalibrationConfig(default=MseThreshold(timesteps=5, per_channel=per_channel))
    fresh = plan_of(calibrate(prepare(graph, target), loader))
    shared = plan_of(recalibrate(first, target))
    assert shared.thresholds == fresh.thresholds and dict(shared.rules) == dict(fresh.rules)
    assert shared.thresholds != plan_of(first).thresholds  # T matters, so the test can fail


def test_recalibrate_refuses_other_statistics(trained, train_data):
    loader = make_loader(calibration_subset(train_data, num_samples=64), batch_size=64, shuffle=False)
    mse = calibrate(prepare(_graph(trained), CalibrationConfig(default=MseThreshold(timesteps=2))), loader)
    with pytest.raises(CalibrationError, match="other statistics"):
        recalibrate(mse, CalibrationConfig(default=MseThreshold(timesteps=2, per_channel=True)))
    with pytest.raises(CalibrationError, match="other statistics"):
        recalibrate(mse, CalibrationConfig(default=PercentileThreshold(q=99.0)))


def test_validation_split_is_disjoint_from_calibration_and_deterministic(train_data):
    calib = set(calibration_indices(len(train_data), num_samples=500, seed=3).tolist())
    one = validation_split(train_data, calibration_samples=500, calibration_seed=3, samples=400)
    two = validation_split(train_data, calibration_samples=500, calibration_seed=3, samples=400)
    x1, y1 = one.as_tensors()
    assert len(one) == 400 and torch.equal(x1, two.as_tensors()[0]) and torch.equal(y1, two.as_tensors()[1])
    images = {tuple(train_data[i][0].flatten().tolist()) for i in calib}
    assert not any(tuple(x.flatten().tolist()) in images for x in x1)


def _search(trained, train_data, **options):
    graph = _graph(trained)
    calib = calibration_subset(train_data, num_samples=400, seed=0)
    val = validation_split(train_data, calibration_samples=400, calibration_seed=0, samples=600)
    return choose_conversion(graph, calib, val, ConvertConfig(), AutoConfig(correction_samples=128, **options)), val


def _within(row: dict, max_drop: float) -> bool:
    """Auto's budget test, written out: the counted and the expected drop, each with one standard error added."""
    return row["drop"] + row["drop_se"] <= max_drop and row["expected_drop"] + row["expected_se"] <= max_drop


def test_choice_is_the_smallest_t_within_budget_and_its_numbers_reproduce(trained, train_data):
    choice, val = _search(trained, train_data, max_drop=1.5, max_timesteps=8)
    report = choice.report
    chosen, rows = report["chosen"], report["candidates"]
    assert report["met_budget"] and _within(chosen, 1.5)
    simulated = [r for r in rows if r["how"] == "simulated"]
    assert chosen in simulated and report["screened"] + report["simulated"] == len(rows)
    cost = chosen["timesteps"] * chosen["bits_per_step"]
    assert not [r for r in simulated if r["timesteps"] * r["bits_per_step"] < cost and _within(r, 1.5)]
    snn = convert(choice.calibrated, choice.convert).eval()
    assert snn.timesteps == chosen["timesteps"] == choice.timesteps
    x, y = val.as_tensors()
    with torch.no_grad():
        predicted = snn(x, choice.timesteps).sum(0).argmax(1)
        ann_outputs = _graph(trained)(x)
    assert 100.0 * float((predicted == y).float().mean()) == pytest.approx(chosen["accuracy"], abs=0.01)
    expected = ExpectedDrop(ann_outputs, y).score(predicted)  # the ANN's calibrated confidence, fitted on the split
    assert expected == pytest.approx({k: chosen[k] for k in expected}, abs=0.011)


def test_a_choice_is_confirmed_on_more_held_out_samples_and_its_numbers_reproduce_there(trained, train_data):
    from spikeconv.search.choose import EARLY_STANDARD_ERRORS, _bound
    from spikeconv.search.splits import search_and_confirmation

    choice, val = _search(trained, train_data, max_drop=1.5, max_timesteps=8, search_samples=200)
    report, chosen = choice.report, choice.report["chosen"]
    assert report["validation"]["samples"] == 600 and report["validation"]["search_samples"] == 200
    assert report["validation"]["confirmation_stages"] == [500, 600]  # 1.5 times the search samples again, then the rest
    assert {r["samples"] for r in report["candidates"] if r["how"] in ("screened", "simulated")} == {200}
    assert report["met_budget"] and chosen["how"] == "confirmed" and _within(chosen, 1.5)
    assert chosen["samples"] == 600 or _bound(chosen, EARLY_STANDARD_ERRORS) <= 1.5  # stopped early only with margin
    searched = next(r for r in report["candidates"] if r["how"] == "simulated" and r["variant"] == chosen["variant"]
                    and r["timesteps"] == chosen["timesteps"])  # fmt: skip
    # confirmed because on the search samples its expected drop with one standard error, and its counted drop, were within
    assert searched["expected_drop"] + searched["expected_se"] <= 1.5 and searched["drop"] <= 1.5
    first, stages = search_and_confirmation(val, 200)
    x, y = (torch.cat(parts) for parts in zip(*(part.as_tensors() for part in (first, *stages)), strict=True))
    x, y = x[: chosen["samples"]], y[: chosen["samples"]]
    with torch.no_grad():
        predicted = convert(choice.calibrated, choice.convert).eval()(x, choice.timesteps).sum(0).argmax(1)
    assert 100.0 * float((predicted == y).float().mean()) == pytest.approx(chosen["accuracy"], abs=0.01)


def test_a_tighter_budget_never_picks_fewer_steps(trained, train_data):
    loose, _ = _search(trained, train_data, max_drop=3.0, max_timesteps=8)
    tight, _ = _search(trained, train_data, max_drop=0.3, max_timesteps=8)
    assert tight.timesteps >= loose.timesteps
    if not tight.report["met_budget"]:  # nothing within 0.3: the closest candidate is kept and said so
        def bound(r):
            return max(r["drop"] + r["drop_se"], r["expected_drop"] + r["expected_se"])

        best = min(bound(r) for r in tight.report["candidates"] if r["how"] == "simulated")
        assert bound(tight.report["chosen"]) == best


def test_energy_objective_picks_the_least_energy_within_budget(trained, train_data):
    choice, _ = _search(trained, train_data, max_drop=2.0, max_timesteps=6, objective=Objective.ENERGY)
    within = [r for r in choice.report["candidates"] if r["how"] == "simulated" and _within(r, 2.0)]
    assert choice.report["chosen"]["energy_uj"] == min(r["energy_uj"] for r in within)


def test_qcfs_anns_get_the_qcfs_methods():
    from spikeconv.models.activations import ActivationKind, ActivationSpec, apply_activation_
    from spikeconv.search import variants_for

    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10)
    assert "qcfs" not in {v.method for v in variants_for(ingest_module(model))}
    apply_activation_(model, ActivationSpec(kind=ActivationKind.QCFS, levels=4))
    assert {"qcfs", "qcfs-calibrated"} <= {v.method for v in variants_for(ingest_module(model))}


def test_cli_default_is_auto_and_the_file_records_the_choice(trained, tmp_path, capsys):
    snn = tmp_path / "auto.snn.pt"
    assert main(["convert", str(trained), *DIGITS, "--out", str(snn), "--max-timesteps", "6"]) == 0
    out = capsys.readouterr().out
    assert "| method | T |" in out and "\nauto: " in out and "with method auto (" in out
    loaded = load_snn(snn)
    auto = loaded.info["auto"]
    assert loaded.info["method"] == auto["chosen"]["method"] and loaded.snn.timesteps == auto["chosen"]["timesteps"]
    assert auto["validation"]["samples"] > 0 and auto["candidates"]
    assert main(["info", str(snn), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["method"] == auto["chosen"]["method"] and described["timesteps"] == auto["chosen"]["timesteps"]


@pytest.mark.parametrize("flag", [["--per-channel"], ["--target-timesteps", "4"], ["--sin-correction", "signed"]])
def test_cli_refuses_method_flags_with_auto(trained, tmp_path, capsys, flag):
    out = tmp_path / "x.snn.pt"
    assert main(["convert", str(trained), *DIGITS, "--out", str(out), *flag]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--method auto chooses" in err and not out.exists()


class _ScriptedCandidates:
    """A search whose rate codes lose 24/T points and whose simulations add a fixed timing gap per variant."""

    GAPS = {"calibrated + per-channel": 20.0, "calibrated + per-channel + signed": -0.5, "calibrated + signed": 0.0}
    OFFSETS = {"calibrated + signed": 1.5}  # a rate code 1.5 points below the others at every T

    def __init__(self, *args, **kwargs) -> None:
        self.rows, self.held_out, self.ann_accuracy, self.calls = [], 2000, 90.0, []

    def _row(self, variant, timesteps: int, drop: float, how: str) -> dict:
        return {"method": variant.method, "variant": variant.label, "timesteps": timesteps, "bits_per_step": 1,
                "accuracy": 90.0 - drop, "drop": round(drop, 2), "drop_se": 0.0, "expected_drop": round(drop, 2), "expected_se": 0.0,
                "energy_uj": float(timesteps), "how": how, "samples": 2000}  # fmt: skip

    def screen(self, variant, timesteps: int) -> dict:
        self.rows.append(self._row(variant, timesteps, 24.0 / timesteps + self.OFFSETS.get(variant.label, 0.0), "screened"))
        return self.rows[-1]

    def simulate(self, variant, timesteps: int):
        from spikeconv.search.variants import AutoChoice

        self.calls.append((variant.label, timesteps))
        drop = 24.0 / timesteps + self.OFFSETS.get(variant.label, 0.0) + self.GAPS[variant.label]
        self.rows.append(self._row(variant, timesteps, drop, "simulated"))
        return self.rows[-1], AutoChoice(None, ConvertConfig(timesteps=timesteps), variant, {})

    stages = []  # every held-out sample is a search sample

    def confirm(self, row, choice, settled):
        return row, choice

    def validation_record(self) -> dict:
        return {"samples": self.held_out, "search_samples": self.held_out, "ann_accuracy": 90.0}


def test_a_neuron_whose_spikes_fall_far_behind_its_rate_code_is_not_simulated_again(monkeypatch):
    """The rate code cannot see a plain neuron's timing loss; its first simulation can, and the search
    then spends its simulations on the variant that can meet the budget, without stopping early."""
    from spikeconv.neurons import SinCorrection
    from spikeconv.search import choose
    from spikeconv.search.variants import Variant

    variants = [
        Variant("calibrated", True),
        Variant("calibrated", True, SinCorrection.SIGNED),
        Variant("calibrated", False, SinCorrection.SIGNED),
    ]
    made = []
    monkeypatch.setattr(choose, "Candidates", lambda *a, **k: made.append(_ScriptedCandidates()) or made[-1])
    monkeypatch.setattr(choose, "variants_for", lambda graph: variants)
    choice = choose.choose_conversion(None, None, None, ConvertConfig(), AutoConfig(max_drop=1.0, max_timesteps=20))
    calls = made[0].calls
    first = 8  # the first T whose rate code is within the screening margin (24/8 = 3 points)
    assert [t for label, t in calls if label == variants[0].label] == [first]  # one simulation showed its 20-point gap
    assert [t for label, t in calls if label == variants[1].label] == list(range(first, 17))
    assert not [t for label, t in calls if label == variants[2].label]  # predicted 1.5 points behind: never beside the best
    assert choice.report["met_budget"] and choice.timesteps == 16 and choice.variant == variants[1]  # 24/16 - 0.5 = 1.0


def test_a_candidate_within_budget_on_the_search_samples_is_chosen_only_once_all_held_out_samples_confirm_it(monkeypatch):
    """The search samples said T = 10 and 11 were within 2 points; the other 3,000 held-out samples add a point below
    T = 12. Each passing candidate is confirmed (one per T), the failed confirmations are not chosen, and the choice is
    the first T whose confirmation holds, recorded with all 5,000 samples."""
    from spikeconv.neurons import SinCorrection
    from spikeconv.search import choose, format_choice
    from spikeconv.search.variants import Variant

    class Confirming(_ScriptedCandidates):
        def __init__(self) -> None:
            super().__init__()
            self.held_out = 5000

        stages = [range(3000)]

        def confirm(self, row, choice, settled):
            self.calls.append(("confirm", row["variant"], row["timesteps"]))
            worse = 1.0 if row["timesteps"] < 12 else 0.0
            self.rows.append({**row, "drop": row["drop"] + worse, "expected_drop": row["expected_drop"] + worse,
                              "samples": 5000, "how": "confirmed"})  # fmt: skip
            return self.rows[-1], choice

        def validation_record(self) -> dict:
            return {"samples": 5000, "search_samples": 2000, "ann_accuracy": 90.0, "search_ann_accuracy": 90.0}

    signed = Variant("calibrated", True, SinCorrection.SIGNED)
    made = []
    monkeypatch.setattr(choose, "Candidates", lambda *a, **k: made.append(Confirming()) or made[-1])
    monkeypatch.setattr(choose, "variants_for", lambda graph: [Variant("calibrated", True), signed])
    choice = choose.choose_conversion(None, None, None, ConvertConfig(), AutoConfig(max_drop=2.0, max_timesteps=20))
    confirms = [call for call in made[0].calls if call[0] == "confirm"]
    assert confirms == [("confirm", signed.label, t) for t in (10, 11, 12)]  # 24/10 - 0.5 = 1.9: the first within 2
    chosen = choice.report["chosen"]
    assert choice.timesteps == 12 and chosen["how"] == "confirmed" and chosen["samples"] == 5000 and choice.report["met_budget"]
    assert choice.report["confirmed"] == 3
    text = format_choice(choice.report)
    assert "on 5000 held-out training samples" in text and "3 confirmed on up to 5000" in text


def test_when_nothing_was_promising_the_one_candidate_simulated_is_confirmed_before_it_counts(monkeypatch):
    """No rate code comes within the screening margin up to T = 2, so the best-screened candidate is simulated at the end;
    it beats its rate code by 20 points, and like any other it is confirmed on the other held-out samples."""
    from spikeconv.search import choose
    from spikeconv.search.variants import Variant

    class Surprising(_ScriptedCandidates):
        GAPS = {"calibrated": -20.0}
        stages = [range(3000)]

        def confirm(self, row, choice, settled):
            self.calls.append(("confirm", row["variant"], row["timesteps"]))
            self.rows.append({**row, "samples": 5000, "how": "confirmed"})
            return self.rows[-1], choice

    made = []
    monkeypatch.setattr(choose, "Candidates", lambda *a, **k: made.append(Surprising()) or made[-1])
    monkeypatch.setattr(choose, "variants_for", lambda graph: [Variant("calibrated")])
    choice = choose.choose_conversion(None, None, None, ConvertConfig(), AutoConfig(max_drop=1.0, max_timesteps=2))
    assert made[0].calls == [("calibrated", 2), ("confirm", "calibrated", 2)]
    assert choice.report["met_budget"] and choice.report["chosen"]["how"] == "confirmed" and choice.timesteps == 2


def test_a_variant_never_simulated_is_tried_beside_twins_whose_simulations_beat_their_rate_codes(monkeypatch):
    """Two per-channel twins share one rate code; the plain one is simulated first and beats its rate code. Ranked
    with no gap of its own, the signed twin would trail it for good; borrowing the best gap measured so far (and going
    first on a tie) it is simulated once, and its own 2-point gain makes it the choice at T = 10, not the per-layer
    neuron at T = 16."""
    from spikeconv.neurons import SinCorrection
    from spikeconv.search import choose
    from spikeconv.search.variants import Variant

    class Twins(_ScriptedCandidates):
        GAPS = {"calibrated + signed": -0.5, "calibrated + per-channel": -0.5, "calibrated + per-channel + signed": -2.0}
        OFFSETS = {"calibrated + per-channel": 0.2, "calibrated + per-channel + signed": 0.2}

    variants = [Variant("calibrated", False, SinCorrection.SIGNED), Variant("calibrated", True),
                Variant("calibrated", True, SinCorrection.SIGNED)]  # fmt: skip
    made = []
    monkeypatch.setattr(choose, "Candidates", lambda *a, **k: made.append(Twins()) or made[-1])
    monkeypatch.setattr(choose, "variants_for", lambda graph: variants)
    choice = choose.choose_conversion(None, None, None, ConvertConfig(), AutoConfig(max_drop=1.0, max_timesteps=20))
    calls = made[0].calls
    assert calls[0] == (variants[0].label, 8)  # the only rate code within the screening margin at T = 8 (24/8 = 3)
    assert (variants[1].label, 9) in calls and (variants[2].label, 10) in calls  # each untried twin in turn
    assert choice.report["met_budget"] and choice.timesteps == 10 and choice.variant == variants[2]  # 2.4 + 0.2 - 2 = 0.6


def test_allow_finetune_starts_hybrid_from_the_best_simulated_variant_and_says_so(monkeypatch):
    """With the first scripted search (signed per-channel chosen at T = 16), hybrid is fine-tuned at T = 15 and 14 from
    that variant, not from the plain per-layer recipe, and the chosen row is labelled with its start."""
    from spikeconv.neurons import SinCorrection
    from spikeconv.search import choose, format_choice
    from spikeconv.search.variants import AutoChoice, Variant

    class Tunable(_ScriptedCandidates):
        def finetune(self, timesteps: int, train_data, start):
            self.calls.append(("fine-tune", timesteps, start))
            variant = start.finetuned()
            self.rows.append({**self._row(variant, timesteps, 0.5, "fine-tuned"), "train_seconds": 1.0})
            return self.rows[-1], AutoChoice(None, ConvertConfig(timesteps=timesteps), variant, {}, snn=object(),
                                             hybrid={"start": start.label})  # fmt: skip

    signed = Variant("calibrated", True, SinCorrection.SIGNED)
    variants = [Variant("calibrated", True), signed, Variant("calibrated", False, SinCorrection.SIGNED)]
    made = []
    monkeypatch.setattr(choose, "Candidates", lambda *a, **k: made.append(Tunable()) or made[-1])
    monkeypatch.setattr(choose, "variants_for", lambda graph: variants)
    config = AutoConfig(max_drop=1.0, max_timesteps=20, allow_finetune=True)
    choice = choose.choose_conversion(None, None, None, ConvertConfig(), config, train_data=[])
    assert [call for call in made[0].calls if call[0] == "fine-tune"] == [("fine-tune", 15, signed), ("fine-tune", 14, signed)]
    assert choice.variant == Variant("hybrid", True, SinCorrection.SIGNED, start="calibrated") and choice.timesteps == 14
    assert choice.report["chosen"]["variant"] == "hybrid (calibrated + per-channel + signed)" and choice.report["met_budget"]
    assert choice.hybrid == {"start": "calibrated + per-channel + signed"}
    assert "auto: hybrid (calibrated + per-channel + signed) at T = 14" in format_choice(choice.report)


def test_hybrid_starts_at_the_nearest_simulated_t_at_or_below_among_neurons_it_can_train():
    from spikeconv.neurons import SinCorrection
    from spikeconv.search.choose import _finetunable, _hybrid_start
    from spikeconv.search.variants import AutoChoice, Variant

    plain, signed, burst = Variant("calibrated"), Variant("calibrated", True, SinCorrection.SIGNED), Variant("burst")
    simulated = [({"timesteps": t, "drop": drop, "expected_drop": drop}, AutoChoice(None, ConvertConfig(), v, {}))
                 for t, drop, v in ((4, 10.0, plain), (4, 1.0, signed), (6, 0.2, burst), (8, 0.5, plain))]  # fmt: skip
    starts = _finetunable(simulated, ConvertConfig())
    assert [v for _, v in starts] == [plain, signed, plain]  # burst neurons (two spikes per step) cannot be trained
    assert _hybrid_start(starts, 6) == signed and _hybrid_start(starts, 4) == signed  # T = 4's best; burst left out
    assert _hybrid_start(starts, 9) == plain and _hybrid_start(starts, 3) == signed  # nearest below, else above
    assert _hybrid_start([], 5) == Variant("calibrated")  # nothing simulated: hybrid's own recipe
    assert Variant("calibrated").finetuned().label == "hybrid (calibrated)" and Variant("hybrid").label == "hybrid"


def test_when_nothing_meets_the_budget_hybrid_is_tried_from_the_largest_t_the_search_reached(monkeypatch):
    """The closest conversion is kept at T = 6, where the rate code is best; the search screens on to T = 9 before
    stalling. Fine-tuning starts there (more steps, and the user allowed them), not at the kept T = 6."""
    from spikeconv.neurons import SinCorrection
    from spikeconv.search import choose
    from spikeconv.search.variants import AutoChoice, Variant

    class Stalling(_ScriptedCandidates):
        def screen(self, variant, timesteps: int) -> dict:
            drop = 24.0 / timesteps if timesteps < 6 else (2.5 if timesteps == 6 else 3.5)
            self.rows.append(self._row(variant, timesteps, drop, "screened"))
            return self.rows[-1]

        def simulate(self, variant, timesteps: int):
            self.calls.append((variant.label, timesteps))
            self.rows.append(self._row(variant, timesteps, self.rows[-1]["drop"] - 0.5, "simulated"))
            return self.rows[-1], AutoChoice(None, ConvertConfig(timesteps=timesteps), variant, {})

        def finetune(self, timesteps: int, train_data, start):
            self.calls.append(("fine-tune", timesteps))
            self.rows.append({**self._row(start.finetuned(), timesteps, 0.5, "fine-tuned"), "train_seconds": 1.0})
            return self.rows[-1], AutoChoice(None, ConvertConfig(timesteps=timesteps), start.finetuned(), {}, snn=object())

    variants = [Variant("calibrated", True, SinCorrection.SIGNED)]
    made = []
    monkeypatch.setattr(choose, "Candidates", lambda *a, **k: made.append(Stalling()) or made[-1])
    monkeypatch.setattr(choose, "variants_for", lambda graph: variants)
    config = AutoConfig(max_drop=1.0, max_timesteps=12, allow_finetune=True)
    choice = choose.choose_conversion(None, None, None, ConvertConfig(), config, train_data=[])
    assert [call for call in made[0].calls if call[0] != "fine-tune"] == [(variants[0].label, 6)]  # kept: 2.0 at T = 6
    assert max(row["timesteps"] for row in made[0].rows if row["how"] == "screened") == 9  # stalled after 3 more T
    assert [call for call in made[0].calls if call[0] == "fine-tune"] == [("fine-tune", 9), ("fine-tune", 8)]
    assert choice.timesteps == 8 and choice.report["met_budget"]
