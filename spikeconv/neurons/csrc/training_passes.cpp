// Element-wise passes of direct training: MPR's φ and φ′, the rectangular and comb surrogates, the Heaviside
// spike, and one step's backward of the binary and multi-threshold neurons (bound under the names in ops.h).
//
// Why: written in torch ops each of these is 10-15 passes over a membrane-sized tensor (compare, abs, sign,
// where, …; torch.where alone costs as much as seven additions), about 40 % of a srif --mpr training step. Here
// everything but the transcendental functions is one pass before and one after; tanh, pow and exp stay torch's
// own vectorised ops on a tensor of the same size as before, so every value is the same float as the torch
// formula's (same IEEE operations in the same order, -ffp-contract=off), which
// tests/neurons/test_native_training.py checks with torch.equal.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops.h"

// Element-wise loops are kept out of line, as the time loops are (common.h, SPIKECONV_BLOCK).
#define SPIKECONV_ELEMENTS __attribute__((noinline))

namespace spikeconv {

namespace {

constexpr int64_t kGrain = 32768;  // elements per parallel task, aten's element-wise grain

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

// φ and φ′ from their parts (torch's tanh t = tanh(3(u − 1/2)) and pow r): inside [0, 1] φ = t/span + 1/2 and
// φ′ = ((−t·t) + 1)·scale, outside φ = r·sign(u) (r = |u|^(1/3)) and φ′ = r/3 (r = max(|u|, eps)^(−2/3)).
inline bool mpr_inside(float u) { return u >= 0.0f && u <= 1.0f; }
inline float mpr_phi(float u, float t, float r, float span) {
  return mpr_inside(u) ? t / span + 0.5f : r * (static_cast<float>(0.0f < u) - static_cast<float>(u < 0.0f));
}
inline float mpr_slope(float u, float t, float r, float scale) { return mpr_inside(u) ? (-(t * t) + 1.0f) * scale : r / 3.0f; }

// Rectangular surrogate σ′(x) = (|x| ≤ w/2 ? 1 : 0) / w.
inline float rectangular(float x, float half, float width) { return (std::fabs(x) <= half ? 1.0f : 0.0f) / width; }

// MPR's arguments: a = (u − 0.5)·3 (tanh's argument) and r = |u| (φ) or max(|u|, eps) (φ′; eps > 0).
SPIKECONV_ELEMENTS void mpr_parts_range(const float* __restrict__ u, float* __restrict__ a, float* __restrict__ r, float eps,
                                        bool clamp, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    a[i] = (u[i] - 0.5f) * 3.0f;
    const float m = std::fabs(u[i]);
    r[i] = clamp ? clamp_min_nan(m, eps) : m;
  }
}

}  // namespace

void mpr_parts(const at::Tensor& u, at::Tensor& a, at::Tensor& r, double eps, bool clamp) {
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  float* pa = out_ptr(a, n);
  float* pr = out_ptr(r, n);
  const float ef = static_cast<float>(eps);
  for_ranges(n, [&](int64_t b, int64_t e) { mpr_parts_range(pu, pa, pr, ef, clamp, b, e); });
}

namespace {

// Both: a = (u − 0.5)·3 (the same tanh serves φ and φ′), r1 = |u| (φ's pow) and r2 = max(|u|, eps) (φ′'s pow).
SPIKECONV_ELEMENTS void mpr_parts_both_range(const float* __restrict__ u, float* __restrict__ a, float* __restrict__ r1,
                                             float* __restrict__ r2, float eps, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    a[i] = (u[i] - 0.5f) * 3.0f;
    const float m = std::fabs(u[i]);
    r1[i] = m;
    r2[i] = clamp_min_nan(m, eps);
  }
}

}  // namespace

void mpr_parts_both(const at::Tensor& u, at::Tensor& a, at::Tensor& r1, at::Tensor& r2, double eps) {
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  float* pa = out_ptr(a, n);
  float* p1 = out_ptr(r1, n);
  float* p2 = out_ptr(r2, n);
  const float ef = static_cast<float>(eps);
  for_ranges(n, [&](int64_t b, int64_t e) { mpr_parts_both_range(pu, pa, p1, p2, ef, b, e); });
}

