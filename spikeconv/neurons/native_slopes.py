"""C++ element-wise passes of the training backward: MPR's φ and φ′, the rectangular and comb surrogates.

Why: written in torch ops each of these is 10-15 passes over a membrane-sized tensor (compare, abs, sign,
``where``, …; ``torch.where`` alone costs as much as seven additions), about 40 % of a ``srif --mpr`` training
step. Here everything but the transcendental functions is one pass before and one after; ``tanh``, ``pow`` and
``exp`` stay torch's own vectorised ops on a tensor of the same size as before, so every value is the same float
as the torch formula's (same IEEE operations in the same order, ``-ffp-contract=off``), which
``tests/neurons/test_native_slopes.py`` checks with ``torch.equal``. Compiled with the time loops of
:mod:`spikeconv.neurons.native` into one cached extension.
"""

from __future__ import annotations

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>

namespace {

constexpr int64_t kGrain = 32768;  // elements per parallel task, aten's element-wise grain

#define SPIKECONV_ELEMENTS __attribute__((noinline))

template <typename Body>
void for_ranges(int64_t n, const Body& body) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { body(begin, end); });
}

const float* in_ptr(const at::Tensor& t, int64_t n) {
  TORCH_CHECK(t.dtype() == at::kFloat && t.is_contiguous() && t.numel() == n && t.device().is_cpu(), "float32 CPU contiguous, same size");
  return t.data_ptr<float>();
}

float* out_ptr(at::Tensor& t, int64_t n) { return const_cast<float*>(in_ptr(t, n)); }

// NaN-propagating clamps, as torch.clamp / clamp_min
inline float clamp_min_nan(float x, float low) { return x != x ? x : (x < low ? low : x); }
inline float clamp_nan(float x, float low, float high) { return x != x ? x : std::min(std::max(x, low), high); }

// MPR's arguments: a = (u − 0.5)·3 (tanh's argument) and r = |u| (φ) or max(|u|, eps) (φ′; eps > 0).
SPIKECONV_ELEMENTS void mpr_parts_range(const float* __restrict__ u, float* __restrict__ a, float* __restrict__ r, float eps,
                                        bool clamp, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    a[i] = (u[i] - 0.5f) * 3.0f;
    const float m = std::fabs(u[i]);
    r[i] = clamp ? clamp_min_nan(m, eps) : m;
  }
}

void mpr_parts(const at::Tensor& u, at::Tensor& a, at::Tensor& r, double eps, bool clamp) {
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  float* pa = out_ptr(a, n);
  float* pr = out_ptr(r, n);
  const float ef = static_cast<float>(eps);
  for_ranges(n, [&](int64_t b, int64_t e) { mpr_parts_range(pu, pa, pr, ef, clamp, b, e); });
}

// φ: inside [0, 1] t/span + 1/2, else r·sign(u) (r = |u|^(1/3)); φ′: inside ((−t·t) + 1)·scale, else r/3 (r = max(|u|, eps)^(−2/3)).
template <bool kDerivative>
SPIKECONV_ELEMENTS void mpr_join_range(const float* __restrict__ u, const float* __restrict__ t, const float* __restrict__ r,
                                       float* __restrict__ out, float c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const float x = u[i];
    const bool inside = x >= 0.0f && x <= 1.0f;
    float middle, outer;
    if (kDerivative) {
      middle = (-(t[i] * t[i]) + 1.0f) * c;
      outer = r[i] / 3.0f;
    } else {
      middle = t[i] / c + 0.5f;
      outer = r[i] * (static_cast<float>(0.0f < x) - static_cast<float>(x < 0.0f));
    }
    out[i] = inside ? middle : outer;
  }
}

void mpr_join(const at::Tensor& u, const at::Tensor& t, const at::Tensor& r, at::Tensor& out, double c, bool derivative) {
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  const float* pt = in_ptr(t, n);
  const float* pr = in_ptr(r, n);
  float* po = out_ptr(out, n);
  const float cf = static_cast<float>(c);
  for_ranges(n, [&](int64_t b, int64_t e) {
    if (derivative) mpr_join_range<true>(pu, pt, pr, po, cf, b, e);
    else mpr_join_range<false>(pu, pt, pr, po, cf, b, e);
  });
}

