"""`compare MODEL` and `train-snn MODEL`: direct training of the user's own ingested graph, beside conversion.

The model is a small residual net with max pooling, trained here on digits and exported by the legacy ONNX
exporter, which folds its BatchNorm into the convolutions (as most exported files arrive).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeconv.cli import main
from spikeconv.data import Split
from spikeconv.files import load_ann, load_snn
from spikeconv.files.ann_record import rebuild_ann
from spikeconv.training.snn.batchnorm import add_batchnorm, match_ann_
from spikeconv.training.snn.spikify import spikify
from spikeconv.workflows import CurveJob, DataSource, TrainSnnJob, curve_job, snn_training_from_options, train_snn_job

DIGITS = ["--dataset", "digits"]
SMALL = [*DIGITS, "--epochs", "1", "--train-limit", "256", "--limit", "100", "--timesteps", "1,2,4", "--calib-samples", "256"]


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.c2, self.b2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


@pytest.fixture(scope="module")
def resnet_onnx(tmp_path_factory) -> Path:
    """A digits residual net with max pooling (about 97 % on the digits test split), exported to ONNX."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), _Block(8),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))  # fmt: skip
    x, y = DataSource("digits").load(Split.TRAIN).as_tensors()
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(30):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x[start:start + 64]), y[start:start + 64]).backward()
            optimizer.step()
    path = tmp_path_factory.mktemp("model") / "resnet.onnx"
    torch.onnx.export(net.eval(), (torch.rand(1, 1, 8, 8),), str(path), dynamo=False)
    return path


def _config(epochs: int = 1, lr: float | None = None):
    return snn_training_from_options(neuron="srif", mpr=True, timesteps=4, epochs=epochs, batch_size=64, lr=lr, optimizer=None,
                                     schedule="cosine", loss=None, tdbn=None, augment="none", seed=0)  # fmt: skip


def _convs(module: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_folded_graph_gets_batchnorm_before_every_neuron_but_not_the_readout(resnet_onnx):
    graph = rebuild_ann(load_ann(resnet_onnx).source)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in graph.modules())  # the exporter folded it
    with_bn, added = add_batchnorm(graph)
    assert len(added) == 3  # stem and both block convolutions; the classifier feeds no ReLU
    assert add_batchnorm(with_bn) == (with_bn, [])  # a graph with normalisation is left alone
    assert add_batchnorm(rebuild_ann(load_ann(resnet_onnx).source))[1] == added  # same names every time


def test_matched_batchnorm_scales_each_layer_to_the_threshold(resnet_onnx):
    graph, added = add_batchnorm(rebuild_ann(load_ann(resnet_onnx).source))
    x, _ = DataSource("digits").load(Split.TRAIN, 256).as_tensors()
    snn = spikify(graph, _config().neuron, timesteps=4)
    scales = match_ann_(snn, added, x)
    seen = {}
    hooks = [snn.body.get_submodule(n).register_forward_hook(lambda m, a, out, n=n: seen.__setitem__(n, (a[0], out)))
             for n in added]  # fmt: skip
    snn.eval()(x)
    for hook in hooks:
        hook.remove()
    for name in added:  # each layer computes k·y on what it receives, its large values at the threshold
        y, out = seen[name]
        assert torch.allclose(out, scales[name] * y, atol=1e-4)
        assert torch.quantile(out.clamp(min=0).flatten(), 0.999).item() == pytest.approx(0.5, rel=1e-3)


