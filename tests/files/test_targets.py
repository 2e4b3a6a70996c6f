"""Export targets (files/targets) and conversion for a target (convert/fold, quantize, for_target): without the libraries.

The libraries themselves run the files in tests/files/test_interop.py (when their venvs exist). Here:
folding thresholds into the weights leaves the network's readout the same; each dialect writes the
nodes and numbers its importer reads (as docs/export_targets.md states them); what a target cannot
run is refused in one line; an SNN file converted for a target reads back to the same network.
"""

from __future__ import annotations

from dataclasses import replace

import h5py
import nir
import numpy as np
import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, attach_plan, calibrate, plan_of, prepare
from spikeconv.cli import main
from spikeconv.convert import ConvertConfig, Correction, convert
from spikeconv.convert.fold import ChannelScale, unfold_thresholds_
from spikeconv.convert.for_target import config_for_target
from spikeconv.data import Split, load_dataset
from spikeconv.errors import CheckpointError, ConfigError, ConversionError
from spikeconv.files import describe_file, format_description, load_snn
from spikeconv.files.nir_common import below
from spikeconv.files.nir_export import export_nir
from spikeconv.files.nir_import import load_nir_network
from spikeconv.files.targets import TARGETS, ExportTarget, export_for_target, register_target, target_rules
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model
from spikeconv.neurons import Reset
from spikeconv.neurons.floored_if import FlooredIFNeuron
from spikeconv.options import convert_from_options, settings_from_options
from spikeconv.search import format_choice
from spikeconv.training import save_ann_checkpoint
from spikeconv.workflows import AutoConfig, ConvertJob, DataSource, choose_conversion, convert_job

CONSUMERS = ("sinabs", "snntorch", "spikingjelly", "norse")


class Net(nn.Module):
    """Input normalisation, a ResNet block whose join feeds a neuron (identity shortcut), pooling, flatten, two linears."""

    def __init__(self, downsample: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.3]).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor([0.4]).reshape(1, 1, 1, 1))
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.c2, self.c3 = nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.short = nn.Conv2d(6, 6, 1) if downsample else nn.Identity()
        self.pool = nn.AvgPool2d(2)
        self.fc1, self.fc2 = nn.Linear(6 * 6 * 6, 16), nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.c1((x - self.mean) / self.std))
        x = torch.relu(self.c3(torch.relu(self.c2(x))) + self.short(x))
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(x), 1))))


def _data(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


def _calibrated(per_channel: bool = True, downsample: bool = False):
    torch.manual_seed(0)
    model = Net(downsample).eval()
    return calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold(per_channel=per_channel))), [_data()])


def _cnn_calibrated():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 5 * 5, 5)).eval()
    return calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold(per_channel=True))), [_data()])


def _for(target: str, **changes) -> ConvertConfig:
    config, _ = config_for_target(ConvertConfig(), TARGETS[target].rules)
    return replace(config, **changes)


INFO = {"input_shape": [1, 12, 12], "num_classes": 5}


@pytest.mark.parametrize("per_channel", [False, True])
def test_folding_the_thresholds_keeps_the_network(per_channel):
    calibrated = _calibrated(per_channel)
    config = _for("snntorch")
    plain, folded = convert(calibrated, replace(config, target=None)), convert(calibrated, config)
    assert all(bool((neuron.threshold == 1).all()) for _, neuron in folded.neurons())
    x = _data(16, seed=1)
    with torch.no_grad():  # the same readout up to float rounding, and the same predictions
        out, reference = folded(x, 6), plain(x, 6)
    assert torch.allclose(out, reference, rtol=1e-4, atol=1e-4)
    assert torch.equal(out.cumsum(0).argmax(-1), reference.cumsum(0).argmax(-1))
    scales = [m for m in folded.body.modules() if isinstance(m, ChannelScale) and m.role == "shortcut"]
    assert len(scales) == 1  # the identity shortcut carries θ_in/θ_join, now that spikes are 1


