"""``--target spikingjelly``: what ``nir_exchange.import_from_nir`` (SpikingJelly 2.0.0, nirtorch 2.6) runs.

Measured by ``bench/interop_consumer.py probe spikingjelly``: ``IF`` becomes ``IFNode`` with
``v_reset`` (hard reset to it) and one threshold per layer (both required uniform), and the
membrane *starts at* ``v_reset``; ``v >= θ`` fires; ``r`` must equal ``1/dt`` (the default dt is
1e-4), and the charge is ``v += x`` (NIR's ``dt·r·x``). ``Flatten`` is read right and
``nirtorch.nir_to_torch`` orders nodes properly.
"""

import numpy as np

from spikeconv.convert.target_rules import TargetRules
from spikeconv.files.targets.graph import Dialect
from spikeconv.files.targets.registry import ExportTarget
from spikeconv.neurons import Reset

DT = np.float32(1e-4)  # import_from_nir's default dt


def _if(shape: tuple[int, ...], thresholds: np.ndarray):
    import nir

    return nir.IF(r=np.full(shape, np.float32(1.0) / DT, np.float32), v_threshold=thresholds, v_reset=np.zeros(shape, np.float32))


SPIKINGJELLY = ExportTarget(
    name="spikingjelly",
    library="SpikingJelly 2.0.0",
    importer="spikingjelly.activation_based.nir_exchange.import_from_nir(path, dt=1e-4); out, state = gm(x, state) per step",
    rules=TargetRules(name="spikingjelly", library="SpikingJelly 2.0.0", reset=Reset.ZERO, initial_membrane=False, max_spikes=1,
                      uniform_thresholds=True, shortcut_layers=True),
    dialect=Dialect(neuron=_if, fires_above=False, sum_pools=False, flatten_batch=False),
    conventions=(("neuron", "IF -> IFNode(v_threshold, v_reset): v += x; spike = v >= θ; v = v_reset where spike"),
                 ("threshold test", "v >= θ"), ("initial membrane", "v_reset (written 0)"),
                 ("thresholds", "one per layer (required)"), ("r", "must be 1/dt (written 1e4 for dt = 1e-4)"),
                 ("Flatten", "start_dim + 1: read right"), ("graph executor", "nirtorch.nir_to_torch (waits for every input)")),
)  # fmt: skip
