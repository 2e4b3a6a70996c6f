"""Every bad input spikeconv is tried on, as a registry that docs/reliability.md is generated from.

A case writes the files it needs into a folder and returns the argv of the command that reads
them. Every case runs with that folder as the current folder, and must end with exit status 2 and
exactly one stderr line starting with ``error:`` (tests/reliability/test_reliability_table.py).
File names are placeholders (``MODEL.onnx``, ``ANN.pt``, ``SNN.snn.pt``, ``OUT.snn.pt``), so the
rendered table shows messages as a user would see them with those names. Valid material (an ONNX
export, checkpoints, SNN files) is made once per process and copied.

The hostile-file corpus (tests/security/hostile_corpus.py, ``HOSTILE_CASES``) is rendered too,
with its sentinel check: a payload that ran would have created the sentinel file.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import shlex
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

SHAPE = (1, 8, 8)
DIGITS = ["--dataset", "digits"]
CALIB = ["--calib-samples", "16"]
CURVE = ["--limit", "16", "--timesteps", "2"]
SECURITY = Path(__file__).resolve().parents[1] / "security" / "hostile_corpus.py"


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(folder)`` writes its files there and returns the argv (paths relative to ``folder``)."""

    group: str
    name: str
    build: Callable[[Path], list[str]]
    sentinel: bool = False  # a hostile file: the run must not create the sentinel


# ------------------------------------------------------------------ valid material, made once per process
def _digits_model(num_classes: int = 10, shape: tuple[int, ...] = SHAPE) -> nn.Module:
    from spikeconv.models import build_model

    torch.manual_seed(0)
    return build_model("digits-cnn", input_shape=shape, num_classes=num_classes).eval()


def _onnx_bytes(model: nn.Module, shape: tuple[int, ...] = SHAPE) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.rand(1, *shape),), buffer, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return buffer.getvalue()


@functools.cache
def material(kind: str) -> bytes:
    """Bytes of a valid file: ``onnx``, ``onnx-5-classes``, ``onnx-28x28``, ``ann``, ``snn``, ``trained``."""
    from spikeconv.cli import main
    from spikeconv.training import save_ann_checkpoint

    if kind == "onnx":
        return _onnx_bytes(_digits_model())
    if kind == "onnx-5-classes":
        return _onnx_bytes(_digits_model(num_classes=5))
    if kind == "onnx-28x28":
        return _onnx_bytes(_digits_model(shape=(1, 28, 28)), shape=(1, 28, 28))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.pt"
        if kind == "ann":
            save_ann_checkpoint(path, model=_digits_model(), arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=None, std=None,
                                metadata={})  # fmt: skip
        elif kind == "snn":
            (Path(tmp) / "ann.pt").write_bytes(material("ann"))
            _quiet(main, ["convert", str(Path(tmp) / "ann.pt"), *DIGITS, *CALIB, "--out", str(path)])
        elif kind == "trained":
            _quiet(main, ["train-snn", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--train-limit", "32", "--batch-size", "32",
                          "--timesteps", "2", "--out", str(path)])  # fmt: skip
        else:
            raise KeyError(kind)
        return path.read_bytes()


def _quiet(main, argv: list[str]) -> None:
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"making material with {argv} failed (exit {code})")


