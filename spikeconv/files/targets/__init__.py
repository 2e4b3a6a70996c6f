"""Export targets: the NIR file each consumer library's own importer runs (``export --target``, ``convert --target``).

One module per target states the conventions its library's importer implements (measured by
running it) and registers an :class:`ExportTarget`; :mod:`spikeconv.files.targets.graph` writes the
graph in that dialect and :mod:`spikeconv.files.targets.export` checks the network against the
target. docs/export_targets.md has the tables.
"""

from spikeconv.files.targets.export import TARGET_FORMAT, converted_for, export_for_target, target_ready
from spikeconv.files.targets.nir import NIR
from spikeconv.files.targets.norse import NORSE
from spikeconv.files.targets.registry import TARGETS, ExportTarget, available_targets, export_target, register_target, target_rules
from spikeconv.files.targets.sinabs import SINABS
from spikeconv.files.targets.snntorch import SNNTORCH
from spikeconv.files.targets.spikingjelly import SPIKINGJELLY

for _target in (NIR, SINABS, SNNTORCH, SPIKINGJELLY, NORSE):
    register_target(_target)

__all__ = [
    "TARGETS",
    "TARGET_FORMAT",
    "ExportTarget",
    "available_targets",
    "converted_for",
    "export_for_target",
    "export_target",
    "register_target",
    "target_ready",
    "target_rules",
]
