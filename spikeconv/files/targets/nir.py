"""``--target nir``: the exact NIR file (soft reset as an ``I``/``Threshold``/``Scale(−θ)`` loop, docs/export_nir.md).

No consumer library maps ``I``, ``Threshold`` or ``Scale``; any reader that implements NIR's
equations runs it (``bench/nir_independent_check.py``, nirtorch's executor) and spikeconv reads it
back to the identical network. It constrains nothing at conversion.
"""

from spikeconv.files.targets.registry import ExportTarget

NIR = ExportTarget(
    name="nir",
    library="NIR 1.0.8 (exact; spikeconv reads it back, any NIR-equation reader runs it)",
    importer="nirtorch.nir_to_torch(nir.read(path), node_map) with NIR's equations (dt = 1)",
    conventions=(("neuron", "soft reset as I + Threshold + Scale(−θ) loop; NIR's own equations, dt = 1"),
                 ("readout", "an I integrator before Output: the accumulated readout")),
)  # fmt: skip
