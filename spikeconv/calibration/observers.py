"""Observers: modules that watch one activation site and compute its threshold.

An observer is inserted after a ReLU call site by :func:`prepare`. ``forward`` records statistics
of what passes (detached, safe on empty input) and returns its input unchanged; ``compute()``
returns the threshold over everything recorded: one value, or one per channel (dimension 1).
Statistics cover the whole calibration set, not an average of per-batch values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from spikeconv.errors import CalibrationError, ConfigError

#: Threshold for a site (or channel) that never produced a positive value: it cannot spike
#: anyway, so any positive value gives the same SNN.
SILENT_THRESHOLD = 1.0


def _rows(x: Tensor, per_channel: bool) -> Tensor:
    """``[N, C, ...]`` -> ``[C, N·...]`` (per channel) or ``[1, numel]`` (per layer), as float."""
    x = x.detach().float()
    if per_channel and x.dim() >= 2:
        return x.transpose(0, 1).reshape(x.shape[1], -1)
    return x.reshape(1, -1)


class Observer(nn.Module):
    """Base class; subclasses record one statistic and turn it into a threshold."""

    def __init__(self, *, per_channel: bool = False) -> None:
        super().__init__()
        self.per_channel = per_channel
        self.register_buffer("samples_seen", torch.zeros((), dtype=torch.long))
        self.site = ""  # set by prepare(), used in error messages

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() == 0:
            return x
        if not torch.isfinite(x).all():
            raise CalibrationError(f"activation site {self.site!r} saw NaN/Inf on calibration data")
        rows = _rows(x, self.per_channel)
        self._record(rows)
        self.samples_seen += x.shape[0]
        return x

    def _record(self, rows: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> Tensor:
        """The threshold(s): shape ``[1]`` or ``[C]``, every value > 0."""
        if self.samples_seen.item() == 0:
            raise CalibrationError(f"activation site {self.site!r} saw no calibration data")
        values = self._compute()
        return torch.where(values > 0, values, torch.full_like(values, SILENT_THRESHOLD))

    def _compute(self) -> Tensor:
        raise NotImplementedError


class MaxObserver(Observer):
    """Threshold = the largest activation seen (Diehl et al. 2015 "max-norm")."""

    def __init__(self, *, per_channel: bool = False) -> None:
        super().__init__(per_channel=per_channel)
        self.register_buffer("max_value", torch.zeros(0))

    def _record(self, rows: Tensor) -> None:
        batch_max = rows.amax(dim=1).clamp_min(0)
        if self.max_value.numel() == 0:
            self.max_value = batch_max
        else:
            self.max_value = torch.maximum(self.max_value, batch_max)

    def _compute(self) -> Tensor:
        return self.max_value.clone()


class PercentileObserver(Observer):
    """Threshold = the ``q``-th percentile of the positive activations (Rueckauer et al. 2017).

    Zeros are left out, as in snn_toolbox, so the threshold does not depend on how sparse a layer
    is. The statistic is exact up to one histogram bin: a ``bins``-bin histogram over
    ``[0, upper]`` per row, where ``upper`` doubles (merging bin pairs exactly) whenever a larger
    value arrives, so the bin width stays below ``2·max/bins``. The result never exceeds the
    exact maximum.
    """

    def __init__(self, q: float = 99.99, *, per_channel: bool = False, bins: int = 4096) -> None:
        super().__init__(per_channel=per_channel)
        if not 0 < q <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {q}")
        if bins < 2 or bins & (bins - 1):
            raise ConfigError(f"histogram bins must be a power of two >= 2, got {bins}")
        self.q = float(q)
        self.bins = bins
        self.register_buffer("histogram", torch.zeros(0, bins, dtype=torch.long))
        self.register_buffer("upper", torch.zeros(0))
        self.register_buffer("max_value", torch.zeros(0))

    def _grow(self, row: int, needed: float) -> None:
        old = self.upper[row].item()
        if old <= 0:
            self.upper[row] = needed
            return
        factor = 2 ** math.ceil(math.log2(needed / old))
        merged = torch.zeros(self.bins, dtype=torch.long, device=self.histogram.device)
        if factor >= self.bins:
            merged[0] = self.histogram[row].sum()
        else:
            merged[: self.bins // factor] = self.histogram[row].reshape(-1, factor).sum(dim=1)
        self.histogram[row] = merged
        self.upper[row] = old * factor

    def _record(self, rows: Tensor) -> None:
        if self.histogram.shape[0] == 0:
            count = rows.shape[0]
            self.histogram = torch.zeros(count, self.bins, dtype=torch.long, device=rows.device)
            self.upper = torch.zeros(count, device=rows.device)
            self.max_value = torch.zeros(count, device=rows.device)
        batch_max = rows.amax(dim=1)
        self.max_value = torch.maximum(self.max_value, batch_max.clamp_min(0))
        for row in torch.nonzero(batch_max > self.upper).flatten().tolist():
            self._grow(row, batch_max[row].item())
        positive = rows > 0
        scale = self.bins / self.upper.clamp_min(torch.finfo(torch.float32).tiny)
        index = (rows * scale[:, None]).long().clamp_(0, self.bins - 1)
        index += torch.arange(rows.shape[0], device=rows.device)[:, None] * self.bins
        counts = torch.bincount(index[positive], minlength=rows.shape[0] * self.bins)
        self.histogram += counts.reshape(rows.shape[0], self.bins)

    def _compute(self) -> Tensor:
        hist = self.histogram.double()
        total = hist.sum(dim=1)
        target = total * (self.q / 100.0)
        cumulative = hist.cumsum(dim=1)
        index = torch.searchsorted(cumulative, target[:, None]).clamp(max=self.bins - 1)
        before = torch.where(index > 0, cumulative.gather(1, (index - 1).clamp(min=0)), 0.0)
        in_bin = hist.gather(1, index).clamp_min(1.0)
        fraction = ((target[:, None] - before) / in_bin).clamp(0.0, 1.0)
        width = self.upper.double()[:, None] / self.bins
        value = ((index + fraction) * width).squeeze(1).float()
        value = torch.minimum(value, self.max_value)
        return torch.where(total > 0, value, torch.zeros_like(value))


SEARCH_ELEMENTS = 1 << 22
"""Entries of the bisection (channels x 95 candidates x T) and of the prefix sums (3 x channels x bins) that
:class:`MseObserver` holds at once: a block of channels at a time, a few tens of MB."""


class MseObserver(PercentileObserver):
    """Threshold minimising the rate-coding error at a target T (SNN calibration's MMSE search).

    Li, Deng, Dong, Gong, Gu, "A Free Lunch From ANN: Towards Efficient, Accurate Spiking Neural
    Networks Calibration", ICML 2021: choose

        θ* = argmin_{θ ∈ {m·(1 − 0.01·i) : i = 0..94}}  Σ_x (Q(x; T, θ) − x)²
        Q(x; T, θ) = (θ/T) · clip(⌊x·T/θ + s⌋, 0, T)

    where m is the maximum activation, T the timesteps the SNN will run and s the rounding shift
    of the neuron's initial membrane (s = 0.5 for V[0] = θ/2, s = 0 for the paper's plain floor).
    A low threshold clips outliers but resolves the bulk finely; the search balances the two for
    the T actually used. The sum runs over the whole calibration set through the histogram of
    :class:`PercentileObserver` (exact up to one bin; zeros contribute no error).
    """

    def __init__(self, timesteps: int = 8, *, shift: float = 0.5, per_channel: bool = False, bins: int = 4096) -> None:
        super().__init__(100.0, per_channel=per_channel, bins=bins)
        if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
            raise ConfigError(f"MSE threshold search needs timesteps >= 1, got {timesteps!r}")
        if not 0.0 <= shift < 1.0:
            raise ConfigError(f"rounding shift must be in [0, 1), got {shift}")
        self.timesteps = timesteps
        self.shift = float(shift)

    def _compute(self) -> Tensor:
        """The search over the 95 candidates through prefix sums of the histogram: each level's bins are a
        range, found by bisection with the level formula itself, so a candidate costs ``O(T log bins)`` per
        channel instead of a pass over every bin (:meth:`reference_compute` is that pass; both pick the same θ
        up to the rounding of the error sums). All candidates are searched at once, a block of channels at a
        time so that the ``[channels, 95, T]`` bisection stays within :data:`SEARCH_ELEMENTS`."""
        clips = 1.0 - 0.01 * torch.arange(95, dtype=torch.float64)
        thetas = (self.max_value.double()[:, None] * clips[None, :]).clamp_min(1e-12)  # [C, 95], largest first
        width = self.upper.double()[:, None] / self.bins
        block = max(1, min(SEARCH_ELEMENTS // (95 * (self.timesteps + 2)), SEARCH_ELEMENTS // (3 * (self.bins + 1))))
        best = torch.cat([self._best_of(self.histogram[c : c + block].double(), width[c : c + block], thetas[c : c + block])
                          for c in range(0, thetas.shape[0], block)])  # fmt: skip
        return torch.where(self.histogram.sum(dim=1) > 0, best, torch.zeros_like(best)).float()

    def _best_of(self, hist: Tensor, width: Tensor, thetas: Tensor) -> Tensor:
        """The candidate of ``thetas`` (``[C, A]``) with the least quantisation error of ``hist``; the first on a tie."""
        steps, (channels, candidates) = self.timesteps, thetas.shape
        centres = (torch.arange(self.bins, dtype=torch.float64)[None, :] + 0.5) * width
        prefix = torch.stack([F.pad(torch.cumsum(m, dim=1), (1, 0)) for m in (hist, hist * centres, hist * centres * centres)])
        edges = torch.cat([torch.zeros(channels, candidates, 1, dtype=torch.long), self._level_starts(width, thetas),
                           torch.full((channels, candidates, 1), self.bins, dtype=torch.long)], dim=2).reshape(channels, -1)  # fmt: skip
        sums = prefix.gather(2, edges[None].expand(3, -1, -1)).reshape(3, channels, candidates, steps + 2)
        count, first, second = sums[..., 1:] - sums[..., :-1]  # [C, A, T+1]: each level's bins
        q = torch.arange(steps + 1, dtype=torch.float64) * (thetas[..., None] / steps)  # q_k = k·θ/T
        err = (q * q * count - 2.0 * q * first + second).sum(dim=2)
        return thetas.gather(1, err.argmin(dim=1, keepdim=True)).squeeze(1)

    def _level_starts(self, width: Tensor, thetas: Tensor) -> Tensor:
        """``[C, A, T]``: for k = 1..T the first bin whose level ``⌊c·T/θ + s⌋`` is at least k (``bins`` if none).

        Solved for the bin in closed form, then moved bin by bin until the level evaluated with the
        operations of :meth:`reference_compute`, in the same order, agrees (rounding moves it by one at
        most), so each bin lands in the level the definition gives it."""
        steps, bins = self.timesteps, self.bins
        wanted = torch.arange(1, steps + 1, dtype=torch.float64)
        theta, width = thetas[..., None], width[..., None]

        def reached(b: Tensor) -> Tensor:  # level of bin b >= k; the bin past the last always "reaches"
            return ((((b.double() + 0.5) * width) * steps / theta + self.shift).floor() >= wanted) | (b >= bins)

        guess = torch.ceil((wanted - self.shift) * theta / (width * steps) - 0.5)
        start = torch.nan_to_num(guess, nan=bins, posinf=bins, neginf=0).clamp(0, bins).long()  # an empty channel: none
        while True:
            up = ~reached(start)
            down = (start > 0) & reached((start - 1).clamp_min(0))
            if not bool(up.any() or down.any()):
                return start
            start = start + up.long() - down.long()

    def reference_compute(self) -> Tensor:
        """The same search as a pass over every bin for every candidate: the definition, kept for the tests."""
        hist = self.histogram.double()
        width = self.upper.double()[:, None] / self.bins
        centres = (torch.arange(self.bins, dtype=torch.float64)[None, :] + 0.5) * width
        top = self.max_value.double()[:, None]
        best_err = torch.full((hist.shape[0],), float("inf"), dtype=torch.float64)
        best = self.max_value.double().clone()
        steps = self.timesteps
        centres = centres.expand_as(hist).contiguous() if centres.shape != hist.shape else centres
        work = torch.empty_like(hist)  # one buffer, updated in place: the same operations in the same order
        for i in range(95):
            theta = (top * (1.0 - 0.01 * i)).clamp_min(1e-12)
            torch.mul(centres, steps, out=work).div_(theta).add_(self.shift).floor_().clamp_(0, steps)  # levels
            err = work.mul_(theta / steps).sub_(centres).pow_(2).mul_(hist).sum(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, theta.squeeze(1), best)
        total = hist.sum(dim=1)
        return torch.where(total > 0, best, torch.zeros_like(best)).float()


class FixedObserver(Observer):
    """A threshold known before calibration (e.g. a QCFS activation's learned λ); data only counts."""

    def __init__(self, value: float) -> None:
        super().__init__(per_channel=False)
        if not value > 0:
            raise ConfigError(f"a fixed threshold must be > 0, got {value}")
        self.register_buffer("value", torch.tensor([float(value)]))

    def _record(self, rows: Tensor) -> None:
        return None

    def _compute(self) -> Tensor:
        return self.value.clone()
