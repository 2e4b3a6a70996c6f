"""``--target norse``: what ``norse.torch.from_nir`` (Norse 1.1.0, nirtorch 2.6's ``load``) runs.

Measured by ``bench/interop_consumer.py probe norse``: ``IF`` becomes ``IAFCell`` — ``v += x``,
``v > θ`` fires, reset to 0 (NIR's ``v_reset`` ignored), membranes start at 0, one spike per step,
one threshold per neuron. ``AvgPool2d`` is not mapped (``SumPool2d`` is, as ``LPPool2d(1)``); its
``Flatten`` flattens the batch. ``nirtorch.load`` runs nodes depth first, so a layer on a residual
shortcut reads its previous step's value.
"""

import numpy as np

from spikeconv.convert.target_rules import TargetRules
from spikeconv.files.targets.graph import Dialect
from spikeconv.files.targets.registry import ExportTarget
from spikeconv.neurons import Reset


def _if(shape: tuple[int, ...], thresholds: np.ndarray):
    import nir

    return nir.IF(r=np.ones(shape, np.float32), v_threshold=thresholds, v_reset=np.zeros(shape, np.float32))


NORSE = ExportTarget(
    name="norse",
    library="Norse 1.1.0",
    importer="norse.torch.from_nir(nir.read(path)); out, state = model(x, state) per step, state = None first",
    rules=TargetRules(name="norse", library="Norse 1.1.0", reset=Reset.ZERO, initial_membrane=False, max_spikes=1,
                      uniform_thresholds=False, shortcut_layers=False),
    dialect=Dialect(neuron=_if, fires_above=True, sum_pools=True, flatten_batch=True),
    depth_first=True,
    conventions=(("neuron", "IF -> IAFCell: v += x; z = v > θ; v = 0 where z"), ("threshold test", "v > θ"),
                 ("initial membrane", "0 (v_reset ignored)"), ("thresholds", "one per neuron"), ("r", "warned about, ignored"),
                 ("pooling", "SumPool2d only (LPPool2d(1))"), ("Flatten", "flattens the batch too"),
                 ("graph executor", "nirtorch.load, depth first")),
)  # fmt: skip