def test_the_start_shift_gives_the_half_threshold_start_by_step_t():
    """V[0] = θ/2 (spikeconv's own neuron) and a bias of θ/(2T) per step (sinabs' zero-start neuron) give the same
    spike counts at step T for a constant input: the same readout summed over T steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 5)).eval()
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold(per_channel=True))), [_data()])
    steps = 5
    config, changes = config_for_target(ConvertConfig(), TARGETS["sinabs"].rules, timesteps=steps)
    assert config.v_init == 0.0 and config.start_shift == pytest.approx(0.5 / steps)
    assert "initial membrane 0.5·θ -> 0 and a bias of 0.1·θ per step (the same charge by step 5)" in changes
    own, shifted, unshifted = (convert(calibrated, c) for c in (ConvertConfig(), config, replace(config, start_shift=0.0)))
    x = _data()  # the calibration inputs: every current is below θ, so one spike per step is enough for both
    with torch.no_grad():
        reference, out, plain = (net(x, steps).sum(0) for net in (own, shifted, unshifted))
    assert torch.allclose(out, reference, rtol=1e-4, atol=1e-4) and not torch.allclose(plain, reference, rtol=1e-3, atol=1e-3)
    assert ConvertConfig.from_dict(config.to_dict()) == config


def _site_dims(calibrated) -> dict[str, int]:
    """Dimensions of one sample's activation at each site ([C] or [C, H, W])."""
    dims, hooks = {}, []
    for site in plan_of(calibrated).sites:
        hooks.append(calibrated.get_submodule(site).register_forward_hook(
            lambda _m, _a, out, site=site: dims.__setitem__(site, out.dim() - 1)))  # fmt: skip
    with torch.no_grad():
        calibrated(_data(2))
    for hook in hooks:
        hook.remove()
    return dims


@pytest.mark.parametrize("target", ["snntorch", "sinabs"])
def test_unfolding_gives_the_network_in_the_ann_units(target):
    """What the corrections measure: a network converted for a target, unfolded, is the same network as one converted
    with the target's neuron and no fold: the same readout, thresholds and plan biases back in the neurons."""
    calibrated = _calibrated() if target == "snntorch" else _cnn_calibrated()
    plan = plan_of(calibrated)
    dims = _site_dims(calibrated)
    sites = {site: torch.linspace(-0.05, 0.1, len(values)).reshape(-1, *([1] * (dims[site] - 1)))
             for site, values in plan.thresholds.items()}  # fmt: skip
    corrections = {site: {"bias": b.flatten().tolist(), "bias_shape": list(b.shape)} for site, b in sites.items()}
    corrected = attach_plan(calibrated, replace(plan, corrections=corrections))
    config = _for(target, start_shift=0.05)
    folded = convert(corrected, config)
    unfold_thresholds_(folded.body, plan.thresholds, corrections, config.target)
    neurons = dict(folded.neurons())
    assert all(torch.equal(neurons[site].threshold, torch.tensor(values)) for site, values in plan.thresholds.items())
    assert all(torch.allclose(neurons[site].bias, bias) for site, bias in sites.items())
    reference = convert(corrected, replace(config, target=None))  # the same neuron, spikes worth θ (no floor: sinabs' CNN stays above it)
    x = _data(16, seed=1)
    with torch.no_grad():
        assert torch.allclose(folded(x, 6), reference(x, 6), rtol=1e-4, atol=1e-4)


def test_a_target_whose_executor_cannot_run_a_shortcut_scale_refuses_at_conversion():
    with pytest.raises(ConversionError, match="node add: .*sinabs 3.1.3's executor runs such a layer a step late") as found:
        convert(_calibrated(), _for("sinabs"))
    assert "\n" not in str(found.value)


def test_floored_neuron_runs_sinabs_dynamics():
    neuron = FlooredIFNeuron(1.0, floor=1.0, v_init=0.0, reset=Reset.SUBTRACT, max_spikes=1 << 20)
    steps = torch.tensor([[1.0, 0.7, 2.5, -3.0, 0.999], [0.0, 0.7, 0.0, 2.5, 0.0], [0.0, 0.7, 0.0, 0.0, 0.0]])
    out = neuron(steps, 3).reshape(3, 5)  # the spikes sinabs' IAFSqueeze gives (bench/interop_check.py EXPECTED)
    assert out.tolist() == [[1, 0, 2, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 0, 0]]


