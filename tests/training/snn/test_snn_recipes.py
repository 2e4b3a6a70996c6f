"""Training recipes: every registered one is a valid, serialisable setting; the registry refuses duplicates."""

import pytest

from spikeconv.errors import ConfigError
from spikeconv.neurons import MultiThresholdConfig
from spikeconv.training import (
    Augment,
    Optimizer,
    Schedule,
    SnnLoss,
    SnnRecipe,
    SnnTrainConfig,
    available_snn_recipes,
    register_snn_recipe,
    snn_recipe,
)


@pytest.mark.parametrize("name", available_snn_recipes())
def test_every_recipe_is_a_complete_setting_that_round_trips(name):
    recipe = snn_recipe(name)
    assert recipe.name == name and recipe.paper and recipe.choices  # says whose setting and where it had to choose
    assert SnnTrainConfig.from_dict(recipe.config.to_dict()) == recipe.config


def test_the_multi_threshold_recipe_is_the_papers_fashion_mnist_setting():
    config = snn_recipe("xu2021-mtlif").config
    assert isinstance(config.neuron, MultiThresholdConfig)
    neuron = config.neuron
    assert (neuron.threshold, neuron.max_spikes, neuron.surrogate.a, neuron.surrogate.b) == (10.0, 15, 1.0, 20.0)
    assert (config.timesteps, config.epochs, config.batch_size, config.lr, config.optimizer) == (2, 200, 128, 0.005, Optimizer.ADAM)
    assert (config.loss, config.weight_decay, config.label_smoothing) == (SnnLoss.PER_STEP_MSE, 0.0, 0.0)
    assert (config.schedule, config.augment) == (Schedule.CONSTANT, Augment.SHIFT)  # no warm-up; random cropping only


def test_the_inflor_recipe_trains_srif_with_mpr_by_sgd_and_cosine_decay():
    config = snn_recipe("guo2022-inflor").config
    assert config.neuron.mpr is True and config.neuron.threshold == 0.5
    assert (config.optimizer, config.lr, config.momentum, config.schedule) == (Optimizer.SGD, 0.1, 0.9, Schedule.COSINE)
    assert (config.batch_size, config.augment, config.loss) == (128, Augment.SHIFT_FLIP, SnnLoss.CROSS_ENTROPY)


def test_unknown_and_duplicate_recipes_are_refused():
    with pytest.raises(ConfigError, match="unknown training recipe 'nope'; choose one of: " + ", ".join(available_snn_recipes())):
        snn_recipe("nope")
    with pytest.raises(ConfigError, match="already registered"):
        register_snn_recipe(SnnRecipe(name="xu2021-mtlif", paper="again", config=SnnTrainConfig()))
    with pytest.raises(ConfigError, match="must be an SnnTrainConfig"):
        SnnRecipe(name="bad", paper="-", config={"epochs": 3})


def test_every_recipe_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "training.md").read_text()
    assert all(f"`{name}`" in doc and f"**{name}.**" in doc for name in available_snn_recipes())
