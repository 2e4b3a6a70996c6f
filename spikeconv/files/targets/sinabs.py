"""``--target sinabs``: what ``sinabs.from_nir`` (sinabs 3.1.3, with the nir 1.0.4 and nirtorch 2.0.2 it installs) runs.

Measured by ``bench/interop_consumer.py probe sinabs``: every ``IF`` becomes ``IAFSqueeze`` —
reset by subtraction, ``(v > 0)·trunc(v/θ)`` spikes per step (no limit), membrane clamped at
``−θ`` after the reset, starting at 0, one threshold per neuron, ``r`` and ``v_reset`` ignored,
``v >= θ`` fires. ``AvgPool2d`` is not mapped (``SumPool2d`` is), ``Flatten`` is read right.
``nirtorch.load`` runs nodes depth first, so a layer on a residual shortcut reads its previous
step's value. nir 1.0.4 cannot read an ``IF`` with ``v_reset``; the file leaves it out.
"""

import numpy as np

from spikeconv.convert.target_rules import UNBOUNDED_SPIKES, TargetRules
from spikeconv.files.targets.graph import Dialect
from spikeconv.files.targets.registry import ExportTarget
from spikeconv.neurons import Reset


def _if(shape: tuple[int, ...], thresholds: np.ndarray):
    import nir

    return nir.IF(r=np.ones(shape, np.float32), v_threshold=thresholds, v_reset=np.zeros(shape, np.float32))


SINABS = ExportTarget(
    name="sinabs",
    library="sinabs 3.1.3",
    importer="sinabs.from_nir(nir.read(path), batch_size=N); input (N·T, C, H, W), batch-major",
    rules=TargetRules(name="sinabs", library="sinabs 3.1.3", reset=Reset.SUBTRACT, initial_membrane=False,
                      max_spikes=UNBOUNDED_SPIKES, membrane_floor=1.0, uniform_thresholds=False, shortcut_layers=False),
    dialect=Dialect(neuron=_if, fires_above=False, sum_pools=True, flatten_batch=False),
    depth_first=True,
    nir_1_0_4=True,
    conventions=(("neuron", "IF -> IAFSqueeze: v += x; (v > 0)·trunc(v/θ) spikes; v -= spikes·θ; v = max(v, −θ)"),
                 ("threshold test", "v >= θ"), ("initial membrane", "0 (v_reset ignored)"),
                 ("thresholds", "one per neuron"), ("r", "ignored (written 1)"), ("pooling", "SumPool2d only"),
                 ("Flatten", "start_dim + 1: read right"), ("graph executor", "nirtorch.load, depth first"),
                 ("nir version", "1.0.4 (no v_reset on IF)")),
)  # fmt: skip
