"""Convert: calibrated ANN graphs -> SpikingNetwork, with optional low-latency corrections."""

from spikeconv.convert.bistable import BistableConfig
from spikeconv.convert.config import ConvertConfig, NeuronKind
from spikeconv.convert.corrections import Correction, CorrectionConfig, correct
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.convert.rate_code_ann import RateCodeQuantizer, rate_code_ann
from spikeconv.convert.rewrite import convert
from spikeconv.convert.time_layout import TimeKind

__all__ = [
    "BistableConfig",
    "ConvertConfig",
    "Correction",
    "CorrectionConfig",
    "MaxPoolMode",
    "NeuronKind",
    "RateCodeQuantizer",
    "TimeKind",
    "convert",
    "correct",
    "rate_code_ann",
]
