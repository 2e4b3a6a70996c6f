"""The consumer libraries' own importers run spikeconv's exports as spikeconv does (when their venvs exist).

``make interop`` (``bench/interop_check.py``) makes one venv per library under ``$SPIKECONV_INTEROP_VENVS``
(default ``/tmp/spikeconv-interop``), never spikeconv dependencies. Where a library's venv exists, its
importer is probed for the conventions its target is written for (``EXPECTED`` in the bench), and a
small network converted for the target (start shift, and the target's correction: the hard-reset fit's
spike values and shortcut scales, or sinabs' bias and 8-bit weights) is exported, run by the library on
24 inputs for 4 steps, and its accumulated readout compared with spikeconv's at every step. Without the
venvs the tests skip.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, Correction, CorrectionConfig, MaxPoolMode, convert, correct
from spikeconv.convert.for_target import config_for_target
from spikeconv.files.targets import TARGETS, export_for_target
from spikeconv.ingest import ingest_module
from spikeconv.neurons import Reset

BENCH = Path(__file__).resolve().parents[2] / "bench"
_spec = importlib.util.spec_from_file_location("interop_check", BENCH / "interop_check.py")
interop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(interop)

TARGET_NAMES = ("nir", "sinabs", "snntorch", "spikingjelly", "norse")


def _python(target: str) -> Path:
    python = interop.venv_python(interop.LIBRARY[target])
    if not python.exists():
        pytest.skip(f"no {interop.LIBRARY[target]} venv at {python.parents[1]} (make interop creates it)")
    return python


class Residual(nn.Module):
    """Normalised input, a residual block with an identity shortcut, max pooling, flatten, two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("std", torch.tensor([0.5]).reshape(1, 1, 1, 1))
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.fc2 = nn.Linear(6 * 6 * 6, 16), nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.c1(x / self.std))
        x = torch.relu(self.c3(torch.relu(self.c2(x))) + x)
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(x), 1))))


def _network(target: str):
    torch.manual_seed(0)
    if target in ("sinabs", "norse"):  # their depth-first executor runs no shortcut scale: a plain CNN
        model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 5 * 5, 16), nn.ReLU(),
                              nn.Linear(16, 5))  # fmt: skip
    else:
        model = Residual()
    data = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    calibrated = calibrate(prepare(ingest_module(model.eval()), CalibrationConfig(default=MaxThreshold(per_channel=True))), [data])
    config = ConvertConfig(maxpool=MaxPoolMode.AVERAGE)
    rules = TARGETS[target].rules
    if rules is not None:  # as convert --target makes it for T = 4: the start shift, and the target's correction measured
        config, _ = config_for_target(config, rules, timesteps=4)
        kind = Correction.HARD_RESET if rules.reset is Reset.ZERO else Correction.BIAS  # the fit: spike values, shortcut scales
        config = replace(config, weight_bits=8 if target == "sinabs" else None)
        calibrated = correct(calibrated, [data], CorrectionConfig(kind, timesteps=4, max_samples=64), config)
    return convert(calibrated, config)


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_the_importer_has_the_conventions_the_target_is_written_for(target, tmp_path):
    _python(target)
    found = interop.probe(interop.LIBRARY[target], tmp_path, interop.VENV_ROOT)
    assert found["mismatches"] == [], found["mismatches"]


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_the_library_runs_the_export_as_spikeconv_does(target, tmp_path):
    python = _python(target)
    snn = _network(target)
    x = torch.rand(24, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = snn(x, 4).cumsum(0).numpy()
    path = tmp_path / f"{target}.nir"
    export_for_target(snn, path, info={"input_shape": [1, 12, 12], "num_classes": 5}, target=target)
    np.savez(tmp_path / "x.npz", x=x.numpy(), y=np.zeros(24, np.int64))
    readout = tmp_path / "readout.npy"
    done = subprocess.run([str(python), str(interop.CONSUMER), "run", interop.LIBRARY[target], str(path), str(tmp_path / "x.npz"),
                           "--timesteps", "4", "--threads", "1", "--readout", str(readout), "--out", str(tmp_path / "r.json"),
                           *(["--accumulated"] if target == "nir" else [])], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = np.load(readout).reshape(reference.shape)
    readout_layer = [m for m in snn.body.modules() if isinstance(m, nn.Linear)][-1]
    if hasattr(readout_layer, "weight_scale"):  # integer weights: the exported readout is spikeconv's divided by its scale
        theirs = theirs * float(readout_layer.weight_scale.reshape(-1)[0])
    scale = float(np.abs(reference).max())
    assert np.allclose(theirs, reference, atol=1e-4 * scale, rtol=1e-4), float(np.abs(theirs - reference).max())
    assert (theirs.argmax(-1) == reference.argmax(-1)).mean() >= 0.95  # ties and float rounding may move a few
    assert json.loads((tmp_path / "r.json").read_text())["library"] == interop.LIBRARY[target]
