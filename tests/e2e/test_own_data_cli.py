"""`spikeconv convert` / `curve` on the user's own model files and data: results, and every check's one-line error."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from spikeconv.cli import main
from spikeconv.data import Split, load_dataset
from spikeconv.models import build_model
from spikeconv.training import save_ann_checkpoint
from spikeconv.workflows import load_snn

SHAPE = (1, 8, 8)


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()


@pytest.fixture
def onnx_file(model, tmp_path):
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.rand(1, *SHAPE),), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return path


def _method(extra):
    """These tests are about model and data formats: they convert with the rate method unless they name one."""
    return list(extra) if "--method" in extra else ["--method", "rate", *extra]


def _curve(model_path, tmp_path, name, capsys, *extra, dataset="digits", limit=200, steps=16):
    snn, out = tmp_path / f"{name}.snn.pt", tmp_path / f"{name}.json"
    code, stdout, err = _run(["convert", model_path, "--dataset", dataset, "--out", snn, "--calib-samples", 256, *_method(extra)],
                             capsys)  # fmt: skip
    assert code == 0, err
    code, _, err = _run(["curve", snn, "--dataset", dataset, "--timesteps", steps, "--limit", limit, "--json", out], capsys)
    assert code == 0, err
    return json.loads(out.read_text()), stdout


def test_pt2_converts_to_the_same_curve_as_the_torch_model(model, tmp_path, capsys):
    ckpt, pt2 = tmp_path / "ann.pt", tmp_path / "model.pt2"
    save_ann_checkpoint(ckpt, model=model, arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=None, std=None, metadata={})
    torch.export.save(torch.export.export(model, (torch.rand(1, *SHAPE),)), pt2)
    from_torch, _ = _curve(ckpt, tmp_path, "torch", capsys)
    from_pt2, line = _curve(pt2, tmp_path, "pt2", capsys)
    assert "torch.export program; input 1x8x8, 10 classes; preprocessing: none (pixels in [0, 1])" in line
    assert from_pt2["ann_accuracy"] == from_torch["ann_accuracy"]
    assert max(abs(a - b) for a, b in zip(from_pt2["accuracy"], from_torch["accuracy"], strict=True)) <= 0.1


def test_preprocessing_is_recorded_and_applied_by_curve(model, onnx_file, tmp_path, capsys):
    record, line = _curve(onnx_file, tmp_path, "norm", capsys, "--mean", "0.3", "--std", "0.4")
    assert "preprocessing: (x - mean) / std with mean 0.3, std 0.4, x in [0, 1]" in line
    loaded = load_snn(tmp_path / "norm.snn.pt")
    assert loaded.info["preprocessing"] == {"mean": [0.3], "std": [0.4]} and loaded.info["model_format"] == "ONNX file"
    x = torch.rand(5, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.ann(x), model((x - 0.3) / 0.4), rtol=1e-4, atol=1e-5)
    test = load_dataset("digits", split=Split.TEST, limit=200)
    with torch.no_grad():
        xs, ys = test.as_tensors()
        expected = 100.0 * float((model((xs - 0.3) / 0.4).argmax(1) == ys).float().mean())
    assert record["ann_accuracy"] == pytest.approx(expected)


def test_mean_zero_std_one_equals_no_flags(onnx_file, tmp_path, capsys):
    plain, _ = _curve(onnx_file, tmp_path, "plain", capsys)
    identity, line = _curve(onnx_file, tmp_path, "identity", capsys, "--mean", "0", "--std", "1")
    assert "mean 0, std 1 (identity: pixels in [0, 1])" in line
    assert plain["accuracy"] == identity["accuracy"] and plain["ann_accuracy"] == identity["ann_accuracy"]


def test_factory_snn_reloads_without_the_factory(tmp_path, capsys):
    factory = tmp_path / "net.py"
    factory.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def build():
            torch.manual_seed(3)
            return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))
    """))
    snn = tmp_path / "f.snn.pt"
    code, out, err = _run(["convert", "--model-factory", f"{factory}:build", "--dataset", "digits", "--out", snn,
                           "--calib-samples", 64], capsys)  # fmt: skip
    assert code == 0, err
    assert f"model factory {factory}:build with its own weights; input 1x8x8 taken from the data" in out
    factory.unlink()
    assert _run(["curve", snn, "--dataset", "digits", "--timesteps", 4, "--limit", 50], capsys)[0] == 0


