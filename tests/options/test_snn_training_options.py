"""train-snn's option strings -> SnnTrainConfig: per-neuron defaults, recipes, and explicit options over a recipe."""

import dataclasses

import pytest

from spikeconv.errors import ConfigError
from spikeconv.neurons import trainable_neuron_config
from spikeconv.options import SNN_RECIPES, snn_training_from_options
from spikeconv.training import Augment, Optimizer, Schedule, SnnLoss, SnnTrainConfig, available_snn_recipes, snn_recipe


def test_without_a_recipe_the_defaults_are_unchanged():
    assert snn_training_from_options() == SnnTrainConfig(neuron=trainable_neuron_config("srif"))  # srif, no MPR, SGD 0.1
    multi = snn_training_from_options(neuron="mtlif")
    assert (multi.optimizer, multi.lr, multi.tdbn, multi.loss) == (Optimizer.ADAM, 0.005, True, SnnLoss.CROSS_ENTROPY)
    assert (multi.timesteps, multi.epochs, multi.schedule, multi.augment) == (4, 20, Schedule.COSINE, Augment.NONE)
    assert snn_training_from_options(neuron="srif", mpr=True).neuron.mpr is True


@pytest.mark.parametrize("name", available_snn_recipes())
def test_a_recipe_alone_is_its_config(name):
    assert name in SNN_RECIPES
    assert snn_training_from_options(recipe=name) == snn_recipe(name).config


def test_explicit_options_replace_only_their_own_recipe_values():
    recipe = snn_recipe("xu2021-mtlif").config
    config = snn_training_from_options(recipe="xu2021-mtlif", epochs=3, lr=0.001, schedule="cosine", weight_decay=1e-4,
                                       label_smoothing=0.1, augment="none", seed=2, tdbn=False)  # fmt: skip
    assert config == dataclasses.replace(recipe, epochs=3, lr=0.001, schedule=Schedule.COSINE, weight_decay=1e-4,
                                         label_smoothing=0.1, augment=Augment.NONE, seed=2, tdbn=False)  # fmt: skip
    assert snn_training_from_options(recipe="xu2021-mtlif", loss="cross-entropy", timesteps=4).loss is SnnLoss.CROSS_ENTROPY


def test_an_explicit_neuron_replaces_the_recipes_neuron_and_its_mpr():
    recipe = snn_recipe("guo2022-inflor").config
    assert recipe.neuron.mpr is True
    plain = snn_training_from_options(recipe="guo2022-inflor", neuron="lif")
    assert plain == dataclasses.replace(recipe, neuron=trainable_neuron_config("lif"))  # SGD 0.1, cosine, shift-flip kept
    assert snn_training_from_options(recipe="guo2022-inflor", neuron="if", mpr=True).neuron == trainable_neuron_config("if", mpr=True)
    assert snn_training_from_options(recipe="guo2022-inflor", mpr=False).neuron == trainable_neuron_config("srif")


def test_mpr_on_a_neuron_without_it_is_refused_with_or_without_a_recipe():
    with pytest.raises(ConfigError, match="--mpr applies to the neurons if, lif, srif, not 'mtlif'"):
        snn_training_from_options(neuron="mtlif", mpr=True)
    with pytest.raises(ConfigError, match="not \"xu2021-mtlif's neuron\""):
        snn_training_from_options(recipe="xu2021-mtlif", mpr=True)
    assert snn_training_from_options(recipe="xu2021-mtlif", mpr=False) == snn_recipe("xu2021-mtlif").config


def test_unknown_recipe_and_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="unknown training recipe"):
        snn_training_from_options(recipe="xu2023-mtlif")
    with pytest.raises(ConfigError, match="label_smoothing"):
        snn_training_from_options(recipe="xu2021-mtlif", label_smoothing=1.5)
    with pytest.raises(ConfigError, match="weight_decay"):
        snn_training_from_options(weight_decay=-1.0)
