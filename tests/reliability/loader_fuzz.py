"""A seeded mutation fuzzer for the files spikeconv reads; shared by tests/reliability and bench/fuzz_loaders.py.

Each format has a valid seed file (made by :func:`make_seeds`) and a command that reads it. A
mutant is the seed's bytes after one mutation drawn from ``random.Random(seed)``:

- byte level: bit flips, byte overwrites, truncation, chunk duplication and deletion;
- zip level (``.pt``, ``.pt2``, ``.snn.pt``, ``.npz`` are zips): one member's bytes mutated and the
  archive re-zipped (so the mutant passes the zip layer and reaches the parser), or a member
  dropped, duplicated or renamed;
- structured: the torch payload (loaded weights-only from our own seed) with one value replaced,
  deleted or re-typed, an embedded ONNX/.pt2 model mutated in place, then ``torch.save``\\ d again;
  a JSON member of a ``.pt2`` edited; one field of an ONNX ``ModelProto`` edited; an ``.npz``
  array replaced by one of another dtype, shape or range, or its ``.npy`` header edited.

The contract checked (:func:`verdict`): exit 0, or exit 2 with exactly one stderr line that starts
with ``error:``; exit 1 (an escaped exception), any other code, or a traceback is a failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SHAPE = (1, 8, 8)
DIGITS = ["--dataset", "digits"]
CURVE_TAIL = ["--limit", "16", "--timesteps", "2", "--batch-size", "16"]
CONVERT_TAIL = ["--calib-samples", "16", "--correction-samples", "16", "--timesteps", "2"]
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "ann": ".pt", "snn": ".snn.pt", "snn-onnx": ".snn.pt", "snn-pt2": ".snn.pt",
           "trained": ".pt", "npz": ".npz"}  # fmt: skip
FORMATS = tuple(SUFFIXES)
_SNN_SOURCES = {"snn": "ann", "snn-onnx": "onnx", "snn-pt2": "pt2"}


# ------------------------------------------------------------------ seeds
def make_seeds(folder: Path, formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """Valid files of ``formats`` (and of what their commands also read) in ``folder``.

    The digits CNN as ONNX, ``.pt2`` and ANN checkpoint; SNN files converted from each; a tiny
    train-snn checkpoint; an npz of 20 random 8x8 images. npz mutants are read by convert of the
    ANN checkpoint and by curve of its SNN file, so those are made for ``npz`` too.
    """
    from spikeconv.models import build_model
    from spikeconv.training import save_ann_checkpoint

    needed = set(formats) | ({"ann", "snn"} if "npz" in formats else set())
    needed |= {source for snn, source in _SNN_SOURCES.items() if snn in needed}
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()
    seeds = {name: folder / f"seed-{name}{suffix}" for name, suffix in SUFFIXES.items() if name in needed}
    if "onnx" in needed:
        torch.onnx.export(model, (torch.rand(1, *SHAPE),), str(seeds["onnx"]), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})  # fmt: skip
    if "pt2" in needed:
        torch.export.save(torch.export.export(model, (torch.rand(2, *SHAPE),)), seeds["pt2"])
    if "ann" in needed:
        save_ann_checkpoint(seeds["ann"], model=model, arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=None, std=None,
                            metadata={"seed": 0})  # fmt: skip
    for snn, source in _SNN_SOURCES.items():
        if snn in needed:
            _seed_command(["convert", str(seeds[source]), *DIGITS, "--calib-samples", "64", "--out", str(seeds[snn])])
    if "trained" in needed:
        _seed_command(["train-snn", *DIGITS, "--arch", "digits-cnn", "--epochs", "1", "--train-limit", "64", "--timesteps", "2",
                       "--batch-size", "64", "--out", str(seeds["trained"])])  # fmt: skip
    if "npz" in needed:
        rng = np.random.default_rng(0)
        np.savez(seeds["npz"], x=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), y=np.arange(20) % 10)
    return seeds


def _seed_command(argv: list[str]) -> None:
    code, _, err = run_cli(argv)
    if code != 0:
        raise RuntimeError(f"seed command {argv} failed: {err}")


# ------------------------------------------------------------------ running and judging
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``spikeconv.cli.main(argv)`` in this process, with stdout and stderr captured.

    Stderr is captured at the file-descriptor level too, so that what native code writes there
    (onnxruntime's and torch's C++ warnings) counts as a line the user would see.
    """
    from spikeconv.cli import main

    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryFile() as native, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(native.fileno(), 2)
        try:
            code = main(argv)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        native.seek(0)
        written = native.read().decode("utf-8", errors="replace")
    return code, out.getvalue(), written + err.getvalue()


