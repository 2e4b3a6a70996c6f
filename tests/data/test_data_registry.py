"""load_dataset and the registry: names, splits, limits, infos and missing-file errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikeconv.data import (
    ArrayDataset,
    DatasetInfo,
    Split,
    available_datasets,
    dataset_info,
    load_dataset,
    register_dataset,
)
from spikeconv.data import registry as registry_module
from spikeconv.errors import ConfigError, DatasetNotFoundError

_LOCAL = ["digits", "fashion-mnist"]  # present on the project's machines


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKECONV_DATA", raising=False)


@pytest.fixture
def private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the test its own copy of the registry dict, restored afterwards."""
    monkeypatch.setattr(registry_module, "_DATASETS", dict(registry_module._DATASETS))


def test_available_names_are_sorted_and_complete() -> None:
    names = available_datasets()
    assert names == sorted(names)
    assert {"fashion-mnist", "digits", "mnist", "cifar10", "cifar100"} <= set(names)


@pytest.mark.parametrize("name", available_datasets())
def test_every_entry_has_consistent_info(name: str) -> None:
    info = dataset_info(name)
    assert info.name == name
    assert len(info.mean) == len(info.std) == info.sample_shape[0]


@pytest.mark.parametrize("name", _LOCAL)
def test_local_sets_match_their_info(name: str, no_env: None) -> None:
    dataset = load_dataset(name, split=Split.TEST, limit=20)
    info = dataset_info(name)
    assert len(dataset) == 20
    assert (dataset.name, dataset.num_classes, dataset.sample_shape) == (
        info.name,
        info.num_classes,
        info.sample_shape,
    )
    image, label = dataset[19]
    assert image.shape == info.sample_shape and 0 <= label < info.num_classes


def test_known_normalisation_constants() -> None:
    assert dataset_info("fashion-mnist").mean == (0.2860,)
    assert dataset_info("mnist").std == (0.3081,)
    assert dataset_info("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert dataset_info("cifar100").num_classes == 100


def test_limit_keeps_the_first_samples() -> None:
    full = load_dataset("digits", split=Split.TRAIN)
    limited = load_dataset("digits", split=Split.TRAIN, limit=7)
    assert isinstance(limited, ArrayDataset)
    assert torch.equal(limited.images, full.images[:7])
    assert len(load_dataset("digits", split=Split.TEST, limit=10_000)) == 500


@pytest.mark.parametrize("limit", [0, -3, True, 2.5])
def test_bad_limit_is_a_config_error(limit: object) -> None:
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("digits", split=Split.TRAIN, limit=limit)  # type: ignore[arg-type]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("fashion_mnist", split=Split.TRAIN)
    message = str(info.value)
    for name in available_datasets():
        assert name in message
    assert "imagefolder:PATH" in message
    with pytest.raises(ConfigError, match="choose one of"):
        dataset_info("imagenet")


def test_split_from_name_and_string_splits_are_refused() -> None:
    assert Split.from_name("train") is Split.TRAIN
    assert Split.from_name(" TEST ") is Split.TEST
    with pytest.raises(ConfigError, match="choose one of: train, test"):
        Split.from_name("validation")
    with pytest.raises(ConfigError, match="Split.from_name"):
        load_dataset("digits", split="train")  # type: ignore[arg-type]


def test_mnist_without_root_says_pass_data_root(no_env: None) -> None:
    with pytest.raises(DatasetNotFoundError, match="--data-root") as info:
        load_dataset("mnist", split=Split.TRAIN)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "folder"),
    [("mnist", "MNIST/raw"), ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")],
)
def test_torchvision_sets_missing_files_say_where_and_download(
    tmp_path: Path, name: str, folder: str
) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, split=Split.TEST, root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / folder) in message
    assert "pass --download to fetch them" in message


def test_torchvision_sets_use_the_env_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIKECONV_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "cifar-10-batches-py")):
        load_dataset("cifar10", split=Split.TRAIN)


def test_duplicate_registration_raises(private_registry: None) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("digits", lambda **_: None)
    with pytest.raises(ConfigError, match="no ':'"):
        register_dataset("imagefolder:x", lambda **_: None)


def test_registered_loader_is_called_with_keywords(private_registry: None) -> None:
    calls: list[dict] = []

    def tiny(*, split: Split, root: Path | None, download: bool) -> ArrayDataset:
        calls.append({"split": split, "root": root, "download": download})
        images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
        return ArrayDataset(images, torch.tensor([0, 1, 0]), num_classes=2, name="tiny")

    info = DatasetInfo("tiny", 2, (1, 2, 2), (0.0,), (1.0,))
    register_dataset("tiny", tiny, info=info)
    assert "tiny" in available_datasets()
    assert dataset_info("tiny") is info
    dataset = load_dataset("tiny", split=Split.TEST, root="~/d", limit=2)
    assert len(dataset) == 2
    assert calls == [{"split": Split.TEST, "root": Path("~/d").expanduser(), "download": False}]
    with pytest.raises(ConfigError, match="DatasetInfo is named"):
        register_dataset("other", tiny, info=info)


def test_dataset_info_validates() -> None:
    with pytest.raises(ConfigError, match="one value per channel"):
        DatasetInfo("x", 10, (3, 8, 8), (0.5,), (0.5,))
    with pytest.raises(ConfigError, match="std"):
        DatasetInfo("x", 10, (1, 8, 8), (0.5,), (0.0,))
