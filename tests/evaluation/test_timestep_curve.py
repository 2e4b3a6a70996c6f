"""timestep_accuracy_curve and ann_accuracy on stand-in models with exactly known answers."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from spikeconv.errors import ConfigError, DataError
from spikeconv.evaluation import ann_accuracy, timestep_accuracy_curve


def test_curve_from_tensor_batches_is_exact(snn, readout, expected_curve) -> None:
    x, y = readout
    result = timestep_accuracy_curve(snn, [(x, y)], timesteps=4, progress=False)
    assert result.timesteps == (1, 2, 3, 4)
    assert result.accuracy == expected_curve
    assert result.ann_accuracy is None
    assert result.num_samples == 4
    assert result.label == "snn"


def test_one_simulation_per_batch_in_eval_and_inference_mode(snn, readout) -> None:
    x, y = readout
    timestep_accuracy_curve(snn, [(x[:2], y[:2]), (x[2:], y[2:])], timesteps=4, progress=False)
    assert snn.calls == [(4, False, True), (4, False, True)]


def test_curve_from_dataloader(snn, readout, expected_curve) -> None:
    x, y = readout
    loader = DataLoader(TensorDataset(x, y), batch_size=3, shuffle=False)
    result = timestep_accuracy_curve(snn, loader, timesteps=4, progress=False, label="loader")
    assert result.accuracy == expected_curve
    assert result.label == "loader"
    assert len(snn.calls) == 2  # batches of 3 and 1


def test_curve_from_dataset_uses_batch_size(snn, readout, expected_curve) -> None:
    x, y = readout
    result = timestep_accuracy_curve(
        snn, TensorDataset(x, y), timesteps=4, batch_size=3, progress=False
    )
    assert result.accuracy == expected_curve
    assert [steps for steps, _, _ in snn.calls] == [4, 4]


def test_shorter_simulation_gives_prefix_of_curve(snn, readout, expected_curve) -> None:
    result = timestep_accuracy_curve(snn, [readout], timesteps=2, progress=False)
    assert result.timesteps == (1, 2)
    assert result.accuracy == expected_curve[:2]


def test_ann_accuracy_measured_in_same_pass(snn, ann, readout) -> None:
    # The ANN sees the whole table summed over time: samples 0, 1, 2 right, sample 3 wrong.
    result = timestep_accuracy_curve(snn, [readout], timesteps=4, ann=ann, progress=False)
    assert result.ann_accuracy == 75.0
    assert ann.training_seen == [False]
    assert result.best_within(0.0) == 3
    assert result.best_within(25.0) == 1


def test_matches_running_mean_reference_on_random_data(snn) -> None:
    gen = torch.Generator().manual_seed(0)
    # Small integer currents make both the running sum and the running mean exact, with ties.
    x = torch.randint(-2, 3, (50, 8, 5), generator=gen).float()
    y = torch.randint(0, 5, (50,), generator=gen)
    result = timestep_accuracy_curve(
        snn, TensorDataset(x, y), timesteps=8, batch_size=16, progress=False
    )
    expected = []
    for t in range(1, 9):
        mean = x[:, :t].mean(dim=1)
        expected.append(100.0 * int((mean.argmax(-1) == y).sum()) / 50)
    assert list(result.accuracy) == pytest.approx(expected, abs=1e-12)
    assert len(set(result.accuracy)) > 1  # the check is not vacuous


def test_training_flags_restored_including_mixed_submodules(snn, ann, readout) -> None:
    snn.train()
    snn.norm.eval()  # a deliberately mixed state must survive
    ann.train()
    timestep_accuracy_curve(snn, [readout], timesteps=4, ann=ann, progress=False)
    assert snn.training and snn.drop.training and not snn.norm.training
    assert ann.training and ann.linear.training and ann.drop.training


def test_training_flags_restored_after_error(readout) -> None:
    class TimeSecond(nn.Module):
        def forward(self, x: Tensor, num_steps: int) -> Tensor:
            return x[:, :num_steps]

    model = TimeSecond().train()
    with pytest.raises(DataError):
        timestep_accuracy_curve(model, [readout], timesteps=2, progress=False)
    assert model.training


@pytest.mark.parametrize("timesteps", [0, -3, True, 2.0])
def test_invalid_timesteps_raise_config_error(snn, readout, timesteps) -> None:
    with pytest.raises(ConfigError, match="timesteps must be >= 1, got"):
        timestep_accuracy_curve(snn, [readout], timesteps=timesteps, progress=False)
    assert snn.calls == []


def test_timesteps_zero_message(snn, readout) -> None:
    with pytest.raises(ConfigError, match=r"^timesteps must be >= 1, got 0$"):
        timestep_accuracy_curve(snn, [readout], timesteps=0, progress=False)


def test_invalid_options_raise_before_simulating(snn, readout) -> None:
    with pytest.raises(ConfigError, match="label"):
        timestep_accuracy_curve(snn, [readout], timesteps=2, label="", progress=False)
    assert snn.calls == []
    with pytest.raises(ConfigError, match="batch_size"):
        timestep_accuracy_curve(
            snn, TensorDataset(*readout), timesteps=2, batch_size=0, progress=False
        )


@pytest.mark.parametrize(
    "data",
    [[], TensorDataset(torch.zeros(0, 4, 3), torch.zeros(0, dtype=torch.int64))],
    ids=["empty-list", "empty-dataset"],
)
def test_empty_data_raises_data_error(snn, data) -> None:
    with pytest.raises(DataError, match="no samples"):
        timestep_accuracy_curve(snn, data, timesteps=2, progress=False)


def test_wrong_output_shape_names_both_shapes(readout) -> None:
    class TimeSecond(nn.Module):
        def forward(self, x: Tensor, num_steps: int) -> Tensor:
            return x[:, :num_steps]  # [N, T, K] instead of [T, N, K]

    with pytest.raises(
        DataError, match=r"returned shape \(4, 3, 3\), expected \[T, N, K\] = \[3, 4, K\]"
    ):
        timestep_accuracy_curve(TimeSecond(), [readout], timesteps=3, progress=False)


def test_nan_output_raises_data_error(snn, readout) -> None:
    x, y = readout
    x = x.clone()
    x[2, 1, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        timestep_accuracy_curve(snn, [(x, y)], timesteps=4, progress=False)


def test_labels_outside_readout_raise_data_error(snn, readout) -> None:
    x, _ = readout
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\]"):
        timestep_accuracy_curve(snn, [(x, torch.tensor([0, 1, 2, 3]))], timesteps=2, progress=False)


def test_float_labels_raise_data_error(snn, readout) -> None:
    x, y = readout
    with pytest.raises(DataError, match="integer class indices"):
        timestep_accuracy_curve(snn, [(x, y.float())], timesteps=2, progress=False)


def test_ann_with_wrong_output_raises_data_error(snn, readout) -> None:
    with pytest.raises(DataError, match="the ANN returned"):
        timestep_accuracy_curve(snn, [readout], timesteps=2, ann=nn.Flatten(), progress=False)


def test_no_stdout_and_progress_on_stderr(snn, readout, capsys) -> None:
    timestep_accuracy_curve(snn, [readout, readout], timesteps=4, progress=True, label="bar")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bar" in captured.err


def test_logs_summary_to_spikeconv_logger(snn, readout, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="spikeconv"):
        timestep_accuracy_curve(snn, [readout], timesteps=4, progress=False, label="logged")
    assert "logged: 75.00% after 4 steps on 4 samples" in caplog.text


def test_device_argument_accepts_string_and_device(snn, readout, expected_curve) -> None:
    for device in ("cpu", torch.device("cpu")):
        result = timestep_accuracy_curve(snn, [readout], timesteps=4, device=device, progress=False)
        assert result.accuracy == expected_curve


def _identity_linear() -> nn.Linear:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.copy_(torch.tensor([0.0, 0.5]))
    return model


def test_ann_accuracy_known_answer() -> None:
    # logits = x + (0, 0.5): predictions 0, 1, 1, 1, 1 ([1,1] -> [1,1.5] -> class 1).
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0], [2.0, 1.8]])
    y = torch.tensor([0, 1, 0, 1, 0])
    model = _identity_linear().train()
    for data in (TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=2), [(x, y)]):
        assert ann_accuracy(model, data, batch_size=2, progress=False) == 60.0
    assert model.training


def test_ann_accuracy_errors() -> None:
    with pytest.raises(DataError, match="no samples"):
        ann_accuracy(_identity_linear(), [], progress=False)
    with pytest.raises(DataError, match=r"labels must lie in \[0, 1\]"):
        ann_accuracy(
            _identity_linear(), [(torch.zeros(2, 2), torch.tensor([0, 5]))], progress=False
        )
    with pytest.raises(DataError, match=r"\(x, y\) pair"):
        ann_accuracy(_identity_linear(), [torch.zeros(2, 2)], progress=False)
    with pytest.raises(DataError, match="Dataset or an iterable"):
        ann_accuracy(_identity_linear(), 42, progress=False)