def test_npz_curve_equals_the_named_data_set_curve(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("8C5-P2", input_shape=(1, 28, 28), num_classes=10, batch_norm=False, mean=(0.286,), std=(0.353,)).eval()
    ckpt = tmp_path / "fm.pt"
    save_ann_checkpoint(ckpt, model=model, arch="8C5-P2", input_shape=(1, 28, 28), num_classes=10, mean=(0.286,), std=(0.353,),
                        metadata={})  # fmt: skip
    test = load_dataset("fashion-mnist", split=Split.TEST, limit=300)
    npz = tmp_path / "first300.npz"
    np.savez(npz, x=test.images[:, 0].numpy(), y=test.labels.numpy().astype(np.uint8))  # uint8 N,28,28 as users store it
    snn = tmp_path / "fm.snn.pt"
    assert _run(["convert", ckpt, "--dataset", "fashion-mnist", "--out", snn, "--calib-samples", 128], capsys)[0] == 0
    curves = []
    for dataset in ("fashion-mnist", f"npz:{npz}"):
        out = tmp_path / f"{len(curves)}.json"
        code, _, err = _run(["curve", snn, "--dataset", dataset, "--timesteps", 8, "--limit", 300, "--json", out], capsys)
        assert code == 0, err
        curves.append(json.loads(out.read_text()))
    assert curves[0]["accuracy"] == curves[1]["accuracy"] and curves[0]["ann_accuracy"] == curves[1]["ann_accuracy"]
    assert curves[1]["num_samples"] == 300


def test_npz_calibration_says_there_is_no_split(onnx_file, tmp_path, capsys):
    test = load_dataset("digits", split=Split.TEST)
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=(test.images.numpy() * 255).round().astype(np.uint8), labels=test.labels.numpy())
    _, line = _curve(onnx_file, tmp_path, "npz", capsys, dataset=f"npz:{npz}:images,labels", limit=100, steps=4)
    assert f"calibrated on 256 samples of npz:{npz}:images,labels (no train/test split: evaluate on other data)" in line


def test_image_folder_is_resized_to_the_model_input(onnx_file, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 10), dtype=np.uint8)).save(tmp_path / "images" / label / f"{index}.png")
    _, line = _curve(onnx_file, tmp_path, "folder", capsys, dataset=f"imagefolder:{tmp_path / 'images'}", limit=6, steps=4)
    assert "input 1x8x8" in line