namespace {

// φ (c = span) or φ′ (c = scale) from the parts.
template <bool kDerivative>
SPIKECONV_ELEMENTS void mpr_join_range(const float* __restrict__ u, const float* __restrict__ t, const float* __restrict__ r,
                                       float* __restrict__ out, float c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) out[i] = kDerivative ? mpr_slope(u[i], t[i], r[i], c) : mpr_phi(u[i], t[i], r[i], c);
}

}  // namespace

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

namespace {

// MPR firing, forward: x = φ(u) − θ (what the surrogate sees) and the spike Θ(x), in the pass that forms φ.
SPIKECONV_ELEMENTS void mpr_fire_range(const float* __restrict__ u, const float* __restrict__ t, const float* __restrict__ r,
                                       float* __restrict__ x, float* __restrict__ spikes, float span, float th, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const float d = mpr_phi(u[i], t[i], r[i], span) - th;
    x[i] = d;
    spikes[i] = d >= 0.0f ? 1.0f : 0.0f;
  }
}

}  // namespace

void mpr_fire(const at::Tensor& u, const at::Tensor& t, const at::Tensor& r, at::Tensor& x, at::Tensor& spikes, double span,
              double threshold) {
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  const float* pt = in_ptr(t, n);
  const float* pr = in_ptr(r, n);
  float* px = out_ptr(x, n);
  float* ps = out_ptr(spikes, n);
  const float sf = static_cast<float>(span), th = static_cast<float>(threshold);
  for_ranges(n, [&](int64_t b, int64_t e) { mpr_fire_range(pu, pt, pr, px, ps, sf, th, b, e); });
}

namespace {

// MPR firing, backward: (g·σ′(x))·φ′(u), autograd's order; σ′ is the rectangular window on x (kRect) or given in s.
template <bool kRect>
SPIKECONV_ELEMENTS void mpr_fire_grad_range(const float* __restrict__ u, const float* __restrict__ t, const float* __restrict__ r,
                                            const float* __restrict__ g, const float* __restrict__ s, float* __restrict__ out,
                                            float scale, float half, float width, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const float surrogate = kRect ? rectangular(s[i], half, width) : s[i];
    out[i] = (g[i] * surrogate) * mpr_slope(u[i], t[i], r[i], scale);
  }
}

}  // namespace

void mpr_fire_grad(const at::Tensor& u, const at::Tensor& t, const at::Tensor& r, const at::Tensor& g, const at::Tensor& s,
                   at::Tensor& out, double scale, bool rect, double half, double width) {
  const int64_t n = u.numel();
  const float* pu = in_ptr(u, n);
  const float* pt = in_ptr(t, n);
  const float* pr = in_ptr(r, n);
  const float* pg = in_ptr(g, n);
  const float* ps = in_ptr(s, n);
  float* po = out_ptr(out, n);
  const float sc = static_cast<float>(scale), hf = static_cast<float>(half), wf = static_cast<float>(width);
  for_ranges(n, [&](int64_t b, int64_t e) {
    if (rect) mpr_fire_grad_range<true>(pu, pt, pr, pg, ps, po, sc, hf, wf, b, e);
    else mpr_fire_grad_range<false>(pu, pt, pr, pg, ps, po, sc, hf, wf, b, e);
  });
}