def test_init_ann_starts_from_the_ann_weights_and_scratch_does_not(resnet_onnx, tmp_path):
    ann = _convs(rebuild_ann(load_ann(resnet_onnx).source))
    runs = {}
    for init in ("ann", "scratch"):
        job = TrainSnnJob(arch=None, model=resnet_onnx, init=init, out=tmp_path / f"{init}.pt", data=DataSource("digits"),
                          train=_config(lr=1e-12), train_limit=64)  # fmt: skip
        runs[init] = train_snn_job(job, progress=False)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ann, _convs(runs["ann"].snn), strict=True))
    assert not any(torch.allclose(a, b, atol=1e-3) for a, b in zip(ann, _convs(runs["scratch"].snn), strict=True))
    loaded = load_snn(tmp_path / "ann.pt")  # rebuilt from the embedded ONNX bytes, BatchNorm added again
    curve = curve_job(CurveJob(snn=tmp_path / "ann.pt", timesteps=4, data=DataSource("digits")), progress=False)
    assert curve.accuracy_at(4) == pytest.approx(runs["ann"].test_accuracy)
    assert loaded.info["origin"] == "train-snn" and loaded.info["input_shape"] == [1, 8, 8]


def test_resume_refuses_a_checkpoint_of_another_network(resnet_onnx, tmp_path, capsys):
    out = tmp_path / "snn.pt"
    common = [*DIGITS, "--neuron", "srif", "--epochs", "1", "--train-limit", "64", "--out", str(out)]
    assert main(["train-snn", str(resnet_onnx), "--init", "ann", *common]) == 0
    capsys.readouterr()
    assert main(["train-snn", str(resnet_onnx), "--init", "scratch", *common, "--resume"]) == 2
    assert "trained from another network" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["train-snn", "--init", "ann", *DIGITS], "--init ann starts from a trained ANN's weights"),
    (["train-snn", "{model}", "--arch", "digits-cnn", *DIGITS], "not both"),
    (["compare", "{model}", "--arch", "digits-cnn", *DIGITS, "--out-dir", "{tmp}/r"], "not both"),
    (["compare", "{model}", *DIGITS, "--checkpoint", "ann={model}", "--out-dir", "{tmp}/r"], "drop --checkpoint ann"),
    (["compare", "{text}", *DIGITS, "--out-dir", "{tmp}/r"], "{text}"),
])  # fmt: skip
def test_bad_model_options_fail_in_one_line(resnet_onnx, tmp_path, capsys, args, message):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    fill = {"model": str(resnet_onnx), "tmp": str(tmp_path), "text": str(text)}
    argv = [a.format(**fill) for a in args] + (["--out", str(tmp_path / "x.pt")] if args[0] == "train-snn" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message.format(**fill) in err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "r" / "report.json").exists()


def test_compare_model_reports_conversion_hybrid_and_direct_training_of_its_graph(resnet_onnx, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["compare", str(resnet_onnx), *SMALL, "--methods", "ann,calibrated,hybrid,srif-mpr", "--out-dir", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    methods = [m["method"] for m in report["models"]]
    assert methods == ["ann", "calibrated", "hybrid", "srif-mpr", "srif-mpr-from-ann"]  # --direct-init both by default
    assert report["meta"]["model"] == str(resnet_onnx) and report["meta"]["arch"] == "model resnet.onnx"
    by_name = {m["method"]: m for m in report["models"]}
    assert by_name["ann"]["points"][0]["accuracy"] > 90
    for name, init in (("srif-mpr", "scratch"), ("srif-mpr-from-ann", "ann")):
        provenance = by_name[name]["model"]
        assert provenance["command"].startswith(f"spikeconv train-snn {resnet_onnx} --init {init}")
        assert provenance["settings"]["model_sha256"] == provenance["settings"]["model_sha256"].lower()
        assert [p["timesteps"] for p in by_name[name]["points"]] == [1, 2, 4]
        assert set(by_name[name]["points"][0]["spike_rates"]) == set(by_name["calibrated"]["points"][0]["spike_rates"])
    assert by_name["hybrid"]["model"]["conversion"]["method"] == "hybrid"
    text = (out / "report.md").read_text()
    assert "direct: srif-mpr-from-ann" in text and "conversion: hybrid" in text
    capsys.readouterr()
    assert main(argv) == 0  # a rerun reuses every finished result
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("(reused)") == 5