def _npz(path, x, y):
    np.savez(path, x=x, y=y)
    return f"npz:{path}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["convert", "{onnx}", "--dataset", "npz:{big}"], r"samples have shape \(1, 28, 28\) but {onnx} expects \(1, 8, 8\)"),
        (["convert", "{five}", "--dataset", "digits"], r"data has 10 classes \(labels 0..9\) but {five} has only 5 outputs"),
        (["convert", "{onnx}", "--dataset", "npz:{labels}"], "has 13 classes"),
        (["convert", "{onnx}", "--dataset", "npz:{empty}"], "holds no samples"),
        (["convert", "{onnx}", "--dataset", "npz:{nan}"], "NaN or Inf"),
        (["convert", "--model-factory", "{tmp}/nope.py:build", "--dataset", "digits"], "nope.py does not exist"),
        (["convert", "--model-factory", "{factory}:missing", "--dataset", "digits"], "defines no 'missing'"),
        (["convert", "--model-factory", "{factory}:number", "--dataset", "digits"], "type int, not a torch.nn.Module"),
        (["convert", "--model-factory", "{factory}:wrong_shape", "--dataset", "digits"], r"cannot run on samples of shape \(1, 8, 8\)"),
        (["convert", "{onnx}", "--dataset", "digits", "--timesteps", "0"], "timesteps"),
        (["convert", "{weights}", "--dataset", "digits"], "holds only weights"),
        (["convert", "{whole}", "--dataset", "digits"], "pickled Python objects"),
        (["convert", "{onnx}", "--dataset", "digits", "--mean", "0.1,0.2,0.3"], "--mean has 3 values"),
        (["convert", "{onnx}", "--dataset", "digits", "--std", "0"], "--std must be > 0"),
        (["convert", "{onnx}", "--dataset", "digits", "--mean", "a"], "comma-separated numbers"),
        (["convert", "{garbage}", "--dataset", "digits"], "not a model file spikeconv can read"),
        (["convert", "--dataset", "digits"], "give a MODEL file"),
    ],
    ids=["shape", "classes", "labels", "empty", "nan", "factory-file", "factory-name", "factory-type", "factory-shape", "T<=0",
         "state-dict", "pickle", "mean-channels", "std-zero", "mean-text", "garbage", "no-model"],  # fmt: skip
)
def test_each_check_fails_with_one_line_and_no_output(model, onnx_file, tmp_path, capsys, args, message):
    five = tmp_path / "five.onnx"
    small = build_model("digits-cnn", input_shape=SHAPE, num_classes=5).eval()
    torch.onnx.export(small, (torch.rand(1, *SHAPE),), str(five), dynamo=False)
    (tmp_path / "factory.py").write_text(textwrap.dedent("""
        from torch import nn
        def number():
            return 3
        def wrong_shape():
            return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    """))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save(model, tmp_path / "whole.pt")
    (tmp_path / "garbage.bin").write_bytes(b"\x00garbage")
    names = {
        "onnx": onnx_file, "five": five, "tmp": tmp_path, "factory": tmp_path / "factory.py", "weights": tmp_path / "weights.pt",
        "whole": tmp_path / "whole.pt", "garbage": tmp_path / "garbage.bin",
        "big": _npz(tmp_path / "big.npz", np.zeros((4, 28, 28), np.uint8), np.arange(4))[4:],
        "labels": _npz(tmp_path / "labels.npz", np.zeros((4, 8, 8), np.uint8), np.array([0, 3, 12, 1]))[4:],
        "empty": _npz(tmp_path / "empty.npz", np.zeros((0, 8, 8), np.uint8), np.zeros(0, np.int64))[4:],
        "nan": _npz(tmp_path / "nan.npz", np.full((2, 8, 8), np.nan, np.float32), np.array([0, 1]))[4:],
    }  # fmt: skip
    out = tmp_path / "out.snn.pt"
    code, stdout, err = _run([a.format(**names) for a in args] + ["--out", out], capsys)
    assert code == 2, (stdout, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert __import__("re").search(message.format(**names), err), err
    assert not out.exists() and not list(tmp_path.glob(".out.snn.pt.*"))


def test_curve_refuses_t_zero_and_data_of_the_wrong_shape(onnx_file, tmp_path, capsys):
    snn = tmp_path / "s.snn.pt"
    assert _run(["convert", onnx_file, "--dataset", "digits", "--out", snn, "--calib-samples", 32], capsys)[0] == 0
    json_path = tmp_path / "c.json"
    for args, message in ((["--timesteps", 0], "timesteps"), (["--dataset", "fashion-mnist", "--limit", 5], r"\(1, 28, 28\).*\(1, 8, 8\)")):
        code, _, err = _run(["curve", snn, "--dataset", "digits", *args, "--json", json_path], capsys)
        assert code == 2 and err.count("\n") == 1 and __import__("re").search(message, err), err
        assert not json_path.exists()