def _put(folder: Path, name: str, data: bytes | str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return name


def _npz(folder: Path, name: str, **arrays) -> str:
    np.savez(folder / name, **arrays)
    return name


def _torch_file(folder: Path, name: str, payload) -> str:
    torch.save(payload, folder / name)
    return name


def _edited_torch(kind: str, edit: Callable[[dict], None]) -> dict:
    payload = torch.load(io.BytesIO(material(kind)), weights_only=True)
    edit(payload)
    return payload


def _edited_onnx(edit: Callable[[onnx.ModelProto], None], kind: str = "onnx") -> bytes:
    model = onnx.load_model_from_string(material(kind))
    edit(model)
    return model.SerializeToString()


def _convert(model: str, *extra: str, out: str = "OUT.snn.pt", data: list[str] = DIGITS) -> list[str]:
    return ["convert", model, *data, *CALIB, *extra, "--out", out]


def _npz_data(folder: Path, **arrays) -> list[str]:
    return ["--dataset", f"npz:{_npz(folder, 'DATA.npz', **arrays)}"]


def _ann_on(folder: Path, data: list[str]) -> list[str]:
    """convert of a valid ANN checkpoint on ``data``."""
    return _convert(_put(folder, "ANN.pt", material("ann")), data=data)


def _curve(*snns: str, data: list[str] = DIGITS, extra: tuple[str, ...] = ()) -> list[str]:
    return ["curve", *snns, *data, *CURVE, *extra]


# ------------------------------------------------------------------ model files given to convert
def _ann(folder: Path) -> str:
    return _put(folder, "ANN.pt", material("ann"))


def _onnx(folder: Path) -> str:
    return _put(folder, "MODEL.onnx", material("onnx"))


def _snn(folder: Path) -> str:
    return _put(folder, "SNN.snn.pt", material("snn"))


def _trained(folder: Path) -> str:
    return _put(folder, "TRAINED.pt", material("trained"))


def _folder(folder: Path, name: str) -> str:
    (folder / name).mkdir()
    return name


def _unsupported_onnx(folder: Path) -> list[str]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(144, 10)).eval()
    return _convert(_put(folder, "MODEL.onnx", _onnx_bytes(model)))


def _nan_onnx(folder: Path) -> list[str]:
    def edit(model: onnx.ModelProto) -> None:
        tensor = model.graph.initializer[0]
        values = numpy_helper.to_array(tensor).copy()
        values.flat[0] = np.nan
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))

    return _convert(_put(folder, "MODEL.onnx", _edited_onnx(edit)))


def _torchscript(folder: Path) -> list[str]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(_digits_model()).save(str(folder / "MODEL.pt"))
    return _convert("MODEL.pt")


FACTORY = textwrap.dedent("""
    from torch import nn

    def number():
        return 3

    def wrong_shape():
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
""")


def _factory(function: str) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        return ["convert", "--model-factory", f"{_put(folder, 'factory.py', FACTORY)}:{function}", *DIGITS, "--out", "OUT.snn.pt"]

    return build


def _weights(folder: Path) -> str:
    return _torch_file(folder, "WEIGHTS.pt", _digits_model().state_dict())


MODEL = "model files"
MODEL_CASES = [
    Case(MODEL, "model file missing", lambda f: _convert("MISSING.pt")),
    Case(MODEL, "model path is a folder", lambda f: _convert(_folder(f, "FOLDER"))),
    Case(MODEL, "empty file", lambda f: _convert(_put(f, "EMPTY.pt", b""))),
    Case(MODEL, "random bytes", lambda f: _convert(_put(f, "RANDOM.pt", np.random.default_rng(0).bytes(4096)))),
    Case(MODEL, "text file named .onnx (wrong format)", lambda f: _convert(_put(f, "MODEL.onnx", "not a model\n"))),
    Case(MODEL, "an npz data file given as the model", lambda f: _convert(_npz(f, "DATA.npz", x=np.zeros((2, 8, 8)), y=np.arange(2)))),
    Case(MODEL, "unsupported layer (Sigmoid)", _unsupported_onnx),
    Case(MODEL, "NaN weights (ONNX)", _nan_onnx),
    Case(MODEL, "TorchScript archive", _torchscript),
    Case(MODEL, "state_dict without --arch", lambda f: _convert(_weights(f))),
    Case(MODEL, "state_dict that does not fit --arch", lambda f: _convert(_weights(f), "--arch", "mlp")),
    Case(MODEL, "pickled nn.Module without --trust-pickle", lambda f: _convert(_torch_file(f, "MODULE.pt", _digits_model()))),
    Case(MODEL, "SNN file given to convert", lambda f: _convert(_snn(f))),
    Case(MODEL, "--arch with a file that names its own network", lambda f: _convert(_onnx(f), "--arch", "digits-cnn")),
    Case(MODEL, "--num-classes contradicting the file", lambda f: _convert(_ann(f), "--num-classes", "5")),
    Case(MODEL, "--input-shape contradicting the file", lambda f: _convert(_onnx(f), "--input-shape", "1,28,28")),
    Case(MODEL, "no MODEL and no --model-factory", lambda f: ["convert", *DIGITS, "--out", "OUT.snn.pt"]),
    Case(MODEL, "model factory file missing", lambda f: ["convert", "--model-factory", "NOPE.py:build", *DIGITS, "--out", "OUT.snn.pt"]),
    Case(MODEL, "model factory function missing", _factory("missing")),
    Case(MODEL, "model factory returns no module", _factory("number")),
    Case(MODEL, "model factory of the wrong input shape", _factory("wrong_shape")),
]

