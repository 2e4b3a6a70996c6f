"""Hostile files, built by the tests themselves, that try to make spikeconv run code or read beside a file.

Each case builds its files in a folder and returns the argv of the command that reads them. A
payload that runs creates the *sentinel* file (``open(sentinel, "w")`` called by the unpickler, no
shell), so a test can tell whether anything ran. Every case must end with exit 2, one ``error:``
line naming the file, and no sentinel. Commands run with the case's folder as the current folder
(so that a reference resolved against it would find its target). ``tests/reliability`` renders
these rows into docs/reliability.md.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from spikeconv.models import build_model

SHAPE = (1, 8, 8)
CONVERT = ("--dataset", "digits", "--calib-samples", "32")
CURVE = ("--dataset", "digits", "--limit", "8", "--timesteps", "2")


class Payload:
    """Unpickling this calls ``open(sentinel, "w")``: the file appears only if a pickle was executed."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


@dataclass(frozen=True)
class HostileCase:
    """One hostile input: ``build(folder, sentinel)`` writes it and returns the argv that reads it."""

    name: str
    what: str
    build: Callable[[Path, Path], list[str]]
    reads: str  # the file the message must name (its file name)


# ------------------------------------------------------------------ valid material to start from
def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()


def _pt2_entries() -> dict[str, bytes]:
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(_model(), (torch.rand(2, *SHAPE),)), buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(entries: dict[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in items:
            archive.writestr(name, data)
    return buffer.getvalue()


def _pickled(sentinel: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"x": Payload(sentinel)}, buffer)
    return buffer.getvalue()


def _folder(entries: dict[str, bytes]) -> str:
    return next(iter(entries)).split("/", 1)[0]


def _edit_config(entries: dict[str, bytes], suffix: str, edit: Callable[[dict], None]) -> dict[str, bytes]:
    name = next(n for n in entries if n.endswith(suffix))
    config = json.loads(entries[name])
    edit(config)
    return {**entries, name: json.dumps(config).encode()}


# ------------------------------------------------------------------ model files (convert)
def _convert(path: Path, folder: Path) -> list[str]:
    return ["convert", str(path), *CONVERT, "--out", str(folder / "out.snn.pt")]


def _pt_reduce(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload(sentinel)}, path)
    return _convert(path, folder) + ["--arch", "digits-cnn"]


