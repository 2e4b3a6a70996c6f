"""Convert: calibrated ANN graphs -> SpikingNetwork."""

from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.convert.rewrite import convert
from spikeconv.convert.time_layout import TimeKind

__all__ = ["ConvertConfig", "MaxPoolMode", "TimeKind", "convert"]
