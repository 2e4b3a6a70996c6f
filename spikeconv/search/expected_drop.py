"""The drop the ANN's own calibrated confidence expects: an estimate of the test-set drop that varies less than the
counted drop, and carries over from the training-data validation split to unseen images.

``--method auto`` validates on training samples (the test set is never used to choose). The counted drop there (ANN
accuracy minus SNN accuracy) rests on the few images whose class the SNN changes, so it is noisy (a standard error of
0.3-0.5 points on 2,000 images), and whether a change costs or gains a correct answer depends on labels the ANN was
trained on: on a 20-epoch ViT a counted drop of 0.40 on auto's 2,000 images was 0.84 on 10,000 other training images
and 1.15 on the test set, while on a ResNet-18 training images read higher than the test set.

Which predictions the SNN changes does carry over (the share it changes: within 0.7 points between training and test
images in five networks). So each changed prediction is charged what the ANN itself believes it costs: the
probability it gives its own class minus the one it gives the SNN's, after one temperature fitted to the validation
labels (Guo et al. 2017, "On calibration of modern neural networks"). An ANN that fits its training data too well
gets a sharp temperature, and every change then costs nearly a full point: the estimate errs high, not low.
Unchanged predictions cost 0, so its standard error is about a third of the counted drop's. On that ViT it read
0.97 ± 0.14 (test: 1.15). Over five networks it read at most 0.24 below the test-set drop but once (0.50, far over
budget) and up to 0.9 above it, where the counted drop read up to 0.75 below (docs/benchmarks.md, "Validation vs
test: the expected drop").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spikeconv.errors import DataError

SHARPEST = 100.0  # the inverse temperature's bounds: a validation split the ANN classifies perfectly fits no finite
FLATTEST = 0.01  # temperature, and the bound keeps its estimate finite (every changed prediction then costs ~1)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def as_logits(outputs: Tensor) -> Tensor:
    """The ANN's outputs as logits: an ANN that ends in softmax gives probabilities, whose logarithm is its logits."""
    outputs = outputs.float()
    if not torch.isfinite(outputs).all():
        raise DataError("the ANN's outputs on the validation split are not all finite: it cannot be scored")
    probabilities = outputs.dim() == 2 and bool((outputs >= 0).all()) and bool(
        torch.allclose(outputs.sum(dim=1), torch.ones(outputs.shape[0]), atol=1e-3))  # fmt: skip
    return outputs.clamp_min(1e-12).log() if probabilities else outputs


def fit_inverse_temperature(logits: Tensor, labels: Tensor, *, iterations: int = 60) -> float:
    """The β that minimises the cross-entropy of ``softmax(β · logits)`` against ``labels``.

    The loss is convex in β, so a golden-section search over log β finds its minimum within the bounds."""
    logits, labels = logits.double(), labels.long()

    def loss(log_beta: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits * math.exp(log_beta), labels))

    low, high = math.log(FLATTEST), math.log(SHARPEST)
    a, b = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(iterations):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - _GOLDEN * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + _GOLDEN * (high - low)
            loss_b = loss(b)
    return math.exp((low + high) / 2.0)


class ExpectedDrop:
    """The ANN's calibrated class probabilities on the validation split, and what they expect a candidate to lose.

    Holds one ``[n, classes]`` float tensor for the split (its size is the split's, never the data set's)."""

    def __init__(self, ann_outputs: Tensor, labels: Tensor) -> None:
        logits = as_logits(ann_outputs)
        if logits.dim() != 2 or logits.shape[0] != labels.numel() or logits.shape[0] == 0:
            raise DataError(f"expected [samples, classes] ANN outputs for {labels.numel()} labels, got {tuple(logits.shape)}")
        self.inverse_temperature = fit_inverse_temperature(logits, labels)
        self.probabilities = torch.softmax(logits.double() * self.inverse_temperature, dim=1).float()
        self.ann_predictions = logits.argmax(dim=1)

    def extend(self, ann_outputs: Tensor) -> None:
        """Add samples after the first ones, calibrated with the temperature fitted to those (confirmation samples)."""
        logits = as_logits(ann_outputs)
        if logits.dim() != 2 or logits.shape[1] != self.probabilities.shape[1]:
            raise DataError(f"expected [samples, {self.probabilities.shape[1]}] ANN outputs, got {tuple(logits.shape)}")
        more = torch.softmax(logits.double() * self.inverse_temperature, dim=1).float()
        self.probabilities = torch.cat([self.probabilities, more])
        self.ann_predictions = torch.cat([self.ann_predictions, logits.argmax(dim=1)])

    def score(self, predictions: Tensor) -> dict[str, float]:
        """The expected drop of a candidate with these predictions for the first ``len(predictions)`` samples, in
        points, and its standard error."""
        if predictions.numel() > self.ann_predictions.numel():
            raise DataError(f"{predictions.numel()} predictions for {self.ann_predictions.numel()} validation samples")
        rows = torch.arange(predictions.numel())
        cost = self.probabilities[rows, self.ann_predictions[rows]] - self.probabilities[rows, predictions.long()]
        n = cost.numel()
        se = float(cost.double().std()) / math.sqrt(n) if n > 1 else 0.0
        return {"expected_drop": round(100.0 * float(cost.double().mean()), 2), "expected_se": round(100.0 * se, 2)}