def _pickle_named_onnx(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "model.onnx"
    path.write_bytes(_pickled(sentinel))
    return _convert(path, folder)


def _raw_pickle(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "model.bin"
    path.write_bytes(pickle.dumps(Payload(sentinel), protocol=4))
    return _convert(path, folder)


def _spikeconv_ann(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "ann.pt"
    torch.save({"format": "spikeconv-ann", "format_version": 1, "arch": "digits-cnn", "metadata": Payload(sentinel)}, path)
    return _convert(path, folder)


def _pt2_legacy(folder: Path, sentinel: Path) -> list[str]:
    """The layout torch.export.load falls back to, which unpickles serialized_constants.pt (issue 14's attack)."""
    path = folder / "model.pt2"
    path.write_bytes(_zip({"archive_format": b"pt2", "version": b"8.0.0", "serialized_exported_program.json": b"{}",
                           "serialized_state_dict.pt": _pickled(sentinel), "serialized_constants.pt": _pickled(sentinel)}))  # fmt: skip
    return _convert(path, folder)


def _pt2_pickled_weight(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()

    def edit(config: dict) -> None:
        next(iter(config["config"].values()))["use_pickle"] = True

    entries = _edit_config(entries, "_weights_config.json", edit)
    weight = next(n for n in entries if n.endswith("/data/weights/weight_0"))
    entries[weight] = _pickled(sentinel)
    path = folder / "model.pt2"
    path.write_bytes(_zip(entries))
    return _convert(path, folder)


def _pt2_custom_object(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    root = _folder(entries)

    def edit(config: dict) -> None:
        config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}

    entries = _edit_config(entries, "_constants_config.json", edit)
    entries[f"{root}/data/constants/opaque_obj_0"] = pickle.dumps(Payload(sentinel))
    path = folder / "model.pt2"
    path.write_bytes(_zip(entries))
    return _convert(path, folder)


def _pt2_sample_inputs(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    name = next(n for n in entries if n.endswith("/data/sample_inputs/model.pt"))
    entries[name] = _pickled(sentinel)
    path = folder / "model.pt2"
    path.write_bytes(_zip(entries))
    return _convert(path, folder)


def _pt2_native_library(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    entries[f"{_folder(entries)}/data/aotinductor/model/model.so"] = b"\x7fELF" + bytes(60)
    path = folder / "model.pt2"
    path.write_bytes(_zip(entries))
    return _convert(path, folder)


def _pt2_two_folders(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    entries["other/data/constants/model.pt"] = _pickled(sentinel)
    path = folder / "model.pt2"
    path.write_bytes(_zip(entries))
    return _convert(path, folder)


def _pt2_duplicate_entry(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    name = next(n for n in entries if n.endswith("/data/sample_inputs/model.pt"))
    path = folder / "model.pt2"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, which is the point
        path.write_bytes(_zip([*entries.items(), (name, _pickled(sentinel))]))
    return _convert(path, folder)


def _pt2_foreign_call(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    name = next(n for n in entries if n.endswith("/models/model.json"))
    entries[name] = entries[name].replace(b"torch.ops.aten.relu.default", b"torch.os.getcwd")
    path = folder / "model.pt2"
    path.write_bytes(_zip(entries))
    return _convert(path, folder)


def _onnx_with_external(folder: Path, location: str) -> Path:
    """A valid ONNX model whose first initializer's data lives in ``location``."""
    model = _model()
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.rand(1, *SHAPE),), buffer, dynamo=False, input_names=["x"])
    proto = onnx.load_model_from_string(buffer.getvalue())
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    path = folder / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def _onnx_absolute(folder: Path, sentinel: Path) -> list[str]:
    return _convert(_onnx_with_external(folder, "/etc/passwd"), folder)


def _onnx_parent(folder: Path, sentinel: Path) -> list[str]:
    (folder.parent / "secret.bin").write_bytes(bytes(4096))
    return _convert(_onnx_with_external(folder, f"../{folder.parent.name}/../secret.bin"), folder)


def _onnx_link_out(folder: Path, sentinel: Path) -> list[str]:
    outside = folder.parent / "outside.bin"
    outside.write_bytes(bytes(4096))
    (folder / "weights.bin").symlink_to(outside)
    return _convert(_onnx_with_external(folder, "weights.bin"), folder)


# ------------------------------------------------------------------ SNN files and checkpoints (curve)
def _snn_file(folder: Path, payload: dict) -> Path:
    path = folder / "net.snn.pt"
    torch.save(payload, path)
    return path


def _curve(path: Path) -> list[str]:
    return ["curve", str(path), *CURVE]


def _snn_reduce(folder: Path, sentinel: Path) -> list[str]:
    return _curve(_snn_file(folder, {"format": "spikeconv-snn", "format_version": 1, "info": Payload(sentinel)}))


def _trained_reduce(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "snn.pt"
    torch.save({"format": "spikeconv-snn-trained", "format_version": 1, "metadata": Payload(sentinel)}, path)
    return _curve(path)


def _embedded(source: dict) -> dict:
    return {"format": "spikeconv-snn", "format_version": 1, "ann": source, "plan": {"sites": {}}, "convert": {},
            "state_dict": {}, "info": {"input_shape": list(SHAPE), "num_classes": 10, "preprocessing": None}}  # fmt: skip


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _snn_embedded_pt2_legacy(folder: Path, sentinel: Path) -> list[str]:
    data = _zip({"archive_format": b"pt2", "version": b"8.0.0", "serialized_exported_program.json": b"{}",
                 "serialized_state_dict.pt": _pickled(sentinel), "serialized_constants.pt": _pickled(sentinel)})  # fmt: skip
    source = {"kind": "torch-export", "name": "model.pt2", "pt2_bytes": _bytes_tensor(data), "input_shape": list(SHAPE),
              "preprocessing": None}  # fmt: skip
    return _curve(_snn_file(folder, _embedded(source)))


def _snn_embedded_pt2_pickled(folder: Path, sentinel: Path) -> list[str]:
    entries = _pt2_entries()
    name = next(n for n in entries if n.endswith("/data/sample_inputs/model.pt"))
    entries[name] = _pickled(sentinel)
    source = {"kind": "torch-export", "name": "model.pt2", "pt2_bytes": _bytes_tensor(_zip(entries)), "input_shape": list(SHAPE),
              "preprocessing": None}  # fmt: skip
    return _curve(_snn_file(folder, _embedded(source)))


def _snn_embedded_onnx_external(folder: Path, sentinel: Path) -> list[str]:
    """ONNX bytes inside an SNN file naming external data: onnxruntime would read it from the current folder."""
    onnx_path = _onnx_with_external(folder, "weights.bin")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    tensor = copy.deepcopy(proto.graph.initializer[0])
    (folder / "weights.bin").write_bytes(numpy_helper.to_array(tensor).tobytes() if tensor.raw_data else bytes(4096))
    source = {"kind": "onnx", "name": "model.onnx", "onnx_bytes": _bytes_tensor(proto.SerializeToString()), "input_shape": list(SHAPE),
              "preprocessing": None}  # fmt: skip
    onnx_path.unlink()
    return _curve(_snn_file(folder, _embedded(source)))


def _compare_ann(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "ann.pt"
    torch.save({"format": "spikeconv-ann", "arch": "digits-cnn", "state_dict": Payload(sentinel)}, path)
    return ["compare", "--arch", "digits-cnn", "--dataset", "digits", "--methods", "ann,calibrated", "--checkpoint", f"ann={path}",
            "--out-dir", str(folder / "report"), "--limit", "8", "--timesteps", "1,2", "--calib-samples", "32"]  # fmt: skip


def _compare_trained(folder: Path, sentinel: Path) -> list[str]:
    path = folder / "srif.pt"
    torch.save({"format": "spikeconv-snn-trained", "format_version": 1, "state_dict": Payload(sentinel)}, path)
    return ["compare", "--arch", "digits-cnn", "--dataset", "digits", "--methods", "srif", "--checkpoint", f"srif={path}",
            "--out-dir", str(folder / "report"), "--limit", "8", "--timesteps", "1,2"]  # fmt: skip


def _nir_file(folder: Path) -> Path:
    """A valid NIR graph for 1x8x8 digits (Flatten -> Affine -> IF -> Affine), to be made hostile with h5py."""
    import nir
    import numpy as np

    gen = np.random.default_rng(0)
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array(SHAPE)}),
        "flat": nir.Flatten(input_type={"input": np.array(SHAPE)}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=gen.normal(size=(16, 64)).astype(np.float32), bias=np.zeros(16, np.float32)),
        "fire": nir.IF(r=np.ones(16, np.float32), v_threshold=np.ones(16, np.float32), v_reset=np.zeros(16, np.float32)),
        "fc2": nir.Linear(weight=gen.normal(size=(10, 16)).astype(np.float32)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }, edges=[("input", "flat"), ("flat", "fc1"), ("fc1", "fire"), ("fire", "fc2"), ("fc2", "output")])  # fmt: skip
    path = folder / "net.nir"
    nir.write(path, graph)
    return path


def _replace_weight(folder: Path, make) -> list[str]:
    """The NIR file with fc1's weight replaced by ``make(h5file, name, shape, dtype)``, read by ``curve``."""
    import h5py

    path = _nir_file(folder)
    with h5py.File(path, "r+") as handle:
        group = handle["node/nodes/fc1"]
        shape, dtype = group["weight"].shape, group["weight"].dtype
        del group["weight"]
        make(group, "weight", shape, dtype)
    return _curve(path)


def _nir_external_link(folder: Path, sentinel: Path) -> list[str]:
    import h5py
    import numpy as np

    with h5py.File(folder / "secret.h5", "w") as other:
        other["w"] = np.ones((16, 64), np.float32)

    def make(group, name, shape, dtype):
        group[name] = h5py.ExternalLink("secret.h5", "/w")

    return _replace_weight(folder, make)


def _nir_external_storage(folder: Path, sentinel: Path) -> list[str]:
    (folder / "secret.bin").write_bytes(b"\x00" * 4096)

    def make(group, name, shape, dtype):
        group.create_dataset(name, shape=shape, dtype=dtype, external=[("secret.bin", 0, 4096)])

    return _replace_weight(folder, make)


def _nir_virtual(folder: Path, sentinel: Path) -> list[str]:
    import h5py
    import numpy as np

    with h5py.File(folder / "secret.h5", "w") as other:
        other["w"] = np.ones((16, 64), np.float32)

    def make(group, name, shape, dtype):
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[:] = h5py.VirtualSource("secret.h5", "w", shape=shape)
        group.create_virtual_dataset(name, layout)

    return _replace_weight(folder, make)


def _nir_declared_bomb(folder: Path, sentinel: Path) -> list[str]:
    def make(group, name, shape, dtype):  # a few bytes on disk, 32 GiB when read
        group.create_dataset(name, shape=(1 << 33,), dtype="float32", chunks=(1 << 20,), compression="gzip")

    return _replace_weight(folder, make)


HOSTILE_CASES = [
    HostileCase("pt-reduce", "torch file with a __reduce__ payload beside its weights", _pt_reduce, "model.pt"),
    HostileCase("pickle-named-onnx", "a torch pickle with a payload, named .onnx", _pickle_named_onnx, "model.onnx"),
    HostileCase("raw-pickle", "a plain pickle (protocol 4) with a payload", _raw_pickle, "model.bin"),
    HostileCase("ann-checkpoint-reduce", "spikeconv ANN checkpoint whose metadata is a payload", _spikeconv_ann, "ann.pt"),
    HostileCase("pt2-legacy-layout", ".pt2 in the older top-level layout with pickled constants", _pt2_legacy, "model.pt2"),
    HostileCase("pt2-pickled-weight", ".pt2 whose weight is marked use_pickle and holds a payload", _pt2_pickled_weight, "model.pt2"),
    HostileCase("pt2-opaque-object", ".pt2 with an opaque (pickled) constant", _pt2_custom_object, "model.pt2"),
    HostileCase("pt2-sample-inputs", ".pt2 whose sample inputs are a payload", _pt2_sample_inputs, "model.pt2"),
    HostileCase("pt2-native-library", ".pt2 carrying an AOTInductor shared library", _pt2_native_library, "model.pt2"),
    HostileCase("pt2-two-folders", ".pt2 with a second archive folder holding a payload", _pt2_two_folders, "model.pt2"),
    HostileCase("pt2-duplicate-entry", ".pt2 with a duplicated entry name (a parser differential)", _pt2_duplicate_entry, "model.pt2"),
    HostileCase("pt2-foreign-call", ".pt2 whose graph calls a Python function reachable from torch", _pt2_foreign_call, "model.pt2"),
    HostileCase("onnx-external-absolute", "ONNX external data at an absolute path", _onnx_absolute, "model.onnx"),
    HostileCase("onnx-external-parent", "ONNX external data outside its folder through ..", _onnx_parent, "model.onnx"),
    HostileCase("onnx-external-link", "ONNX external data through a link leaving its folder", _onnx_link_out, "model.onnx"),
    HostileCase("snn-reduce", "SNN file with a __reduce__ payload", _snn_reduce, "net.snn.pt"),
    HostileCase("trained-reduce", "train-snn checkpoint with a __reduce__ payload", _trained_reduce, "snn.pt"),
    HostileCase("snn-embedded-pt2-legacy", "SNN file embedding the older-layout .pt2 attack", _snn_embedded_pt2_legacy, "net.snn.pt"),
    HostileCase("snn-embedded-pt2-pickled", "SNN file embedding a .pt2 with pickled sample inputs", _snn_embedded_pt2_pickled,
                "net.snn.pt"),
    HostileCase("snn-embedded-onnx-external", "SNN file embedding ONNX that names external data in the current folder",
                _snn_embedded_onnx_external, "net.snn.pt"),
    HostileCase("compare-ann-reduce", "compare --checkpoint ann= with a payload", _compare_ann, "ann.pt"),
    HostileCase("compare-trained-reduce", "compare --checkpoint srif= with a payload", _compare_trained, "srif.pt"),
    HostileCase("nir-external-link", "NIR (HDF5) file whose weight is an external link to another file", _nir_external_link, "net.nir"),
    HostileCase("nir-external-storage", "NIR file whose weight's bytes live in another file", _nir_external_storage, "net.nir"),
    HostileCase("nir-virtual-dataset", "NIR file whose weight is a virtual dataset mapping another file", _nir_virtual, "net.nir"),
    HostileCase("nir-declared-bomb", "NIR file of a few KB declaring a 32 GiB weight", _nir_declared_bomb, "net.nir"),
]
