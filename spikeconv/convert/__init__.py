"""Convert: calibrated ANN graphs -> SpikingNetwork, with optional low-latency corrections."""

from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.corrections import Correction, CorrectionConfig, correct
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.convert.rewrite import convert
from spikeconv.convert.time_layout import TimeKind

__all__ = ["ConvertConfig", "Correction", "CorrectionConfig", "MaxPoolMode", "TimeKind", "convert", "correct"]
