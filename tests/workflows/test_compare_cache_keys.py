"""compare's cache is keyed by the bytes of the ANN a conversion starts from: a changed ANN is converted anew."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from spikeconv.cli import main
from spikeconv.training import load_ann_checkpoint
from spikeconv.workflows import DataSource, compare_job, compare_job_from_options
from spikeconv.workflows.compare.models import file_sha256

SETTINGS = {"arch": "digits-cnn", "methods": "calibrated", "timesteps": "1,2", "epochs": ("1",), "limit": 50,
            "train_limit": 256, "calib_samples": 128}  # fmt: skip


@pytest.fixture(scope="module")
def two_anns(tmp_path_factory) -> tuple[Path, Path]:
    """Two digits CNNs with other weights (seeds 0 and 1), trained by the CLI (about 2 s each)."""
    folder = tmp_path_factory.mktemp("anns")
    paths = folder / "ann0.pt", folder / "ann1.pt"
    for seed, path in enumerate(paths):
        args = ["train-ann", "--arch", "digits-cnn", "--dataset", "digits", "--epochs", "1", "--train-limit", "256",
                "--seed", str(seed), "--out", str(path)]  # fmt: skip
        assert main(args) == 0
    assert file_sha256(paths[0]) != file_sha256(paths[1])
    return paths


def _compare(out: Path, **changes):
    job = compare_job_from_options(data=DataSource("digits"), out_dir=out, **{**SETTINGS, **changes})
    result = compare_job(job, progress=False)
    model = next(m for m in result.report["models"] if m["method"] == "calibrated")
    return result.status["calibrated"], model


def test_a_changed_ann_checkpoint_is_converted_anew(two_anns, tmp_path):
    ann = tmp_path / "ann.pt"
    shutil.copyfile(two_anns[0], ann)
    out = tmp_path / "report"
    status, first = _compare(out, checkpoints=(f"ann={ann}",))
    assert status == "converted"
    assert _compare(out, checkpoints=(f"ann={ann}",))[0] == "reused"  # same file: nothing redone
    shutil.copyfile(two_anns[1], ann)  # same path, other weights
    status, second = _compare(out, checkpoints=(f"ann={ann}",))
    assert status == "converted"
    assert second["model"]["path"] != first["model"]["path"] and Path(first["model"]["path"]).is_file()
    assert second["model"]["model_id"] != first["model"]["model_id"]
    assert second["model"]["settings"]["ann_sha256"] == file_sha256(two_anns[1])


@pytest.fixture(scope="module")
def cached_report(tmp_path_factory) -> tuple[Path, dict]:
    """A comparison whose ANN was trained into the cache and then converted; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("cached") / "report"
    status, model = _compare(out)
    assert status == "converted"
    return out, model


def _copy(report: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "report"
    shutil.copytree(report, out)
    (cached_ann,) = (out / "cache").glob("ann-*.pt")
    return out, cached_ann


def test_a_changed_cached_ann_is_converted_anew(two_anns, cached_report, tmp_path):
    out, cached_ann = _copy(cached_report[0], tmp_path)
    status, first = _compare(out)
    assert status == "reused" and first["model"]["settings"]["ann_sha256"] == file_sha256(cached_ann)
    shutil.copyfile(two_anns[1], cached_ann)  # the cache entry now holds other weights (e.g. retrained elsewhere)
    status, second = _compare(out)
    assert status == "converted"
    assert second["model"]["path"] != first["model"]["path"]
    assert second["model"]["settings"]["ann_sha256"] == file_sha256(two_anns[1])


def test_a_deleted_cached_ann_is_retrained_and_converted_anew(cached_report, tmp_path):
    out, cached_ann = _copy(cached_report[0], tmp_path)
    first = cached_report[1]
    weights = load_ann_checkpoint(cached_ann).state_dict
    cached_ann.unlink()
    status, second = _compare(out)
    # the new file records its own training time, so it is another file: the conversion is redone ...
    assert status == "converted" and second["model"]["settings"]["ann_sha256"] == file_sha256(cached_ann)
    # ... and as training is reproducible (same seed, same weights), it gives the same numbers
    retrained = load_ann_checkpoint(cached_ann).state_dict
    assert all(torch.equal(weights[k], retrained[k]) for k in weights)
    assert json.dumps(second["points"]) == json.dumps(first["points"])


def test_options_added_later_keep_direct_training_cache_keys_at_their_defaults():
    """label_smoothing (issue 30) at 0 leaves a train-snn cache key as it was before the option existed."""
    import dataclasses

    from spikeconv.neurons import trainable_neuron_config
    from spikeconv.training import SnnTrainConfig
    from spikeconv.workflows.compare.models import json_sha256, snn_train_record

    config = SnnTrainConfig(neuron=trainable_neuron_config("srif", mpr=True), timesteps=4, epochs=6, seed=0)
    assert json_sha256(snn_train_record(config)) == "01d0823bd032a7146c205bf96b17887cddd82ee697c989f3aa7c241acce47f03"  # at 8025ac3
    assert snn_train_record(dataclasses.replace(config, label_smoothing=0.1))["label_smoothing"] == 0.1
