"""What a model file does not say, from the CLI's option strings (``--arch``, ``--input-shape``, ``--mean``, ...)."""

from __future__ import annotations

from spikeconv.errors import ConfigError
from spikeconv.files import ModelSpec
from spikeconv.ingest.preprocessing import Preprocessing


def _numbers(text: str, option: str, kind: type) -> tuple:
    try:
        values = tuple(kind(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, got {text!r}") from None
    return values


def model_spec_from_options(*, arch: str | None, factory: str | None, num_classes: int | None, input_shape: str | None,
                            mean: str | None, std: str | None, trust_pickle: bool) -> ModelSpec:  # fmt: skip
    """What the model file does not say, from CLI strings: ``--input-shape 1,28,28``, ``--mean 0.5`` or ``--mean 0.49,0.48,0.45``.

    Giving only one of ``--mean``/``--std`` leaves the other at its neutral value (0 or 1).
    """
    shape = None if input_shape is None else _numbers(input_shape, "--input-shape", int)
    preprocessing = None
    if mean is not None or std is not None:
        preprocessing = Preprocessing(mean=_numbers(mean, "--mean", float) if mean is not None else (0.0,),
                                      std=_numbers(std, "--std", float) if std is not None else (1.0,))  # fmt: skip
    return ModelSpec(arch=arch, factory=factory, num_classes=num_classes, input_shape=shape, preprocessing=preprocessing,
                     trust_pickle=trust_pickle)  # fmt: skip
