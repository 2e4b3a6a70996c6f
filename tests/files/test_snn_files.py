"""SNN files: save -> load reproduces the same network, and foreign files are refused clearly."""

from __future__ import annotations

import pytest
import torch

from spikeconv.errors import CheckpointError
from spikeconv.models import build_model
from spikeconv.training import save_ann_checkpoint
from spikeconv.workflows import ConvertJob, DataSource, convert_job, load_ann, load_snn


@pytest.fixture
def ann_file(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,))
    path = tmp_path / "ann.pt"
    save_ann_checkpoint(path, model=model, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10,
                        mean=(0.3,), std=(0.4,), metadata={"test_accuracy": 12.5})  # fmt: skip
    return path


def test_convert_save_load_gives_identical_outputs(ann_file, tmp_path):
    out = tmp_path / "net.snn.pt"
    result = convert_job(ConvertJob(model=ann_file, out=out, data=DataSource("digits"), calib_samples=200), progress=False)
    loaded = load_snn(out)
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.snn(x, 12), result.snn.eval()(x, 12))
        torch.testing.assert_close(loaded.ann(x), load_ann(ann_file).model(x))
    assert loaded.info["input_shape"] == [1, 8, 8] and loaded.info["num_classes"] == 10
    assert loaded.info["preprocessing"] == {"mean": [0.3], "std": [0.4]}
    assert loaded.info["calibration"]["samples"] == 200
    assert loaded.snn.metadata["plan"] == result.plan.to_dict()


def test_an_ann_checkpoint_is_not_an_snn_file(ann_file):
    with pytest.raises(CheckpointError, match="not a spikeconv SNN file"):
        load_snn(ann_file)


def test_a_pickled_module_is_refused_without_running_it(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_snn(path)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_ann(path)


def test_truncated_snn_file_is_refused(ann_file, tmp_path):
    out = tmp_path / "net.snn.pt"
    convert_job(ConvertJob(model=ann_file, out=out, data=DataSource("digits"), calib_samples=50), progress=False)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="net.snn.pt"):
        load_snn(out)
