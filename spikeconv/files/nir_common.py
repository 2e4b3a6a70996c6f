"""What the NIR writer and reader agree on: names, the threshold arithmetic, and a safe look inside the file.

NIR fires on ``v > θ`` where spikeconv fires on ``v >= θ``; on float32 values ``v >= θ`` is
exactly ``v > below(θ)``, the largest float32 under θ, so the file stores ``below(θ)``. The
soft-reset construction (integrator, thresholds, a ``Scale(−θ)`` edge back into the integrator)
starts the integrator at 0, so the initial membrane ``V0`` moves into the thresholds:
spike ``j`` of a step fires when ``u >= j·θ − V0``. Both directions compute those arrays with
:func:`soft_thresholds`, so the reader can tell that a file's numbers are the ones its
spikeconv record implies (and then restore the record's exact values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spikeconv.errors import CheckpointError

NIR_KEY = "spikeconv"
"""Metadata key of every node (and the graph) spikeconv writes."""
NIR_FORMAT = "spikeconv-nir"
NIR_VERSION = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_ARRAY_BYTES = 4 << 30
"""Refuse a NIR file declaring more than this in arrays (a small compressed file can declare terabytes)."""

DISCRETISATION = (
    "dt = 1, forward Euler: I: v[t] = v[t-1] + r*x[t]; LI: v[t] = v[t-1] + (v_leak - v[t-1] + r*x[t]) / tau; "
    "IF/LIF likewise, then z = v > v_threshold and v = v_reset where z; Threshold: z = x > threshold; "
    "nodes run in topological order each step, an edge that closes a cycle delivers its source's value of step t-1 "
    "(0 at the first step); edges into one node are summed; the input is presented at every step"
)


def below(values: np.ndarray) -> np.ndarray:
    """The largest float32 under each value: ``x > below(θ)`` is ``x >= θ`` for float32 x."""
    values = np.asarray(values, dtype=np.float32)
    return np.nextafter(values, np.float32(-np.inf)).astype(np.float32)


def above(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`below`: the spikeconv threshold of a NIR ``v > θ`` test."""
    values = np.asarray(values, dtype=np.float32)
    return np.nextafter(values, np.float32(np.inf)).astype(np.float32)


def soft_thresholds(theta: np.ndarray, start: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` NIR thresholds of a soft-reset neuron of threshold ``theta`` starting at membrane ``start``."""
    theta, start = np.asarray(theta, dtype=np.float32), np.asarray(start, dtype=np.float32)
    return [below(np.float32(j) * theta - start) for j in range(1, count + 1)]


def record(**values: Any) -> dict[str, Any]:
    """A node's spikeconv metadata: JSON-able settings as one JSON string, arrays as float32 arrays.

    HDF5 round-trips strings and arrays reliably (lists and booleans it does not), hence the split.
    """
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in values.items() if isinstance(v, np.ndarray)}
    settings = {k: v for k, v in values.items() if not isinstance(v, np.ndarray)}
    return {NIR_KEY: {"settings": json.dumps(settings, sort_keys=True), **arrays}}


def read_record(node: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """``(settings, arrays)`` of a node spikeconv wrote, or None for a node without (a file from another tool)."""
    meta = getattr(node, "metadata", None) or {}
    entry = meta.get(NIR_KEY) if isinstance(meta, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("settings"), str):
        return None
    try:
        settings = json.loads(entry["settings"])
    except ValueError:
        return None
    if not isinstance(settings, dict):
        return None
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in entry.items() if k != "settings" and isinstance(v, np.ndarray)}
    return settings, arrays


def is_hdf5(path: Path) -> bool:
    """Whether ``path`` starts with the HDF5 signature (a NIR file is HDF5)."""
    try:
        with path.open("rb") as handle:
            return handle.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def check_hdf5_safe(path: Path) -> None:
    """Refuse HDF5 features that read outside the file or exhaust memory, before anything is parsed.

    External links, external raw storage and virtual datasets make h5py open other files on this
    machine; user-defined filters load plugins; and a few compressed bytes can declare any size.

    Raises:
        CheckpointError: One line naming the file and the offending object.
    """
    import h5py

    total = 0
    try:
        with h5py.File(path, "r") as handle:
            pending = [("", handle)]
            while pending:
                prefix, group = pending.pop()
                for name in group:
                    link = group.get(name, getlink=True)
                    where = f"{prefix}/{name}"
                    if not isinstance(link, h5py.HardLink):
                        raise CheckpointError(f"{path} is not a NIR file spikeconv reads: {where} links to another object or file")
                    item = group[name]
                    if isinstance(item, h5py.Group):
                        pending.append((where, item))
                        continue
                    plist = item.id.get_create_plist()
                    if item.is_virtual or plist.get_external_count() > 0:
                        raise CheckpointError(f"{path} is not a NIR file spikeconv reads: {where} stores its data in another file")
                    for index in range(plist.get_nfilters()):
                        code = plist.get_filter(index)[0]
                        if code not in (h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32):
                            raise CheckpointError(f"{path} is not a NIR file spikeconv reads: {where} needs compression filter {code}")
                    total += int(item.size) * int(item.dtype.itemsize)
                    if total > MAX_ARRAY_BYTES:
                        raise CheckpointError(f"{path} declares more than {MAX_ARRAY_BYTES >> 30} GiB of arrays; it is not a NIR file "
                                              "spikeconv reads")  # fmt: skip
    except CheckpointError:
        raise
    except Exception as exc:  # a damaged HDF5 file fails anywhere inside h5py
        raise CheckpointError(f"{path} is a damaged HDF5/NIR file ({type(exc).__name__}); export it again") from None
