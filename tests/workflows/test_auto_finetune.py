"""`--method auto --allow-finetune`: auto trains hybrid only when allowed, validates it like any candidate (digits)."""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.cli import main
from spikeconv.convert import ConvertConfig
from spikeconv.data import Split, calibration_subset, load_dataset
from spikeconv.errors import ConfigError
from spikeconv.files import load_ann, load_snn
from spikeconv.ingest import ingest_module
from spikeconv.search import AutoConfig, choose_conversion, finetune_split, validation_indices, validation_split
from spikeconv.search import candidates as candidates_module
from spikeconv.search import choose as choose_module
from spikeconv.training import FinetuneBudget

DIGITS = ["--dataset", "digits"]
BUDGET = FinetuneBudget(samples=600, lr=1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("auto-ft") / "ann.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "3", "--seed", "0", "--out", str(ckpt)]) == 0
    return ckpt


@pytest.fixture(scope="module")
def train_data():
    return load_dataset("digits", split=Split.TRAIN)


@pytest.fixture(scope="module")
def plain_search(trained, train_data):
    """The search without allow_finetune, run with fine-tuning made to fail: it must never be called."""

    def refuse(*args, **kwargs):
        raise AssertionError("auto fine-tuned without allow_finetune")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(candidates_module, "finetune_converted", refuse)
        return _search(trained, train_data)


@pytest.fixture(scope="module")
def tuned_search(trained, train_data):
    return _search(trained, train_data, allow_finetune=True)


def _search(trained, train_data, **options):
    graph = ingest_module(load_ann(trained).model)
    calib = calibration_subset(train_data, num_samples=400, seed=0)
    val = validation_split(train_data, calibration_samples=400, calibration_seed=0, samples=400)
    fine = finetune_split(train_data, calibration_samples=400, calibration_seed=0, samples=400)
    config = AutoConfig(max_drop=5.0, max_timesteps=6, correction_samples=128, finetune=BUDGET, **options)
    return choose_conversion(graph, calib, val, ConvertConfig(), config, train_data=fine), val


def test_finetune_split_is_the_training_set_without_the_validation_samples(train_data):
    val = set(validation_indices(len(train_data), calibration_samples=400, calibration_seed=0, samples=400).tolist())
    fine = finetune_split(train_data, calibration_samples=400, calibration_seed=0, samples=400)
    assert len(fine) == len(train_data) - len(val)
    x_val, _ = validation_split(train_data, calibration_samples=400, calibration_seed=0, samples=400).as_tensors()
    seen = {tuple(x.flatten().tolist()) for x in fine.as_tensors()[0]}
    assert not any(tuple(x.flatten().tolist()) in seen for x in x_val)


def test_auto_never_trains_unless_allowed(plain_search):
    choice, _ = plain_search
    assert choice.snn is None and choice.variant.method != "hybrid"
    assert choice.report["finetune"] == {"allowed": False}
    assert all(row["how"] != "fine-tuned" for row in choice.report["candidates"])


def test_allow_finetune_needs_training_data(trained, train_data):
    graph = ingest_module(load_ann(trained).model)
    calib = calibration_subset(train_data, num_samples=200, seed=0)
    with pytest.raises(ConfigError, match="train_data"):
        choose_conversion(graph, calib, calib, ConvertConfig(), AutoConfig(allow_finetune=True))


def test_hybrid_is_chosen_below_the_conversion_cost_and_its_numbers_reproduce(plain_search, tuned_search):
    plain, _ = plain_search
    choice, val = tuned_search
    report = choice.report
    tuned = [row for row in report["candidates"] if row["how"] == "fine-tuned"]
    assert report["finetune"]["allowed"] and report["finetune"]["trained"] == len(tuned) >= 1
    assert all(row["train_seconds"] >= 0 for row in tuned) and report["finetune"]["seconds"] >= 0
    assert all(row["timesteps"] < plain.report["chosen"]["timesteps"] * plain.report["chosen"]["bits_per_step"] for row in tuned)
    if choice.variant.method != "hybrid":  # then no fine-tuned candidate met the budget (auto never drops one that did)
        assert not any(choose_module._meets(row, AutoConfig(max_drop=5.0)) for row in tuned)
        assert choice.report["chosen"] == plain.report["chosen"]
        return
    # on this net and budget (measured with one thread; the margin depends on float summation order) hybrid wins
    assert report["met_budget"] and choice.snn is not None
    chosen = report["chosen"]
    assert chosen["how"] == "fine-tuned" and chosen["timesteps"] == choice.timesteps
    x, y = val.as_tensors()
    with torch.inference_mode():
        accuracy = 100.0 * float((choice.snn(x, choice.timesteps).sum(0).argmax(1) == y).float().mean())
    assert accuracy == pytest.approx(chosen["accuracy"], abs=0.01)
    assert choice.hybrid["timesteps"] == choice.timesteps and choice.hybrid["budget"]["samples"] == BUDGET.samples


def test_cli_auto_allow_finetune_writes_the_trained_snn_and_its_record(trained, tmp_path, capsys):
    out = tmp_path / "auto.snn.pt"
    args = ["convert", str(trained), *DIGITS, "--method", "auto", "--max-drop", "5", "--max-timesteps", "6", "--calib-samples", "400",
            "--val-samples", "400", "--correction-samples", "128", "--finetune-samples", "600", "--finetune-lr", "1e-3",
            "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(args + ["--allow-finetune"]) == 0
    printed = capsys.readouterr().out
    assert "--allow-finetune: " in printed
    loaded = load_snn(out)
    assert loaded.info["auto"]["finetune"]["trained"] >= 1
    assert loaded.info["method"] == loaded.info["auto"]["chosen"]["method"]
    if loaded.info["method"] == "hybrid":  # as the search test: chosen when it meets the budget at the least cost
        assert loaded.info["hybrid"]["budget"]["samples"] == 600
    assert json.dumps(loaded.info["auto"])  # the report stays JSON
    plain = tmp_path / "plain.snn.pt"
    assert main([*args[:-1], str(plain)]) == 2  # --finetune-* without --allow-finetune: refused, nothing written
    assert "only apply to --method hybrid and --method auto --allow-finetune" in capsys.readouterr().err and not plain.exists()
    assert main(["convert", str(trained), *DIGITS, "--method", "calibrated", "--allow-finetune", "--out", str(plain)]) == 2
    assert "--allow-finetune" in capsys.readouterr().err and not plain.exists()


def test_api_auto_trains_only_with_allow_finetune(trained, train_data, tuned_search):
    from spikeconv.workflows.api import convert

    model, search = load_ann(trained), AutoConfig(max_drop=5.0, max_timesteps=6, validation_samples=400)
    common = dict(method="auto", auto=search, max_samples=400, correction_samples=128)
    tuned = convert(model, train_data, allow_finetune=True, finetune=BUDGET, **common)
    expected, _ = tuned_search
    untimed = lambda row: {k: v for k, v in row.items() if not k.endswith("seconds")}  # noqa: E731  (wall time differs)
    assert untimed(tuned.metadata["auto"]["chosen"]) == untimed(expected.report["chosen"]) and tuned.timesteps == expected.timesteps
    if expected.snn is not None:  # hybrid won the search: the API returns that very fine-tuned network
        first = next(iter(tuned.state_dict()))
        assert torch.equal(tuned.state_dict()[first], expected.snn.state_dict()[first])
    else:
        assert "hybrid" not in tuned.metadata
    plain = convert(model, train_data, **common)
    assert plain.metadata["auto"]["finetune"] == {"allowed": False} and "hybrid" not in plain.metadata
    with pytest.raises(ConfigError, match="apply to method='auto'"):
        convert(model, [train_data[0][0][None]], method="calibrated", allow_finetune=True)
    with pytest.raises(ConfigError, match="training Dataset"):
        convert(model, [train_data[0][0][None]], method="auto")
    with pytest.raises(ConfigError, match="does not train without it"):
        convert(model, train_data, finetune=BUDGET, **common)