def test_each_dialect_writes_what_its_importer_reads(tmp_path):
    calibrated = _calibrated()
    for target in ("snntorch", "spikingjelly"):
        snn = convert(calibrated, _for(target))
        path = tmp_path / f"{target}.nir"
        export_for_target(snn, path, info=INFO, target=target)
        graph = nir.read(path)
        kinds = {type(node).__name__ for node in graph.nodes.values()}
        assert not kinds & {"I", "Threshold", "Scale"}  # no importer maps them
        neurons = [node for node in graph.nodes.values() if isinstance(node, (nir.IF, nir.LIF))]
        assert len(neurons) == 4
        if target == "snntorch":  # LIF with beta = 1 − 1e-4/τ = 1.0 in float32, threshold for v > θ, no Flatten
            assert all(isinstance(n, nir.LIF) and np.float32(1) - np.float32(1e-4) / n.tau.reshape(-1)[0] == 1 for n in neurons)
            assert all(np.all(n.v_threshold == below(np.float32(1))) for n in neurons) and "Flatten" not in kinds
        else:  # SpikingJelly: r = 1/dt, v >= θ, NIR's Flatten
            assert all(np.allclose(n.r, 1e4) and np.all(n.v_threshold == 1) for n in neurons) and "Flatten" in kinds


def test_sinabs_file_is_what_nir_104_reads(tmp_path):
    snn = convert(_cnn_calibrated(), _for("sinabs", weight_bits=8))
    path = tmp_path / "s.nir"
    summary = export_for_target(snn, path, info=INFO, target="sinabs")
    assert summary["node_types"]["SumPool2d"] == 1 and "AvgPool2d" not in summary["node_types"]
    with h5py.File(path, "r") as handle:
        assert "v_reset" not in handle[f"node/nodes/{_if_name(handle)}"]
    graph = nir.read(path)
    conv = graph.nodes[next(n for n, v in graph.nodes.items() if isinstance(v, nir.Conv2d))]
    assert np.array_equal(conv.weight, np.round(conv.weight)) and np.abs(conv.weight).max() <= 127  # integer weights
    neuron = next(v for v in graph.nodes.values() if isinstance(v, nir.IF))
    assert np.unique(neuron.v_threshold).size > 1  # per-channel integer scales: the thresholds 1/s_c per channel


def _if_name(handle) -> str:
    return next(name for name in handle["node/nodes"] if handle[f"node/nodes/{name}/type"][()] in (b"IF", "IF"))


def test_refusals_are_one_line_and_name_the_way_out(tmp_path):
    calibrated = _calibrated()
    plain = convert(calibrated, ConvertConfig())
    with pytest.raises(ConversionError, match="convert it with --target sinabs") as found:
        export_for_target(plain, tmp_path / "a.nir", info=INFO, target="sinabs")
    assert "\n" not in str(found.value)
    sinabs = convert(_cnn_calibrated(), _for("sinabs"))
    with pytest.raises(ConversionError, match="converted for sinabs; snnTorch 1.0.0 cannot run reset subtract"):
        export_for_target(sinabs, tmp_path / "b.nir", info=INFO, target="snntorch")
    with pytest.raises(ConversionError, match="floors its membrane"):
        export_nir(sinabs, tmp_path / "c.nir", info=INFO)
    snntorch = convert(calibrated, _for("snntorch"))
    summary = export_for_target(snntorch, tmp_path / "d.nir", info=INFO, target="spikingjelly")
    assert summary["changes"] == ["converted for snntorch; SpikingJelly 2.0.0 runs the same neuron"]
    with pytest.raises(CheckpointError, match="written for SpikingJelly"):
        load_nir_network(tmp_path / "d.nir")
    assert "target          spikingjelly: written for SpikingJelly 2.0.0" in format_description(describe_file(tmp_path / "d.nir"))
    with pytest.raises(ConfigError, match="at most one spike per step"):
        config_for_target(ConvertConfig(max_spikes=2), TARGETS["snntorch"].rules)
    assert not any((tmp_path / name).exists() for name in ("a.nir", "b.nir", "c.nir"))


def test_a_residual_join_with_a_layer_on_both_branches_is_refused_for_depth_first_executors(tmp_path):
    snn = convert(_calibrated(per_channel=False, downsample=True), _for("norse"))
    with pytest.raises(ConversionError, match="depth first") as found:
        export_for_target(snn, tmp_path / "n.nir", info=INFO, target="norse")
    assert "\n" not in str(found.value)


@pytest.fixture
def ann_file(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,))
    path = tmp_path / "ann.pt"
    save_ann_checkpoint(path, model=model, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,),
                        metadata={})
    return path


