"""``--target snntorch``: what ``snntorch.import_nir.import_from_nir`` (snnTorch 1.0.0, nirtorch 2.6) runs.

Measured by ``bench/interop_consumer.py probe snntorch``: its ``IF`` map builds ``Leaky(beta=0.9,
init_hidden=False)``, which returns (spikes, membrane) where nirtorch's executor passes one tensor
on, so the integrator is written as its ``LIF`` map reads it: ``beta = 1 − dt/τ`` and threshold
``θ·τ/(r·dt)`` with snnTorch's dt = 1e-4, so τ = 1e4 and r = τ/dt give beta = 1 in float32 (no leak)
and the threshold unchanged; reset to 0 (``v_reset`` ignored), membranes start at 0, one spike
per step, ``v > θ`` fires, one threshold per layer. Its ``Flatten`` passes NIR's batch-free
``start_dim`` to ``nn.Flatten`` and flattens the batch. ``nirtorch.nir_to_torch`` orders the nodes
properly (a layer on a shortcut is fine).
"""

import numpy as np

from spikeconv.convert.target_rules import TargetRules
from spikeconv.files.targets.graph import Dialect
from spikeconv.files.targets.registry import ExportTarget
from spikeconv.neurons import Reset

TAU = np.float32(1e4)  # with snnTorch's dt = 1e-4: beta = 1 − 1e-8 = 1.0 in float32
DT = np.float32(1e-4)


def _lif(shape: tuple[int, ...], thresholds: np.ndarray):
    import nir

    tau = np.full(shape, TAU, np.float32)
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(shape, np.float32), v_threshold=thresholds,
                   v_reset=np.zeros(shape, np.float32))  # fmt: skip


SNNTORCH = ExportTarget(
    name="snntorch",
    library="snnTorch 1.0.0",
    importer="snntorch.import_nir.import_from_nir(nir.read(path)); snntorch.utils.reset(net) before each input; net(x) per step",
    rules=TargetRules(name="snntorch", library="snnTorch 1.0.0", reset=Reset.ZERO, initial_membrane=False, max_spikes=1,
                      uniform_thresholds=True, shortcut_layers=True),
    dialect=Dialect(neuron=_lif, fires_above=True, sum_pools=False, flatten_batch=True),
    conventions=(("neuron", "LIF -> Leaky(beta = 1 − dt/τ, reset to 0); IF -> Leaky(beta=0.9) returning a tuple: unusable"),
                 ("threshold test", "v > θ"), ("initial membrane", "0"), ("thresholds", "one per layer (asserted)"),
                 ("r", "threshold divided by r·dt/τ unless that is 1"), ("Flatten", "flattens the batch too"),
                 ("graph executor", "nirtorch.nir_to_torch (waits for every input)")),
)  # fmt: skip
