"""`spikeconv convert` then `spikeconv info` on digits: the file says how it was made."""

from __future__ import annotations

import json

import torch

from spikeconv.cli import main
from spikeconv.models import build_model
from spikeconv.training import save_ann_checkpoint


def test_convert_then_info(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10).eval()
    ann, snn = tmp_path / "ann.pt", tmp_path / "rate.snn.pt"
    save_ann_checkpoint(ann, model=model, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=None, std=None, metadata={})
    assert main(["convert", str(ann), "--dataset", "digits", "--calib-samples", "64", "--method", "rate", "--timesteps", "5",
                 "--per-channel", "--out", str(snn)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["info", str(snn), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["method"] == "rate" and described["timesteps"] == 5
    assert described["thresholds"]["granularity"] == "per-channel" and described["thresholds"]["values"] > described["thresholds"]["sites"]
    assert described["provenance"]["spikeconv_version"]
    assert main(["info", str(snn)]) == 0
    text = capsys.readouterr().out
    assert "rate" in text and "T (timesteps)  5" in text and "per-channel" in text
