"""Named training recipes: a paper's whole direct-training setting as one ``SnnTrainConfig``.

A recipe is what ``train-snn --recipe NAME`` starts from; every option given explicitly replaces
the recipe's value, so a recipe is a documented set of defaults, not a mode. Each records where the
paper is silent or its text was lost and what spikeconv chose there (``choices``), so a run under a
recipe says exactly how far it is the paper's setting. The network and data set are not part of a
recipe: they are ``--arch``/``--dataset`` (both papers' Fashion-MNIST network is ``fmnist-cnn``).

Registry as the other name registries: one dict, ``register_snn_recipe`` raises on a duplicate,
``available_snn_recipes`` feeds the CLI's choices.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeconv.errors import ConfigError
from spikeconv.neurons import trainable_neuron_config
from spikeconv.training.config import Augment, Optimizer, Schedule
from spikeconv.training.snn.config import SnnLoss, SnnTrainConfig

__all__ = ["SnnRecipe", "available_snn_recipes", "register_snn_recipe", "snn_recipe"]


@dataclass(frozen=True)
class SnnRecipe:
    """A published direct-training setting.

    Attributes:
        name: Registry key, ``<first author><year>-<method>``.
        paper: The paper it follows (authors, title, identifier).
        config: Every training option, neuron and T included.
        choices: Where the paper gives no value (or its value was lost) and which one spikeconv uses.
    """

    name: str
    paper: str
    config: SnnTrainConfig
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.config, SnnTrainConfig):
            raise ConfigError(f"recipe {self.name!r}: config must be an SnnTrainConfig, got {type(self.config).__name__}")


_RECIPES: dict[str, SnnRecipe] = {}


def register_snn_recipe(recipe: SnnRecipe) -> SnnRecipe:
    """Add ``recipe`` under its name.

    Raises:
        ConfigError: The name is taken.
    """
    if recipe.name in _RECIPES:
        raise ConfigError(f"a training recipe named {recipe.name!r} is already registered")
    _RECIPES[recipe.name] = recipe
    return recipe


def available_snn_recipes() -> list[str]:
    """Registered recipe names, sorted."""
    return sorted(_RECIPES)


def snn_recipe(name: str) -> SnnRecipe:
    """The recipe registered as ``name``.

    Raises:
        ConfigError: No such recipe (the message lists the registered ones).
    """
    recipe = _RECIPES.get(name)
    if recipe is None:
        raise ConfigError(f"unknown training recipe {name!r}; choose one of: {', '.join(available_snn_recipes())}")
    return recipe


register_snn_recipe(SnnRecipe(
    name="xu2021-mtlif",
    paper="Xu, Liu & Yang, Direct Training via Backpropagation for Ultra-low Latency Spiking Neural Networks with "
          "Multi-threshold, arXiv:2112.07426 (2021): the MNIST / Fashion-MNIST setting (its 93.08 % at T = 2)",
    config=SnnTrainConfig(
        neuron=trainable_neuron_config("mtlif"),  # V_th 10, k 0.9, Γ 15, surrogate a = 1, b = 20 (Table 1)
        timesteps=2, epochs=200, batch_size=128, lr=0.005, optimizer=Optimizer.ADAM,  # Adam β 0.9, 0.999
        weight_decay=0.0, label_smoothing=0.0,  # "no ... weight regularization"
        schedule=Schedule.CONSTANT, loss=SnnLoss.PER_STEP_MSE, tdbn=True, augment=Augment.SHIFT,
    ),
    choices=(
        "learning-rate schedule: none named, so constant (no warm-up: the paper says it uses none)",
        "random cropping: 2-pixel zero padding, then a random 28x28 crop (the padding is not given)",
        "per-step MSE target: one-hot readout current at every step (the paper's target coding was lost)",
        "weight initialisation (Eq. 17, lost): PyTorch's defaults, BatchNorm after each layer with tdBN, so that "
        "neurons reach V_th = 10 at initialisation",
        "lr 0.005: Table 1 lists 0.005, 0.005, 0.0005, read as MNIST, Fashion-MNIST, CIFAR-10",
        "decay k = 0.9 (Δt = 1 ms with τ_m = 10 ms; Δt was lost)",
    ),
))  # fmt: skip

register_snn_recipe(SnnRecipe(
    name="guo2022-inflor",
    paper="Guo et al., Reducing Information Loss for Spiking Neural Networks (InfLoR), ECCV 2022: SRIF + MPR, the "
          "static-image setting",
    config=SnnTrainConfig(
        neuron=trainable_neuron_config("srif", mpr=True),  # V_th 0.5, V_reset 0
        timesteps=4, epochs=400, batch_size=128, lr=0.1, optimizer=Optimizer.SGD, momentum=0.9,
        weight_decay=0.0, label_smoothing=0.0, schedule=Schedule.COSINE,  # cosine decay to 0
        loss=SnnLoss.CROSS_ENTROPY, tdbn=False, augment=Augment.SHIFT_FLIP,  # random flip and crop
    ),
    choices=(
        "momentum 0.9, lr 0.1 and V_th 0.5: the values were lost from the text",
        "loss: cross-entropy of the accumulated readout (not stated)",
        "weight decay: not stated, so none",
        "random cropping: 2-pixel zero padding, then a random crop (CIFAR-10's AutoAugment and Cutout are not used)",
        "T = 4 (the MPR ablation's T); 400 epochs is the CIFAR budget",
        "tdBN: described, not stated as used, so plain BatchNorm",
    ),
))  # fmt: skip