// Rectangular surrogate σ′(x) = (|x| ≤ w/2 ? 1 : 0) / w.
SPIKECONV_ELEMENTS void rectangular_range(const float* __restrict__ x, float* __restrict__ out, float half, float width,
                                          int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) out[i] = (std::fabs(x[i]) <= half ? 1.0f : 0.0f) / width;
}

void rectangular_slope(const at::Tensor& x, at::Tensor& out, double half, double width) {
  const int64_t n = x.numel();
  const float* px = in_ptr(x, n);
  float* po = out_ptr(out, n);
  const float hf = static_cast<float>(half), wf = static_cast<float>(width);
  for_ranges(n, [&](int64_t b, int64_t e) { rectangular_range(px, po, hf, wf, b, e); });
}

// Heaviside spike Θ(x): 1 where x ≥ 0.
SPIKECONV_ELEMENTS void heaviside_range(const float* __restrict__ x, float* __restrict__ out, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) out[i] = x[i] >= 0.0f ? 1.0f : 0.0f;
}

void heaviside(const at::Tensor& x, at::Tensor& out) {
  const int64_t n = x.numel();
  const float* px = in_ptr(x, n);
  float* po = out_ptr(out, n);
  for_ranges(n, [&](int64_t b, int64_t e) { heaviside_range(px, po, b, e); });
}

// Comb surrogates' distance to the nearest peak, d = u − clamp(round(u/θ), 1, Γ)·θ, and q = (d·d)/b.
inline float comb_q(float u, float th, float high, float bw) {
  const float k = clamp_nan(std::nearbyint(u / th), 1.0f, high);
  const float d = u - k * th;
  return (d * d) / bw;
}

// exp(x) is +0 for x < −104 in torch's vectorised (Sleef) and scalar exp alike, and costs 10-35x an ordinary exp
// there (denormal intermediates); comb-max gives such x a placeholder 0 and writes those zeros itself afterwards.
constexpr float kExpZeroBelow = -104.0f;

// kind 0: comb-max's exp argument −q (placeholder 0 where exp would be 0); 1: comb-max's a·exp(−q) from exp's
// output in `out` (0 at the placeholders); 2: comb-rational's a/(1 + q), as torch's reciprocal(1 + q)·a.
template <int kKind>
SPIKECONV_ELEMENTS void comb_range(const float* __restrict__ u, float* __restrict__ out, float th, float high, float bw, float a,
                                   int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const float q = comb_q(u[i], th, high, bw);
    const bool zero = -q < kExpZeroBelow;
    if (kKind == 0) out[i] = zero ? 0.0f : -q;
    else if (kKind == 1) out[i] = zero ? 0.0f : out[i] * a;
    else out[i] = (1.0f / (1.0f + q)) * a;
  }
}

void comb_slope(const at::Tensor& u, at::Tensor& out, double threshold, int64_t max_spikes, double b, double a, int64_t kind) {
  TORCH_CHECK(kind >= 0 && kind <= 2, "kind 0, 1 or 2");
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  float* po = out_ptr(out, n);
  const float th = static_cast<float>(threshold), high = static_cast<float>(max_spikes);
  const float bw = static_cast<float>(b), af = static_cast<float>(a);
  for_ranges(n, [&](int64_t lo, int64_t hi) {
    if (kind == 0) comb_range<0>(pu, po, th, high, bw, af, lo, hi);
    else if (kind == 1) comb_range<1>(pu, po, th, high, bw, af, lo, hi);
    else comb_range<2>(pu, po, th, high, bw, af, lo, hi);
  });
}

}  // namespace
"""

FUNCTIONS = ["mpr_parts", "mpr_join", "rectangular_slope", "heaviside", "comb_slope"]
