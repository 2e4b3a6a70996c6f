"""train_ann / evaluate_classifier on scikit-learn digits: accuracy, determinism, contracts."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import TensorDataset

from spikeconv.errors import ConfigError, DataError
from spikeconv.models import build_model
from spikeconv.training import (
    AnnTrainConfig,
    Augment,
    EpochRecord,
    Optimizer,
    Schedule,
    evaluate_classifier,
    train_ann,
)

FAST = AnnTrainConfig(epochs=3, batch_size=32, lr=5e-3, seed=0)


@pytest.fixture
def digits() -> tuple[TensorDataset, TensorDataset]:
    """Digits as [N, 1, 8, 8] floats in [0, 1]; a stratified 75/25 split."""
    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, random_state=0, stratify=labels
    )
    return TensorDataset(x_train, y_train), TensorDataset(x_test, y_test)


def _digits_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10)


def test_digits_cnn_learns_held_out_digits(digits) -> None:
    train, test = digits
    model = _digits_cnn()
    records: list[EpochRecord] = []
    history = train_ann(
        model, train, config=FAST, eval_data=test, progress=False, on_epoch_end=records.append
    )
    assert [r.epoch for r in history.records] == [1, 2, 3]
    assert list(history.records) == records
    assert history.final_eval_accuracy is not None and history.final_eval_accuracy > 85.0
    assert history.records[-1].train_loss < history.records[0].train_loss
    assert all(r.seconds > 0 for r in history.records)
    assert not model.training  # returned in eval mode
    assert evaluate_classifier(model, test) == pytest.approx(history.final_eval_accuracy)


def test_same_seed_gives_identical_weights(digits) -> None:
    train, _ = digits
    config = AnnTrainConfig(epochs=1, batch_size=64, lr=5e-3, augment=Augment.SHIFT_FLIP)
    models = [_digits_cnn(seed=0), _digits_cnn(seed=0)]
    for model in models:
        train_ann(model, train, config=config, progress=False)
    first, second = (m.state_dict() for m in models)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = _digits_cnn(seed=0)
    train_ann(other, train, config=AnnTrainConfig(epochs=1, batch_size=64, seed=1), progress=False)
    assert not torch.equal(other.state_dict()["conv1.weight"], first["conv1.weight"])


def test_global_rng_state_is_left_alone(digits) -> None:
    train, _ = digits
    model = _digits_cnn()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_ann(model, train, config=AnnTrainConfig(epochs=1, batch_size=256), progress=False)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "config",
    [
        AnnTrainConfig(epochs=3, batch_size=32, lr=0.05, optimizer=Optimizer.SGD,
                       schedule=Schedule.COSINE, augment=Augment.SHIFT),
        AnnTrainConfig(epochs=3, batch_size=32, lr=2e-3, schedule=Schedule.CONSTANT,
                       weight_decay=1e-4),
    ],
)  # fmt: skip
def test_other_optimisers_and_schedules_train(digits, config: AnnTrainConfig) -> None:
    train, test = digits
    model = _digits_cnn()
    before = evaluate_classifier(model, test)
    history = train_ann(model, train, config=config, eval_data=test, progress=False)
    assert before < 30.0
    assert history.final_eval_accuracy > 80.0


def test_trailing_batch_of_one_is_dropped_for_batch_norm(digits) -> None:
    train, _ = digits
    subset = TensorDataset(*(t[:65] for t in train.tensors))  # 65 = 64 + 1
    model = _digits_cnn()
    history = train_ann(
        model, subset, config=AnnTrainConfig(epochs=1, batch_size=64), progress=False
    )
    assert len(history.records) == 1


def test_evaluate_classifier_restores_training_flag(digits) -> None:
    _, test = digits
    model = _digits_cnn()
    model.train()
    accuracy = evaluate_classifier(model, test, batch_size=100)
    assert model.training
    assert 0.0 <= accuracy <= 100.0
    model.eval()
    evaluate_classifier(model, test)
    assert not model.training


def test_evaluate_classifier_counts_exactly() -> None:
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)  # predicts the argmax pixel

    images = torch.eye(4).view(4, 1, 1, 4)
    labels = torch.tensor([0, 1, 3, 3])
    assert evaluate_classifier(Fixed(), TensorDataset(images, labels), batch_size=3) == 75.0


def test_empty_data_rejected() -> None:
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="train_data is empty"):
        train_ann(_digits_cnn(), empty, config=FAST, progress=False)
    with pytest.raises(DataError, match="evaluation data is empty"):
        evaluate_classifier(_digits_cnn(), empty)


def test_non_finite_loss_raises_config_error() -> None:
    images = torch.full((8, 1, 8, 8), float("nan"))
    data = TensorDataset(images, torch.arange(8) % 10)
    with pytest.raises(ConfigError, match="training loss became nan in epoch 1; lower --lr"):
        train_ann(
            _digits_cnn(), data, config=AnnTrainConfig(epochs=1, batch_size=4), progress=False
        )