def test_snn_file_for_a_target_reads_back_to_the_same_network(ann_file, tmp_path, capsys):
    out = tmp_path / "net.snn.pt"
    base = convert_from_options(reset="subtract", v_init=0.5, encoding="direct", seed=0, timesteps=4, maxpool="spiking",
                                target="sinabs", weight_bits=6)  # fmt: skip
    settings = settings_from_options("calibrated", base, target_timesteps=4, correction_samples=64, threshold="max", percentile=None,
                                     per_channel=True, max_spikes=None)  # fmt: skip
    assert settings.correction.kind is Correction.BIAS  # membranes start at 0: the potential correction becomes a bias
    result = convert_job(ConvertJob(model=ann_file, out=out, data=DataSource("digits"), calib_samples=64, method="calibrated",
                                    calibration=settings.calibration, convert=settings.convert, correction=settings.correction),
                         progress=False)  # fmt: skip
    loaded = load_snn(out)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded.snn(x, 4), result.snn.eval()(x, 4))
    assert any(isinstance(m, FlooredIFNeuron) for m in loaded.snn.modules())
    for module in loaded.snn.body.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            grid = module.weight / module.weight_scale.reshape(-1, *([1] * (module.weight.dim() - 1)))
            assert torch.allclose(grid, grid.round(), atol=1e-4) and grid.round().abs().max() <= 31
    described = describe_file(out)
    assert described["target"]["name"] == "sinabs" and described["target"]["weight_bits"] == 6
    assert "target         sinabs (sinabs 3.1.3)" in format_description(described)
    capsys.readouterr()
    assert main(["export", str(out), "--target", "snntorch", "--out", str(tmp_path / "x.nir")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "--target snntorch" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "x.nir").exists()
    assert main(["export", str(out), "--target", "sinabs", "--out", str(tmp_path / "s.nir")]) == 0
    assert "for sinabs 3.1.3" in capsys.readouterr().out and (tmp_path / "s.nir").exists()


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ConfigError, match="already registered"):
        register_target(ExportTarget(name="sinabs", library="x", importer="x"))
    with pytest.raises(ConfigError, match="choose one of nir, sinabs, snntorch, spikingjelly, norse"):
        target_rules("lava")
    assert target_rules("nir") is None and all(TARGETS[name].rules is not None for name in CONSUMERS)


def test_cli_refuses_what_a_target_cannot_run(ann_file, tmp_path, capsys):
    out = str(tmp_path / "x.snn.pt")
    capsys.readouterr()
    assert main(["convert", str(ann_file), "--dataset", "digits", "--weight-bits", "8", "--out", out]) == 2
    assert capsys.readouterr().err.startswith("error: --weight-bits quantises the weights for a deployment target")
    assert main(["convert", str(ann_file), "--dataset", "digits", "--target", "sinabs", "--reset", "zero", "--out", out]) == 2
    error = capsys.readouterr().err
    assert "--reset set(s) what --target sinabs decides" in error and len(error.strip().splitlines()) == 1
    assert main(["convert", str(ann_file), "--dataset", "digits", "--method", "bsnn", "--target", "norse", "--out", out]) == 2
    assert "bistable neurons (--method bsnn)" in capsys.readouterr().err
    assert not (tmp_path / "x.snn.pt").exists()


def test_auto_searches_only_what_the_target_runs():
    torch.manual_seed(0)
    model = build_model("16C3-P2-32", input_shape=(1, 8, 8), num_classes=10).eval()
    data = load_dataset("digits", split=Split.TRAIN)
    calibration, validation = torch.utils.data.Subset(data, range(96)), torch.utils.data.Subset(data, range(96, 192))
    base = convert_from_options(reset="subtract", v_init=0.5, encoding="direct", seed=0, timesteps=3, target="snntorch", weight_bits=8)
    choice = choose_conversion(ingest_module(model), calibration, validation, base,
                               AutoConfig(max_timesteps=1, validation_samples=96, correction_samples=32))  # fmt: skip
    rows = choice.report["candidates"]
    assert rows and all("signed" not in row["variant"] and row["method"] != "burst" for row in rows)
    assert all("float_accuracy" in row for row in rows if row["how"] == "simulated")
    assert choice.convert.target.name == "snntorch" and choice.convert.reset is Reset.ZERO and choice.convert.v_init == 0.0
    assert "float weights" in format_choice(choice.report)
