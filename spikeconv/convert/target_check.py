"""The check :func:`~spikeconv.convert.convert` makes of a config that names a deployment target."""

from __future__ import annotations

from spikeconv.convert.config import ConvertConfig, NeuronKind
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.errors import ConfigError
from spikeconv.neurons import Reset, SinCorrection

__all__ = ["check_config_fits"]


def check_config_fits(config: ConvertConfig) -> None:
    """Refuse a ConvertConfig whose neurons its own target cannot run (one line naming the setting).

    Raises:
        ConfigError: The reset, initial membrane, spikes per step or neuron kind differ from the target's.
    """
    rules = config.target
    if rules is None:
        return
    problems = []
    if config.reset is not rules.reset:
        problems.append(f"reset {config.reset.value} (it resets {'by subtraction' if rules.reset is Reset.SUBTRACT else 'to 0'})")
    if not rules.initial_membrane and config.v_init != 0.0:
        problems.append(f"--v-init {config.v_init:g} (its membranes start at 0)")
    if config.max_spikes != rules.max_spikes:
        problems.append(f"{config.max_spikes} spike(s) per step (it fires {rules.spikes_text})")
    if config.sin_correction is not SinCorrection.NONE:
        problems.append(f"{config.sin_correction.value} SIN correction (no retracted spikes)")
    if config.neuron is not NeuronKind.IF:
        problems.append(f"{config.neuron.value} neurons")
    if config.maxpool is MaxPoolMode.SPIKING:
        problems.append("the spiking max-pool gate (no such layer; use average pooling)")
    if problems:
        raise ConfigError(f"--target {rules.name} ({rules.library}) cannot run {'; '.join(problems)}")