# ------------------------------------------------------------------ data
BIG_IMAGES = {"x": np.zeros((4, 28, 28), np.uint8), "y": np.arange(4)}
DATA = "data"
DATA_CASES = [
    Case(DATA, "wrong shape (28x28 model, 8x8 digits)", lambda f: _convert(_put(f, "MODEL.onnx", material("onnx-28x28")))),
    Case(DATA, "wrong shape (npz of 28x28 images, 8x8 model)", lambda f: _convert(_onnx(f), data=_npz_data(f, **BIG_IMAGES))),
    Case(DATA, "more classes in the data than model outputs", lambda f: _convert(_put(f, "MODEL.onnx", material("onnx-5-classes")))),
    Case(DATA, "unknown data set", lambda f: _ann_on(f, ["--dataset", "no-such-set"])),
    Case(DATA, "data set not installed (empty --data-root)",
         lambda f: _curve(_snn(f), data=["--dataset", "mnist", "--data-root", _folder(f, "EMPTY")])),
    Case(DATA, "image folder missing", lambda f: _ann_on(f, ["--dataset", "imagefolder:NOWHERE"])),
    Case(DATA, "npz file missing", lambda f: _ann_on(f, ["--dataset", "npz:MISSING.npz"])),
    Case(DATA, "npz with object arrays", lambda f: _ann_on(f, _npz_data(f, x=np.array([None, 1], dtype=object), y=np.arange(2)))),
    Case(DATA, "npz without the array y", lambda f: _ann_on(f, _npz_data(f, x=np.zeros((2, 8, 8))))),
    Case(DATA, "empty data (npz of 0 samples)",
         lambda f: _ann_on(f, _npz_data(f, x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64)))),
    Case(DATA, "NaN inputs (npz)", lambda f: _ann_on(f, _npz_data(f, x=np.full((2, 8, 8), np.nan, np.float32), y=np.arange(2)))),
    Case(DATA, "negative labels (npz)", lambda f: _ann_on(f, _npz_data(f, x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, -1])))),
    Case(DATA, "float labels (npz)", lambda f: _ann_on(f, _npz_data(f, x=np.zeros((2, 8, 8), np.uint8), y=np.array([0.0, 1.0])))),
    Case(DATA, "npz zip bomb (a 1 MB archive declaring 1 TiB of pixels)", lambda f: _ann_on(f, _npz_bomb(f))),
    Case(DATA, "image folder with a decompression bomb (PNG header of 10^10 pixels)", lambda f: _ann_on(f, _png_bomb(f))),
]