namespace {

// One step's backward of a binary trainable neuron with the rectangular surrogate (trainable.binary_neuron_step),
// autograd's arithmetic on that step: g_spike = dL/dO (detached reset or no dL/dU), dL/dO − g_v (soft) or
// dL/dO − g_v·H (hard); σ′ = (|P − θ| ≤ w/2 ? 1 : 0)/w with P = φ(H) (MPR) or H; g_H = [g_direct +] (g_spike·σ′)·φ′,
// g_direct = g_v (soft) or g_v·(1 − O) (hard), absent without dL/dU (autograd adds nothing there, so −0 stays −0);
// IF: dL/dX = dL/dU[t−1] = g_H; LIF: dL/dX = g_H·leak, dL/dU[t−1] = g_H − g_H·leak. With MPR, t is tanh(3(H − 1/2)),
// r1 |H|^(1/3) (φ) and r2 max(|H|, eps)^(−2/3) (φ′), from torch's own ops (mpr.mpr_parts_both).
template <bool kLif, bool kHard, bool kDetach, bool kMpr, bool kHasGv>
SPIKECONV_ELEMENTS void binary_step_grad_range(const float* __restrict__ go, const float* __restrict__ gv, const float* __restrict__ h,
                                               const float* __restrict__ o, const float* __restrict__ t, const float* __restrict__ r1,
                                               const float* __restrict__ r2, float* __restrict__ gx,
                                               float* __restrict__ gvo, float th, float span, float scale, float half, float width,
                                               float leak, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const float u = h[i];
    const float g_v = kHasGv ? gv[i] : 0.0f;
    const float g_spike = (kDetach || !kHasGv) ? go[i] : (kHard ? go[i] - g_v * u : go[i] - g_v);
    const float presented = kMpr ? mpr_phi(u, t[i], r1[i], span) : u;
    const float g_presented = g_spike * rectangular(presented - th, half, width);
    const float g_from_spike = kMpr ? g_presented * mpr_slope(u, t[i], r2[i], scale) : g_presented;
    const float g_h = kHasGv ? (kHard ? g_v * (1.0f - o[i]) : g_v) + g_from_spike : g_from_spike;
    const float g_x = kLif ? g_h * leak : g_h;
    gx[i] = g_x;
    if (kLif) gvo[i] = g_h - g_x;
  }
}

template <bool... kFlags>
void binary_step_grad_with(const bool* flags, int64_t n, const float* go, const float* gv, const float* h, const float* o,
                           const float* t, const float* r1, const float* r2, float* gx, float* gvo, float th,
                           float span, float scale, float half, float width, float leak) {
  if constexpr (sizeof...(kFlags) == 5) {
    for_ranges(n, [&](int64_t b, int64_t e) {
      binary_step_grad_range<kFlags...>(go, gv, h, o, t, r1, r2, gx, gvo, th, span, scale, half, width, leak, b, e);
    });
  } else if (flags[sizeof...(kFlags)]) {
    binary_step_grad_with<kFlags..., true>(flags, n, go, gv, h, o, t, r1, r2, gx, gvo, th, span, scale, half, width, leak);
  } else {
    binary_step_grad_with<kFlags..., false>(flags, n, go, gv, h, o, t, r1, r2, gx, gvo, th, span, scale, half, width, leak);
  }
}

}  // namespace

void binary_step_grad(const at::Tensor& go, const at::Tensor& gv, const at::Tensor& h, const at::Tensor& o, const at::Tensor& t,
                      const at::Tensor& r1, const at::Tensor& r2, at::Tensor& gx, at::Tensor& gvo,
                      double threshold, double span, double scale, double half, double width, double leak, bool lif, bool hard,
                      bool detach, bool mpr) {
  const int64_t n = h.numel();
  const bool has_gv = gv.numel() != 0;
  const bool flags[5] = {lif, hard, detach, mpr, has_gv};
  binary_step_grad_with<>(flags, n, in_ptr(go, n), has_gv ? in_ptr(gv, n) : nullptr, in_ptr(h, n), in_ptr(o, n),
                          mpr ? in_ptr(t, n) : nullptr, mpr ? in_ptr(r1, n) : nullptr, mpr ? in_ptr(r2, n) : nullptr, out_ptr(gx, n),
                          lif ? out_ptr(gvo, n) : nullptr,
                          static_cast<float>(threshold), static_cast<float>(span), static_cast<float>(scale),
                          static_cast<float>(half), static_cast<float>(width), static_cast<float>(leak));
}

namespace {

SPIKECONV_ELEMENTS void rectangular_range(const float* __restrict__ x, float* __restrict__ out, float half, float width,
                                          int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) out[i] = rectangular(x[i], half, width);
}

}  // namespace

