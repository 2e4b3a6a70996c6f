"""The expected drop auto checks beside the counted one: temperature fit, its properties, and its record (digits)."""

from __future__ import annotations

import math

import pytest
import torch

from spikeconv.errors import DataError
from spikeconv.search.expected_drop import SHARPEST, ExpectedDrop, as_logits, fit_inverse_temperature


def _sampled(beta: float, n: int = 20000, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits, and labels drawn from softmax(beta * logits): a model whose calibrated temperature is known."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator) * 2.0
    labels = torch.multinomial(torch.softmax(beta * logits, dim=1), 1, generator=generator).flatten()
    return logits, labels


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_the_fitted_inverse_temperature_is_the_one_the_labels_were_drawn_with(beta):
    logits, labels = _sampled(beta)
    assert fit_inverse_temperature(logits, labels) == pytest.approx(beta, rel=0.08)


def test_on_calibrated_probabilities_the_expected_drop_matches_the_counted_drop():
    """Labels drawn from the model's own probabilities: any change of prediction then costs, on average, what the
    probabilities say, so the two estimates agree within their standard errors (the counted one over 20,000 samples)."""
    logits, labels = _sampled(1.0, seed=1)
    expected = ExpectedDrop(logits, labels)
    ann = logits.argmax(dim=1)
    changed = ann.clone()
    flip = torch.arange(len(ann)) % 4 == 0  # a quarter of the predictions move to the runner-up class
    changed[flip] = logits.topk(2, dim=1).indices[flip, 1]
    scored = expected.score(changed)
    counted = 100.0 * float((ann == labels).float().mean() - (changed == labels).float().mean())
    counted_se = 100.0 * math.sqrt(float(((ann == labels).float() - (changed == labels).float()).var()) / len(labels))
    assert scored["expected_drop"] > 0
    assert abs(scored["expected_drop"] - counted) < 3 * math.hypot(scored["expected_se"], counted_se)
    assert scored["expected_se"] < counted_se  # unchanged predictions cost 0 and changed ones a fraction: less noise


def test_unchanged_predictions_cost_nothing_and_an_overfit_ann_charges_each_change_in_full():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0], [4.0, 0.0, 0.0]])
    labels = logits.argmax(dim=1)  # separable: no finite temperature fits; the fit sharpens until the loss is flat
    expected = ExpectedDrop(logits, labels)
    assert 5.0 < expected.inverse_temperature <= SHARPEST and float(expected.probabilities.max(dim=1).values.min()) > 0.9999
    assert expected.score(labels) == {"expected_drop": 0.0, "expected_se": 0.0}
    assert expected.score(torch.tensor([1, 1, 2, 0]))["expected_drop"] == pytest.approx(25.0, abs=0.01)


def test_an_ann_that_ends_in_softmax_is_read_as_its_logits():
    logits, labels = _sampled(2.0, n=2000, seed=2)
    from_logits, from_probabilities = ExpectedDrop(logits, labels), ExpectedDrop(torch.softmax(logits, dim=1), labels)
    assert from_probabilities.inverse_temperature == pytest.approx(from_logits.inverse_temperature, rel=1e-3)
    shifted = (logits.argmax(dim=1) + 1) % logits.shape[1]
    assert from_probabilities.score(shifted) == pytest.approx(from_logits.score(shifted), abs=0.02)
    assert torch.equal(as_logits(logits), logits)  # plain logits pass through


@pytest.mark.parametrize("outputs", [torch.full((3, 2), float("nan")), torch.zeros(3, 2, 2), torch.zeros(0, 2)])
def test_outputs_it_cannot_score_are_refused_in_one_line(outputs):
    with pytest.raises(DataError) as error:
        ExpectedDrop(outputs, torch.zeros(outputs.shape[0], dtype=torch.long))
    assert "\n" not in str(error.value)


def test_confirmation_samples_keep_the_temperature_fitted_on_the_search_samples():
    logits, labels = _sampled(1.5, n=3000, seed=3)
    first = ExpectedDrop(logits[:1000], labels[:1000])
    beta = first.inverse_temperature
    first.extend(logits[1000:])
    assert first.inverse_temperature == beta and first.probabilities.shape == (3000, 5)
    whole = torch.softmax(logits.double() * beta, dim=1).float()
    assert torch.allclose(first.probabilities, whole) and torch.equal(first.ann_predictions, logits.argmax(dim=1))
    with pytest.raises(DataError):
        first.extend(torch.zeros(4, 3))
    with pytest.raises(DataError):
        first.score(torch.zeros(3001, dtype=torch.long))


def test_search_and_confirmation_split_the_held_out_samples_once_each_and_draw_the_search_part():
    from spikeconv.search.splits import search_and_confirmation

    held_out = torch.utils.data.TensorDataset(torch.arange(1000).float(), torch.arange(1000) // 100)  # stored class by class
    searched, stages = search_and_confirmation(held_out, 200)
    assert [len(searched), *map(len, stages)] == [200, 300, 500]
    seen = [int(x) for part in (searched, *stages) for x, _ in part]
    assert sorted(seen) == list(range(1000))
    assert len({int(y) for _, y in searched}) == 10  # drawn across the classes, not the first 200 samples
    assert search_and_confirmation(held_out, 1000) == (held_out, [])
