"""Which values of a converted graph vary over time, and where to repeat the others.

The layout itself lives in :mod:`spikeconv.neurons.time_layout`, shared with direct training
(``training/snn/spikify.py``); conversion imports it from here.
"""

from __future__ import annotations

from spikeconv.neurons.time_layout import TimeKind, is_shape_query, lay_out_time_

__all__ = ["TimeKind", "is_shape_query", "lay_out_time_"]