def verdict(code: int, err: str) -> str:
    """``"worked"``, ``"error"`` (exit 2, one ``error:`` line) or ``"FAILED: <why>"``."""
    if "Traceback" in err:
        return "FAILED: traceback on stderr"
    if code == 0:
        return "worked"
    lines = err.splitlines()
    if code == 2 and len(lines) == 1 and lines[0].startswith("error:") and err.endswith("\n"):
        return "error"
    return f"FAILED: exit {code}, {len(lines)} stderr line(s)"


def command(fmt: str, mutant: Path, seeds: dict[str, Path], work: Path, index: int) -> list[str]:
    """The command that reads a mutant of ``fmt``: convert for model files, curve for SNN files, either for npz data."""
    if fmt in ("onnx", "pt2", "ann"):
        return ["convert", str(mutant), *DIGITS, *CONVERT_TAIL, "--out", str(work / "out.snn.pt")]
    if fmt == "npz":
        if index % 2 == 0:
            return ["convert", str(seeds["ann"]), "--dataset", f"npz:{mutant}", *CONVERT_TAIL, "--out", str(work / "out.snn.pt")]
        return ["curve", str(seeds["snn"]), "--dataset", f"npz:{mutant}", *CURVE_TAIL, "--json", str(work / "out.json")]
    return ["curve", str(mutant), *DIGITS, *CURVE_TAIL, "--json", str(work / "out.json")]


@dataclass(frozen=True)
class Outcome:
    """One mutant's run: what was done to the seed, the command (mutant path as ``MUTANT``), its exit status and stderr."""

    fmt: str
    index: int
    kind: str
    argv: tuple[str, ...]
    code: int
    err: str
    verdict: str
    mutant: bytes


def fuzz(fmt: str, seeds: dict[str, Path], work: Path, *, mutants: int, seed: int,
         run: Callable[[list[str]], tuple[int, str, str]] = run_cli) -> Iterator[Outcome]:  # fmt: skip
    """Run ``mutants`` mutants of ``seeds[fmt]``, drawn with ``random.Random(f"{seed}:{fmt}")``, through their command."""
    rng = random.Random(f"{seed}:{fmt}")
    original = seeds[fmt].read_bytes()
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"mutant{SUFFIXES[fmt]}"
    for index in range(mutants):
        data, kind = mutate(fmt, original, rng)
        path.write_bytes(data)
        for stale in work.glob("out.*"):
            stale.unlink()
        argv = command(fmt, path, seeds, work, index)
        code, _, err = run(argv)
        yield Outcome(fmt, index, kind, tuple(a.replace(str(path), "MUTANT") for a in argv), code, err, verdict(code, err), data)


# ------------------------------------------------------------------ byte-level mutations
_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x01", b"\xfe")


def _bitflip(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        bit = rng.randrange(len(buf) * 8)
        buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf), f"bitflip x{flips}"