def _npz_bomb(folder: Path) -> list[str]:
    """An archive whose x.npy declares (2^20, 1, 1024, 1024) uint8 (1 TiB, more than any budget here) after a header and
    1 MB of zeros: numpy would allocate all of it and inflate as far as the data goes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (1 << 20, 1, 1024, 1024)})
    labels = io.BytesIO()
    np.save(labels, np.arange(1 << 20))
    with zipfile.ZipFile(folder / "DATA.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue() + bytes(1 << 20))
        archive.writestr("y.npy", labels.getvalue())
    return ["--dataset", "npz:DATA.npz"]


def _png_bomb(folder: Path) -> list[str]:
    """A valid PNG header claiming 100,000 x 100,000 grey pixels (PIL's limit is about 89 million) with one tiny IDAT."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(1024))) + chunk(b"IEND", b"")
    _put(folder, "PHOTOS/cat/big.png", png)
    return ["--dataset", "imagefolder:PHOTOS"]


# ------------------------------------------------------------------ options
def _compare(*extra: str) -> list[str]:
    return ["compare", "--arch", "digits-cnn", *DIGITS, *extra, "--out-dir", "REPORT"]


OPTIONS = "options"
OPTION_CASES = [
    Case(OPTIONS, "T <= 0 (convert --timesteps 0)", lambda f: _convert(_ann(f), "--timesteps", "0")),
    Case(OPTIONS, "T <= 0 (curve --timesteps -3)", lambda f: ["curve", _snn(f), *DIGITS, "--timesteps", "-3"]),
    Case(OPTIONS, "T <= 0 (train-snn --timesteps 0)",
         lambda f: ["train-snn", "--arch", "digits-cnn", *DIGITS, "--timesteps", "0", "--out", "OUT.pt"]),
    Case(OPTIONS, "--percentile 0", lambda f: _convert(_ann(f), "--percentile", "0")),
    Case(OPTIONS, "--mean not numbers", lambda f: _convert(_onnx(f), "--mean", "a")),
    Case(OPTIONS, "--std 0", lambda f: _convert(_onnx(f), "--std", "0")),
    Case(OPTIONS, "--mean with 3 values for 1 channel", lambda f: _convert(_onnx(f), "--mean", "0.1,0.2,0.3")),
    Case(OPTIONS, "--arch and --model-factory together",
         lambda f: ["convert", "--arch", "digits-cnn", "--model-factory", "factory.py:build", *DIGITS, "--out", "OUT.snn.pt"]),
    Case(OPTIONS, "layer notation that does not parse", lambda f: ["train-ann", "--arch", "12Q3", *DIGITS, "--out", "OUT.pt"]),
    Case(OPTIONS, "--mpr with a neuron it does not apply to",
         lambda f: ["train-snn", "--arch", "digits-cnn", *DIGITS, "--neuron", "mtlif", "--mpr", "--out", "OUT.pt"]),
    Case(OPTIONS, "--device that is not a device (curve --device gpu)", lambda f: _curve(_snn(f), extra=("--device", "gpu"))),
    Case(OPTIONS, "--precision 16 on the CPU", lambda f: _curve(_snn(f), extra=("--device", "cpu", "--precision", "16"))),
    Case(OPTIONS, "compare: unknown method", lambda f: _compare("--methods", "ann,nonsense")),
    Case(OPTIONS, "compare: a timestep of 0", lambda f: _compare("--timesteps", "0,2")),
    Case(OPTIONS, "compare: --checkpoint of a method not compared",
         lambda f: _compare("--methods", "ann", "--checkpoint", f"mtlif={_ann(f)}")),
    Case(OPTIONS, "compare: an SNN file as the ANN checkpoint",
         lambda f: _compare("--methods", "ann", "--timesteps", "1", "--checkpoint", f"ann={_snn(f)}")),
    Case(OPTIONS, "compare: a converted SNN as a directly trained one",
         lambda f: _compare("--methods", "srif", "--timesteps", "1", "--checkpoint", f"srif={_snn(f)}")),
    Case(OPTIONS, "compare: --checkpoint file missing", lambda f: _compare("--methods", "ann", "--checkpoint", "ann=MISSING.pt")),
]


# ------------------------------------------------------------------ SNN files given to curve
def _newer_snn(folder: Path) -> list[str]:
    return _curve(_torch_file(folder, "SNN.snn.pt", _edited_torch("snn", lambda p: p.update(format_version=99))))


SNN = "SNN files"
SNN_CASES = [
    Case(SNN, "SNN file missing", lambda f: _curve("MISSING.snn.pt")),
    Case(SNN, "random bytes as the SNN file", lambda f: _curve(_put(f, "RANDOM.snn.pt", np.random.default_rng(0).bytes(4096)))),
    Case(SNN, "truncated SNN file", lambda f: _curve(_put(f, "SNN.snn.pt", material("snn")[: len(material("snn")) // 2]))),
    Case(SNN, "ANN checkpoint given to curve", lambda f: _curve(_ann(f))),
    Case(SNN, "pickled nn.Module given to curve", lambda f: _curve(_torch_file(f, "MODULE.pt", nn.Linear(2, 2)))),
    Case(SNN, "SNN file of a newer format version", _newer_snn),
    Case(SNN, "the same SNN file twice", lambda f: _curve(_snn(f), "SNN.snn.pt")),
    Case(SNN, "--rate-code on a directly trained SNN", lambda f: _curve(_trained(f), extra=("--rate-code",))),
    Case(SNN, "data of the wrong shape for the SNN", lambda f: _curve(_snn(f), data=_npz_data(f, **BIG_IMAGES))),
    Case(SNN, "train-snn --resume of a file that is no checkpoint",
         lambda f: ["train-snn", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--out", _put(f, "GARBAGE.pt", "not a checkpoint"),
                    "--resume"]),
]


# ------------------------------------------------------------------ outputs (checked before any work)
def _train_snn(*extra: str) -> list[str]:
    return ["train-snn", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--timesteps", "2", *extra]


def _file(folder: Path) -> str:
    return _put(folder, "FILE.txt", "x")


OUTPUTS = "outputs"
OUTPUT_CASES = [
    Case(OUTPUTS, "--out equal to the input model", lambda f: _convert(_ann(f), out="ANN.pt")),
    Case(OUTPUTS, "--out an existing folder", lambda f: _convert(_ann(f), out=_folder(f, "FOLDER"))),
    Case(OUTPUTS, "--out under a regular file", lambda f: _convert(_ann(f), out=f"{_file(f)}/OUT.snn.pt")),
    Case(OUTPUTS, "--plan-json equal to --out", lambda f: _convert(_ann(f), "--plan-json", "OUT.snn.pt")),
    Case(OUTPUTS, "--json equal to the SNN input", lambda f: _curve(_snn(f), extra=("--json", "SNN.snn.pt"))),
    Case(OUTPUTS, "--json and --plot the same file", lambda f: _curve(_snn(f), extra=("--json", "C.out", "--plot", "C.out"))),
    Case(OUTPUTS, "train-snn --out an existing checkpoint (no --resume/--overwrite)", lambda f: _train_snn("--out", _trained(f))),
    Case(OUTPUTS, "train-snn --resume and --overwrite together", lambda f: _train_snn("--out", _trained(f), "--resume", "--overwrite")),
    Case(OUTPUTS, "compare --out-dir under a regular file",
         lambda f: ["compare", "--arch", "digits-cnn", *DIGITS, "--methods", "ann", "--timesteps", "1", "--out-dir", f"{_file(f)}/REPORT"]),
    Case(OUTPUTS, "demo --out-dir a regular file", lambda f: ["demo", "--out-dir", _file(f)]),
]


# ------------------------------------------------------------------ damaged files: one per loader bug found by bench/fuzz_loaders.py
def _onnx_initializer_dims(folder: Path) -> list[str]:
    """Bug 1a: an initializer whose dims disagree with its data passed the checker; numpy's reshape escaped (exit 1)."""
    return _convert(_put(folder, "MODEL.onnx", _edited_onnx(lambda m: m.graph.initializer[-1].dims.__setitem__(0, 1))))


def _onnx_input_channels(folder: Path) -> list[str]:
    """Bug 1b/2: a fixed input the graph cannot run on failed in ShapeProp, which printed a traceback, then escaped (exit 1)."""

    def edit(model: onnx.ModelProto) -> None:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        dims[0].dim_value, dims[1].dim_value = 2, 3

    return _convert(_put(folder, "MODEL.onnx", _edited_onnx(edit)))


def _onnx_huge_input(folder: Path) -> list[str]:
    """Bug 1c: an input dimension of 2**55 made the probe allocation fail (RuntimeError, exit 1); 2**61 bytes fit no address space."""
    def edit(model: onnx.ModelProto) -> None:
        model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 2**55

    return _convert(_put(folder, "MODEL.onnx", _edited_onnx(edit)))


@functools.cache
def _pt2_entries() -> dict[str, bytes]:
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(_digits_model(), (torch.rand(2, *SHAPE),)), buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _pt2_bad_stride(folder: Path) -> list[str]:
    """Bug 3: a graph that deserialises but fails when run (a 4-value conv stride) escaped ingest (RuntimeError, exit 1)."""
    entries = dict(_pt2_entries())
    name = next(n for n in entries if n.endswith("models/model.json"))
    program = json.loads(entries[name])
    conv = next(n for n in program["graph_module"]["graph"]["nodes"] if n["target"] == "torch.ops.aten.conv2d.default")
    conv["inputs"][3]["arg"]["as_ints"] = [1, 1, 1, 1]
    entries[name] = json.dumps(program).encode()
    return _convert(_put(folder, "MODEL.pt2", _zip(entries)))


def _ann_field_types(folder: Path) -> list[str]:
    """Bug 4: a checkpoint field of the wrong type (input_shape items that are lists) escaped as TypeError (exit 1)."""
    return _convert(_torch_file(folder, "ANN.pt", _edited_torch("ann", lambda p: p.update(input_shape=(1, [8], 8)))))


def _ann_metadata_type(folder: Path) -> list[str]:
    """Bug 4: metadata that is a list, not a dict (TypeError, exit 1)."""
    return _convert(_torch_file(folder, "ANN.pt", _edited_torch("ann", lambda p: p.update(metadata=[1, 2]))))


def _ann_activation_type(folder: Path) -> list[str]:
    """Bug 5: an activation record that is not a dict (AttributeError, exit 1)."""
    return _convert(_torch_file(folder, "ANN.pt", _edited_torch("ann", lambda p: p.update(activation=True))))


def _ann_huge_shape(folder: Path) -> list[str]:
    """Bug 5: an input size that overflows when the network is built (RuntimeError, exit 1)."""
    return _convert(_torch_file(folder, "ANN.pt", _edited_torch("ann", lambda p: p.update(input_shape=(2**62, 8, 8)))))


def _snn_no_info(folder: Path) -> list[str]:
    """Bug 6: an SNN file without its info record failed in curve (KeyError 'input_shape', exit 1)."""
    return _curve(_torch_file(folder, "SNN.snn.pt", _edited_torch("snn", lambda p: p.pop("info"))))


def _snn_version_text(folder: Path) -> list[str]:
    """Bug 7: format_version of another type (TypeError comparing it, exit 1)."""
    return _curve(_torch_file(folder, "SNN.snn.pt", _edited_torch("snn", lambda p: p.update(format_version="1"))))


def _trained_arch_type(folder: Path) -> list[str]:
    """Bug 8: a train-snn checkpoint whose arch (or metadata) is not a dict (TypeError, exit 1)."""
    return _curve(_torch_file(folder, "TRAINED.pt", _edited_torch("trained", lambda p: p.update(arch=3))))


def _npz_member(folder: Path, member: str, edit: Callable[[bytes], bytes]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    entries[member] = edit(entries[member])
    return _zip(entries)


def _npz_compression(folder: Path) -> list[str]:
    """Bug 9: a member with an unknown compression method (NotImplementedError, exit 1)."""
    data = bytearray(_npz_member(folder, "x.npy", lambda b: b))
    local = data.index(b"PK\x03\x04")
    data[local + 8 : local + 10] = (99).to_bytes(2, "little")  # compression method of x.npy's local header
    central = data.index(b"PK\x01\x02")
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")  # ... and of its central-directory entry
    return _ann_on(folder, ["--dataset", f"npz:{_put(folder, 'DATA.npz', bytes(data))}"])


def _npz_header_syntax(folder: Path) -> list[str]:
    """Bug 9: an .npy header that is not a Python literal (tokenize's TokenError, exit 1)."""
    data = _npz_member(folder, "y.npy", lambda b: b.replace(b"}", b" ", 1))
    return _ann_on(folder, ["--dataset", f"npz:{_put(folder, 'DATA.npz', data)}"])


def _npz_header_shape(folder: Path) -> list[str]:
    """Bug 9: an .npy header claiming 10**15 x 4 x 8 x 8 bytes of samples, more than any address space (MemoryError, exit 1)."""
    data = _npz_member(folder, "x.npy", lambda b: b.replace(b"'shape': (", b"'shape': (1000000000000000, ", 1))
    return _ann_on(folder, ["--dataset", f"npz:{_put(folder, 'DATA.npz', data)}"])


def _npz_no_magic(folder: Path) -> list[str]:
    """Bug 10: a member without the .npy magic, which numpy returns as bytes (AttributeError 'ndim', exit 1)."""
    data = _npz_member(folder, "y.npy", lambda b: b"\x00" + b[1:])
    return _ann_on(folder, ["--dataset", f"npz:{_put(folder, 'DATA.npz', data)}"])


def _zip_name_not_utf8(folder: Path) -> list[str]:
    """Bug 11: a zip entry flagged UTF-8 whose name is not (UnicodeDecodeError in the TorchScript probe, exit 1)."""
    data = bytearray(material("ann"))
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x08  # general-purpose flag bit 11: the name is UTF-8
    name_at = central + 46
    data[name_at : name_at + 2] = b"\xee\xff"
    return _convert(_put(folder, "ANN.pt", bytes(data)))


DAMAGED_CASES = [
    Case("damaged files (found by fuzzing)", "ONNX initializer dims that disagree with its data", _onnx_initializer_dims),
    Case("damaged files (found by fuzzing)", "ONNX input the graph cannot run on (3 channels)", _onnx_input_channels),
    Case("damaged files (found by fuzzing)", "ONNX input dimension of 2**55", _onnx_huge_input),
    Case("damaged files (found by fuzzing)", ".pt2 graph that fails when run (4-value conv stride)", _pt2_bad_stride),
    Case("damaged files (found by fuzzing)", "ANN checkpoint: input_shape items of the wrong type", _ann_field_types),
    Case("damaged files (found by fuzzing)", "ANN checkpoint: metadata not a dict", _ann_metadata_type),
    Case("damaged files (found by fuzzing)", "ANN checkpoint: activation not a dict", _ann_activation_type),
    Case("damaged files (found by fuzzing)", "ANN checkpoint: input size that overflows", _ann_huge_shape),
    Case("damaged files (found by fuzzing)", "SNN file without its info record", _snn_no_info),
    Case("damaged files (found by fuzzing)", "SNN file: format_version a string", _snn_version_text),
    Case("damaged files (found by fuzzing)", "train-snn checkpoint: arch not a dict", _trained_arch_type),
    Case("damaged files (found by fuzzing)", "npz member with an unknown compression method", _npz_compression),
    Case("damaged files (found by fuzzing)", "npz member header that does not parse", _npz_header_syntax),
    Case("damaged files (found by fuzzing)", "npz member header claiming 4 x 10^15 samples", _npz_header_shape),
    Case("damaged files (found by fuzzing)", "npz member without the .npy magic", _npz_no_magic),
    Case("damaged files (found by fuzzing)", "zip entry name flagged UTF-8 that is not", _zip_name_not_utf8),
]


# ------------------------------------------------------------------ the hostile-file corpus (tests/security)
def _hostile_module():
    if "hostile_corpus" in sys.modules:
        return sys.modules["hostile_corpus"]
    spec = importlib.util.spec_from_file_location("hostile_corpus", SECURITY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_corpus"] = module
    spec.loader.exec_module(module)
    return module


def _hostile_case(hostile) -> Case:
    def build(folder: Path) -> list[str]:
        return hostile.build(folder, folder.parent / "PAYLOAD-RAN")

    return Case("hostile files (tests/security)", f"{hostile.name}: {hostile.what}", build, sentinel=True)


# ------------------------------------------------------------------ spikeconv info (reads, never unpickles)
def _info_hostile_pickle(folder: Path) -> list[str]:
    return ["info", _torch_file(folder, "HOSTILE.pt", {"x": _hostile_module().Payload(folder.parent / "PAYLOAD-RAN")})]


INFO = "spikeconv info"
INFO_CASES = [
    Case(INFO, "info of a missing file", lambda f: ["info", "MISSING.pt"]),
    Case(INFO, "info of a folder", lambda f: ["info", _folder(f, "FOLDER")]),
    Case(INFO, "info of random bytes", lambda f: ["info", _put(f, "RANDOM.pt", np.random.default_rng(0).bytes(4096))]),
    Case(INFO, "info of a pickled nn.Module", lambda f: ["info", _torch_file(f, "MODULE.pt", nn.Linear(2, 2))]),
    Case(INFO, "info of a pickle that runs code", _info_hostile_pickle, sentinel=True),
    Case(INFO, "info of an SNN file of a newer format version",
         lambda f: ["info", _torch_file(f, "SNN.snn.pt", _edited_torch("snn", lambda p: p.update(format_version=99)))]),
]

HOSTILE = [_hostile_case(hostile) for hostile in _hostile_module().HOSTILE_CASES] if SECURITY.is_file() else []

CASES = [*MODEL_CASES, *DATA_CASES, *OPTION_CASES, *SNN_CASES, *OUTPUT_CASES, *DAMAGED_CASES, *INFO_CASES, *HOSTILE]


# ------------------------------------------------------------------ running and rendering
@dataclass(frozen=True)
class Result:
    """A case's run: its argv and stderr with the case folder written as ``.``-relative names."""

    case: Case
    command: str
    code: int
    stderr: str
    sentinel_created: bool


def normalize(text: str, folder: Path) -> str:
    """``text`` with the case folder's path removed (names relative to it), its parent as ``TMP``, torch's version as ``TORCH_VERSION``."""
    for root in dict.fromkeys((folder, folder.resolve())):
        text = text.replace(f"{root}/", "").replace(str(root), ".")
        text = text.replace(str(root.parent), "TMP")
    return text.replace(f"torch {torch.__version__}", "torch TORCH_VERSION")  # the build tag (+cpu, +cu130) varies


def case_folder(tmp_path: Path) -> Path:
    """Where a case builds and runs: ``tmp_path/tmp/case`` (so that a parent named in a message reads ``TMP``)."""
    folder = tmp_path / "tmp" / "case"
    folder.mkdir(parents=True)
    return folder


def run_case(case: Case, folder: Path, run_cli: Callable[[list[str]], tuple[int, str, str]]) -> Result:
    """Build ``case`` in ``folder`` and run it there; ``run_cli(argv) -> (code, stdout, stderr)``."""
    import os

    previous = Path.cwd()
    os.chdir(folder)
    try:
        argv = [str(a) for a in case.build(folder)]
        code, _, err = run_cli(argv)
    finally:
        os.chdir(previous)
    command = "spikeconv " + shlex.join(normalize(a, folder) for a in argv)
    return Result(case, command, code, normalize(err, folder), (folder.parent / "PAYLOAD-RAN").exists())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def render(results: list[Result]) -> str:
    """The markdown table of docs/reliability.md: one section per group, one row per case."""
    lines, group = [], None
    for result in results:
        if result.case.group != group:
            group = result.case.group
            lines += ["" if lines else None, f"### {group[0].upper()}{group[1:]}", "", "| case | command | exit | message |",
                      "|---|---|---|---|"]  # fmt: skip
            lines = [line for line in lines if line is not None]
        message = result.stderr.strip().removeprefix("error: ")
        lines.append(f"| {_cell(result.case.name)} | `{_cell(result.command)}` | {result.code} | {_cell(message)} |")
    return "\n".join(lines) + "\n"