void rectangular_slope(const at::Tensor& x, at::Tensor& out, double half, double width) {
  const int64_t n = x.numel();
  const float* px = in_ptr(x, n);
  float* po = out_ptr(out, n);
  const float hf = static_cast<float>(half), wf = static_cast<float>(width);
  for_ranges(n, [&](int64_t b, int64_t e) { rectangular_range(px, po, hf, wf, b, e); });
}

namespace {

// Heaviside spike Θ(x): 1 where x ≥ 0.
SPIKECONV_ELEMENTS void heaviside_range(const float* __restrict__ x, float* __restrict__ out, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) out[i] = x[i] >= 0.0f ? 1.0f : 0.0f;
}

}  // namespace

void heaviside(const at::Tensor& x, at::Tensor& out) {
  const int64_t n = x.numel();
  const float* px = in_ptr(x, n);
  float* po = out_ptr(out, n);
  for_ranges(n, [&](int64_t b, int64_t e) { heaviside_range(px, po, b, e); });
}

namespace {

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

}  // namespace

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

namespace {

// One step's backward of the multi-threshold LIF (multi_threshold.multi_threshold_step), autograd's arithmetic on
// that step: g_direct = g_v·k; g_o = dL/dO, minus (g_v or g_direct)·θ when the reset is attached; σ′ = a·exp(−q)
// (comb-max, exp from torch in `ex`, 0 where exp's argument is below −104) or reciprocal(1 + q)·a (comb-rational);
// dL/dX = dL/dU[t−1] = [g_direct +] g_o·σ′ (no g_direct without dL/dU: autograd adds nothing there).
template <bool kRational, bool kDecayed, bool kDetach, bool kHasGv>
SPIKECONV_ELEMENTS void mtlif_step_grad_range(const float* __restrict__ go, const float* __restrict__ gv, const float* __restrict__ h,
                                              const float* __restrict__ ex, float* __restrict__ gx, float th, float high, float bw,
                                              float a, float k, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const float q = comb_q(h[i], th, high, bw);
    const float slope = kRational ? (1.0f / (1.0f + q)) * a : (-q < kExpZeroBelow ? 0.0f : ex[i] * a);
    const float g_v = kHasGv ? gv[i] : 0.0f;
    const float g_direct = g_v * k;
    const float g_o = (kDetach || !kHasGv) ? go[i] : go[i] - (kDecayed ? g_direct : g_v) * th;
    gx[i] = kHasGv ? g_direct + g_o * slope : g_o * slope;
  }
}

template <bool... kFlags>
void mtlif_step_grad_with(const bool* flags, int64_t n, const float* go, const float* gv, const float* h, const float* ex, float* gx,
                          float th, float high, float bw, float a, float k) {
  if constexpr (sizeof...(kFlags) == 4) {
    for_ranges(n, [&](int64_t b, int64_t e) { mtlif_step_grad_range<kFlags...>(go, gv, h, ex, gx, th, high, bw, a, k, b, e); });
  } else if (flags[sizeof...(kFlags)]) {
    mtlif_step_grad_with<kFlags..., true>(flags, n, go, gv, h, ex, gx, th, high, bw, a, k);
  } else {
    mtlif_step_grad_with<kFlags..., false>(flags, n, go, gv, h, ex, gx, th, high, bw, a, k);
  }
}

}  // namespace

void mtlif_step_grad(const at::Tensor& go, const at::Tensor& gv, const at::Tensor& h, const at::Tensor& ex, at::Tensor& gx,
                     double threshold, int64_t max_spikes, double b, double a, double decay, bool rational, bool decayed, bool detach) {
  const int64_t n = h.numel();
  const bool has_gv = gv.numel() != 0;
  const bool flags[4] = {rational, decayed, detach, has_gv};
  mtlif_step_grad_with<>(flags, n, in_ptr(go, n), has_gv ? in_ptr(gv, n) : nullptr, in_ptr(h, n), rational ? nullptr : in_ptr(ex, n),
                         out_ptr(gx, n), static_cast<float>(threshold), static_cast<float>(max_spikes), static_cast<float>(b),
                         static_cast<float>(a), static_cast<float>(decay));
}

}  // namespace spikeconv