def _overwrite(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at, size = rng.randrange(len(data)), rng.randint(1, 16)
    chunk = rng.choice(_INTERESTING) * size if rng.random() < 0.5 else rng.randbytes(size)
    return data[:at] + chunk + data[at + size :], f"overwrite {size}B@{at}"


def _truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at = rng.randrange(len(data))
    return data[:at], f"truncate@{at}"


def _duplicate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    start = rng.randrange(len(data))
    size = rng.randint(1, max(1, min(256, len(data) - start)))
    at = rng.randrange(len(data) + 1)
    return data[:at] + data[start : start + size] + data[at:], f"duplicate {size}B@{start}->{at}"


def _delete(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    start = rng.randrange(len(data))
    size = rng.randint(1, max(1, min(256, len(data) - start)))
    return data[:start] + data[start + size :], f"delete {size}B@{start}"


BYTE_MUTATIONS: tuple[Callable[[bytes, random.Random], tuple[bytes, str]], ...] = (_bitflip, _overwrite, _truncate, _duplicate,
                                                                                   _delete)  # fmt: skip


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One byte-level mutation (an empty input becomes one random byte)."""
    if not data:
        return rng.randbytes(1), "fill 1B"
    return rng.choice(BYTE_MUTATIONS)(data, rng)


# ------------------------------------------------------------------ zip-level mutations
def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive, _quiet_duplicates():
        for name, payload in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), payload)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_duplicates():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": a duplicated member is the mutation
        yield


def rezip(data: bytes, edit: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]) -> bytes:
    """The archive ``data`` with its member list passed through ``edit``, written again (stored, fixed dates)."""
    return _zip(edit([(info.filename, payload) for info, payload in _members(data)]))


def _pick_member(members: list[tuple[str, bytes]], rng: random.Random, prefer: Callable[[str], bool]) -> int:
    preferred = [i for i, (name, _) in enumerate(members) if prefer(name)]
    return rng.choice(preferred) if preferred and rng.random() < 0.7 else rng.randrange(len(members))


def mutate_member(data: bytes, rng: random.Random, prefer: Callable[[str], bool] = lambda name: True,
                  inner: Callable[[str, bytes, random.Random], tuple[bytes, str]] | None = None) -> tuple[bytes, str]:  # fmt: skip
    """Mutate one member's bytes (with ``inner(name, payload, rng)``, else byte-level) and re-zip."""
    members = [(info.filename, payload) for info, payload in _members(data)]
    index = _pick_member(members, rng, prefer)
    name, payload = members[index]
    payload, kind = inner(name, payload, rng) if inner is not None else mutate_bytes(payload, rng)
    members[index] = (name, payload)
    return _zip(members), f"member {name}: {kind}"


def mutate_zip_layout(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Drop, duplicate or rename one member."""
    members = [(info.filename, payload) for info, payload in _members(data)]
    index = rng.randrange(len(members))
    name, payload = members[index]
    action = rng.choice(("drop", "duplicate", "rename"))
    if action == "drop":
        del members[index]
    elif action == "duplicate":
        members.insert(rng.randrange(len(members) + 1), (name, rng.choice((payload, mutate_bytes(payload, rng)[0]))))
    else:
        folder, _, leaf = name.rpartition("/")
        new = rng.choice((f"{folder}/x{leaf}", f"other/{leaf}", leaf, f"{folder}/../{leaf}", f"{folder}/{leaf}.bak"))
        members[index] = (new.lstrip("/"), payload)
        action = f"rename to {new!r}"
    return _zip(members), f"zip {action} {name}"


# ------------------------------------------------------------------ structured (tree) mutations
_SCALARS: tuple[Any, ...] = (None, 0, -1, 1, 2**31, 2**63 - 1, -(2**40), 0.0, -0.0, 1e308, math.nan, math.inf, True, False, "",
                             "x", "digits-cnn", "onnx", "torch-export", "spikeconv-snn", "spikeconv-ann",
                             "spikeconv-snn-trained", "mlp", "12Q3", [], {}, [0], [1, 8, 8], [0, 0, 0], [-1, 8, 8],
                             [1, 100000, 100000], {"kind": "qcfs"})  # fmt: skip


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into the containers of ``tree``, the root included."""
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            found += _paths(value, (*prefix, index))
    return found


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Any, path: tuple, value: Any) -> Any:
    """``tree`` with the value at ``path`` replaced (a new tree along the path; tuples stay tuples)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, head: _set(tree[head], rest, value)}
    items = list(tree)
    items[head] = _set(items[head], rest, value)
    return tuple(items) if isinstance(tree, tuple) else items


def _delete_at(tree: Any, path: tuple) -> Any:
    parent = _get(tree, path[:-1])
    if isinstance(parent, dict):
        new = {k: v for k, v in parent.items() if k != path[-1]}
    else:
        new = [v for i, v in enumerate(parent) if i != path[-1]]
        new = tuple(new) if isinstance(parent, tuple) else new
    return _set(tree, path[:-1], new)


def _mutate_tensor(value: torch.Tensor, rng: random.Random, embedded: Callable | None) -> tuple[Any, str]:
    if embedded is not None and value.dtype == torch.uint8 and value.dim() == 1 and value.numel() > 256:
        data, kind = embedded(bytes(value.numpy().tobytes()), rng)
        return torch.frombuffer(bytearray(data or b"\x00"), dtype=torch.uint8).clone(), f"embedded model: {kind}"
    choice = rng.randrange(8)
    if choice == 0 and value.is_floating_point() and value.numel():
        filled = value.clone()
        filled.view(-1)[rng.randrange(value.numel())] = rng.choice((math.nan, math.inf, -math.inf, 1e30))
        return filled, "tensor element -> nan/inf/huge"
    if choice == 1:
        return value.flatten()[: max(0, value.numel() - rng.randint(1, 4))].clone(), "tensor shortened"
    if choice == 2:
        return value.reshape(-1).clone(), "tensor flattened"
    if choice == 3:
        return value.to(rng.choice((torch.float16, torch.float64, torch.int64, torch.bool, torch.uint8, torch.complex64))), "tensor dtype"
    if choice == 4:
        return torch.zeros((0,)), "tensor emptied"
    if choice == 5:
        grown = torch.cat([value.flatten(), value.flatten()]).reshape(2, *value.shape) if value.dim() else value.reshape(1, 1)
        return grown, "tensor grown"
    if choice == 6:
        return torch.tensor(rng.choice((0.0, 1e30, -5.0))), "tensor -> scalar"
    return rng.choice(_SCALARS), "tensor -> primitive"


def _mutate_leaf(value: Any, rng: random.Random, embedded: Callable | None) -> tuple[Any, str]:
    if isinstance(value, torch.Tensor):
        return _mutate_tensor(value, rng, embedded)
    if isinstance(value, bool) or value is None:
        return rng.choice(_SCALARS), "primitive replaced"
    if isinstance(value, int):
        return rng.choice((value + 1, value - 1, -value, value * 1000, 0, 2**62, rng.choice(_SCALARS))), "int changed"
    if isinstance(value, float):
        return rng.choice((math.nan, math.inf, -value, value * 1e6, 0.0, rng.choice(_SCALARS))), "float changed"
    if isinstance(value, str):
        return rng.choice((value[::-1], value + "x", value.upper(), "", "../../etc/passwd", rng.choice(_SCALARS))), "str changed"
    return rng.choice(_SCALARS), "value replaced"


def mutate_tree(tree: Any, rng: random.Random, *, embedded: Callable | None = None, pool: tuple = _SCALARS) -> tuple[Any, str]:
    """One change somewhere in a nested dict/list/tuple tree: delete a key or item, or replace or re-type a value."""
    paths = _paths(tree)
    models = [p for p in paths if isinstance(_get(tree, p), torch.Tensor) and _get(tree, p).dtype == torch.uint8
              and _get(tree, p).dim() == 1 and _get(tree, p).numel() > 256]  # fmt: skip
    path = rng.choice(models) if embedded is not None and models and rng.random() < 0.4 else rng.choice(paths)
    where = "/".join(map(str, path)) or "<root>"
    value = _get(tree, path)
    if path and rng.random() < 0.2:
        return _delete_at(tree, path), f"delete {where}"
    if isinstance(value, (dict, list, tuple)) and rng.random() < 0.5:
        return _set(tree, path, rng.choice(pool)), f"replace container {where}"
    if isinstance(value, (dict, list, tuple)):
        if isinstance(value, dict):
            key = rng.choice(("format_version", "kind", "extra", "state_dict"))
            return _set(tree, path, {**value, key: rng.choice(pool)}), f"add key {key!r} to {where}"
        return _set(tree, path, type(value)([*value, *value])), f"double items of {where}"
    new, kind = _mutate_leaf(value, rng, embedded)
    return _set(tree, path, new), f"{where}: {kind}"


# ------------------------------------------------------------------ format-specific structured mutations
def mutate_torch_payload(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Load our own seed weights-only, change one value of the payload, save it again."""
    payload = torch.load(io.BytesIO(data), weights_only=True)

    def embedded(blob: bytes, inner: random.Random) -> tuple[bytes, str]:
        if blob[:2] == b"PK":
            return mutate("pt2", blob, inner)
        try:
            return mutate("onnx", blob, inner)
        except Exception:  # not ONNX bytes after all (e.g. an optimizer's uint8 state)
            return mutate_bytes(blob, inner)

    payload, kind = mutate_tree(payload, rng, embedded=embedded)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue(), f"payload {kind}"


def _mutate_json(name: str, payload: bytes, rng: random.Random) -> tuple[bytes, str]:
    if not name.endswith(".json"):
        return mutate_bytes(payload, rng)
    tree = json.loads(payload)
    pool = tuple(v for v in _SCALARS if not (isinstance(v, float) and not math.isfinite(v))) + ("aten.relu.default", "builtins.eval",
                                                                                                 "torch.ops.aten.add.Tensor")  # fmt: skip
    for _ in range(rng.randint(1, 3)):
        tree, kind = mutate_tree(tree, rng, pool=pool)
    return json.dumps(tree).encode(), f"json {kind}"


def _mutate_torch_member(name: str, payload: bytes, rng: random.Random) -> tuple[bytes, str]:
    if name.endswith("data.pkl") and rng.random() < 0.5:
        return _pickle_opcode_edit(payload, rng)
    if name.endswith(".pt") and payload[:2] == b"PK":  # the sample inputs of a .pt2
        return mutate_member(payload, rng)
    return mutate_bytes(payload, rng)


def _pickle_opcode_edit(payload: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Replace one pickle opcode's argument bytes or the opcode itself (the unpickler sees a plausible stream)."""
    import pickletools

    ops = list(pickletools.genops(payload))
    op, _, at = rng.choice(ops[:-1]) if len(ops) > 1 else ops[0]
    end = next((pos for _, _, pos in ops if pos > at), len(payload))
    if rng.random() < 0.5:
        other = rng.choice([o.code.encode("latin-1") for o in pickletools.opcodes])
        return payload[:at] + other + payload[at + 1 :], f"pickle opcode {op.name}@{at} -> {other!r}"
    return payload[:at + 1] + rng.randbytes(max(0, end - at - 1)) + payload[end:], f"pickle argument of {op.name}@{at} randomised"


def mutate_onnx_proto(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Edit one field of the ONNX model: an op type, attribute, initializer, shape, opset or external-data record."""
    import onnx

    model = onnx.load_model_from_string(data)
    graph = model.graph
    choice = rng.randrange(9)
    if choice == 0 and graph.node:
        node = rng.choice(graph.node)
        node.op_type = rng.choice(("LSTM", "Foo", "Relu", "Conv", "Gemm", "MaxPool", "Softmax", "Loop", ""))
        return model.SerializeToString(), f"onnx op {node.name} -> {node.op_type!r}"
    if choice == 1 and graph.node:
        index = rng.randrange(len(graph.node))
        del graph.node[index]
        return model.SerializeToString(), f"onnx node {index} deleted"
    if choice == 2:
        nodes = [n for n in graph.node if n.attribute]
        if nodes:
            attribute = rng.choice(rng.choice(nodes).attribute)
            if attribute.ints:
                attribute.ints[rng.randrange(len(attribute.ints))] = rng.choice((0, -1, 2**40, 100))
            else:
                attribute.i, attribute.f = rng.choice((0, -1, 2**40)), rng.choice((math.nan, -1.0, 1e30))
            return model.SerializeToString(), f"onnx attribute {attribute.name} changed"
    if choice == 3 and graph.initializer:
        tensor = rng.choice(graph.initializer)
        if tensor.dims:
            tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice((0, 1, 3, 2**31, -1))
        return model.SerializeToString(), f"onnx initializer {tensor.name} dims changed"
    if choice == 4 and graph.initializer:
        tensor = rng.choice(graph.initializer)
        tensor.raw_data = tensor.raw_data[: rng.randrange(len(tensor.raw_data) + 1)]
        return model.SerializeToString(), f"onnx initializer {tensor.name} raw data cut"
    if choice == 5 and graph.initializer:
        tensor = rng.choice(graph.initializer)
        location = rng.choice(("weights.bin", "../outside.bin", "/etc/hostname", "sub/../../x", ""))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        tensor.external_data.add(key="location", value=location)
        if rng.random() < 0.5:
            tensor.external_data.add(key="offset", value=rng.choice(("0", "-5", "99999999", "x")))
        tensor.ClearField("raw_data")
        return model.SerializeToString(), f"onnx initializer {tensor.name} external {location!r}"
    if choice == 6 and graph.input:
        dims = graph.input[0].type.tensor_type.shape.dim
        if dims:
            dim = dims[rng.randrange(len(dims))]
            if rng.random() < 0.5:
                dim.dim_value = rng.choice((0, 1, 3, 28, 2**55))  # 2**55: more bytes than any address space, never allocated
            else:
                dim.dim_param = rng.choice(("n", "h", ""))
            return model.SerializeToString(), "onnx input dim changed"
    if choice == 7 and model.opset_import:
        model.opset_import[0].version = rng.choice((1, 7, 9, 13, 30, 10**6))
        return model.SerializeToString(), f"onnx opset -> {model.opset_import[0].version}"
    if choice == 8 and graph.node:
        node = rng.choice(graph.node)
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(("missing", "", graph.output[0].name if graph.output else "y"))
            return model.SerializeToString(), f"onnx input of {node.name} rewired"
    model.ir_version = rng.choice((0, 1, 3, 100))
    return model.SerializeToString(), f"onnx ir_version -> {model.ir_version}"


def _npz_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def mutate_npz_arrays(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Replace x or y by an array of another dtype, shape or value range (or rename/drop one)."""
    arrays = _npz_arrays(data)
    x, y = arrays["x"], arrays["y"]
    n = len(x)
    x_options = {
        "x float nan": lambda: np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x / 255.0),
        "x float16": lambda: (x / 255.0).astype(np.float16),
        "x int32": lambda: x.astype(np.int32),
        "x bool": lambda: x > 128,
        "x complex": lambda: x.astype(np.complex64),
        "x big-endian": lambda: (x / 255.0).astype(">f4"),
        "x flat": lambda: x.reshape(n, -1),
        "x 5-d": lambda: x.reshape(n, 1, 8, 8, 1),
        "x 3 channels": lambda: np.repeat(x[:, None], 3, axis=1),
        "x zero-size": lambda: x[:, :0],
        "x empty": lambda: x[:0],
        "x huge values": lambda: np.full(x.shape, 1e30, np.float32),
        "x scalar": lambda: np.array(3.0),
        "x strings": lambda: np.array(["a"] * n),
        "x 28x28": lambda: np.zeros((n, 28, 28), np.uint8),
        "x 1x1": lambda: np.zeros((n, 1, 1), np.uint8),
    }
    y_options = {
        "y float": lambda: y.astype(np.float32),
        "y negative": lambda: y - 5,
        "y huge": lambda: y + 2**40,
        "y uint64 max": lambda: np.full(n, np.iinfo(np.uint64).max, np.uint64),
        "y one-hot": lambda: np.eye(10, dtype=np.int64)[y],
        "y short": lambda: y[:-1],
        "y empty": lambda: y[:0],
        "y bool": lambda: y > 4,
        "y scalar": lambda: np.array(1),
        "y int8": lambda: y.astype(np.int8),
        "y 2-d column": lambda: y[:, None],
        "y strings": lambda: y.astype(str),
    }
    choice = rng.randrange(10)
    if choice < 5:
        kind = rng.choice(sorted(x_options))
        arrays["x"] = x_options[kind]()
    elif choice < 9:
        kind = rng.choice(sorted(y_options))
        arrays["y"] = y_options[kind]()
    else:
        key = rng.choice(("x", "y"))
        kind = f"array {key} renamed"
        arrays[key.upper()] = arrays.pop(key)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue(), f"npz {kind}"


def _mutate_npy_header(name: str, payload: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Edit the dict in an .npy member's header: descr, fortran_order or shape."""
    end = payload.find(b"}")
    if not name.endswith(".npy") or end < 0 or rng.random() < 0.3:
        return mutate_bytes(payload, rng)
    header = payload[:end + 1].decode("latin-1")
    edits = (("'descr': '", rng.choice(("'descr': '|O", "'descr': '<U", "'descr': '<V", "'descr': '>", "'descr': 'z"))),
             ("'fortran_order': False", "'fortran_order': True"),
             ("'shape': (", rng.choice(("'shape': (0, ", "'shape': (1000000000000000, ", "'shape': (-1, ", "'shape': (2, 2, ",
                                        "'shape': ("))),
             ("'shape': (", "'shape': ((1,), "))  # fmt: skip
    old, new = rng.choice(edits)
    return (header.replace(old, new, 1).encode("latin-1") + payload[end + 1 :]), f"npy header {old!r} -> {new!r}"


# ------------------------------------------------------------------ dispatch
def mutate(fmt: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One mutant of a seed of format ``fmt``: its bytes and a short description of the mutation."""
    roll = rng.random()
    if roll < 0.25:
        return mutate_bytes(data, rng)
    if fmt == "onnx":
        return mutate_onnx_proto(data, rng)
    if roll < 0.35:
        return mutate_zip_layout(data, rng)
    if fmt == "npz":
        return mutate_npz_arrays(data, rng) if roll < 0.7 else mutate_member(data, rng, inner=_mutate_npy_header)
    if fmt == "pt2":
        if roll < 0.7:
            return mutate_member(data, rng, prefer=lambda name: name.endswith(".json"), inner=_mutate_json)
        return mutate_member(data, rng, inner=_mutate_torch_member)
    # torch files: the ANN checkpoint, SNN files and the train-snn checkpoint
    if roll < 0.75:
        return mutate_torch_payload(data, rng)
    return mutate_member(data, rng, prefer=lambda name: name.endswith("data.pkl"), inner=_mutate_torch_member)
