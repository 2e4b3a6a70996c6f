// Time loops of the converted neurons (IF, signed IF, ISI-corrected IF, burst and bistable IF), bound as
// if_run, signed_run, isi_run and burst_run.
//
// Why: the pure-torch kernels make 4-6 passes over memory per step (add, compare, multiply, subtract, dtype
// copies). These loops keep a block of membranes in L1 cache and run every timestep of that block before moving
// on, so each input is read once (once in all for a static input) and each output written once. They do the
// same IEEE float32 operations in the same order as the reference steps (-ffp-contract=off: no fused
// multiply-adds, no fast math; -fno-trapping-math only lets GCC vectorise floor, which cannot trap on these
// values), so their outputs and state are bit-identical to the reference, which
// tests/neurons/test_fast_kernels.py checks per neuron kind.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "ops.h"
#include "pool_planes.h"

namespace spikeconv {
namespace {

// Where a runner writes step t of sample n. Unpooled, straight into out [K, N, L]. Pooled (a neuron and the
// average pool after it, fused: neurons/fusion.py), each work unit is whole H×W planes, the step's outputs go to
// a per-thread scratch row and are pooled plane by plane into out [K, N, C, OH, OW], so the spike map itself
// never travels to memory and back.
// A spiking max-pool gate (2x2, stride 2) fuses the same way, with its state: `cum` [N·C, H, W], `emitted`
// [N·C, OH, OW].
struct Sink {
  float* out;
  int64_t n, l;
  bool pooled;
  int64_t h, w, kh, kw, sh, sw, oh, ow;
  float* cum = nullptr;
  float* emitted = nullptr;

  int64_t block() const {
    if (!pooled) return kBlock;
    return std::max<int64_t>(1, kBlock / (h * w)) * h * w;
  }
  // The row (indexed by element j of the sample) that step t of sample s writes.
  float* row(int64_t t, int64_t s, std::vector<float>& scratch) const {
    if (!pooled) return out + (t * n + s) * l;
    scratch.resize(l);
    return scratch.data();
  }
  void finish(int64_t t, int64_t s, int64_t j0, int64_t j1, const float* row) const {
    if (!pooled) return;
    const int64_t plane = h * w, planes = l / plane, ohw = oh * ow;
    thread_local std::vector<float> updated;
    for (int64_t p = j0 / plane; p < j1 / plane; ++p) {
      float* o = out + ((t * n + s) * planes + p) * ohw;
      if (cum) gate_plane_2x2(row + p * plane, cum + (s * planes + p) * plane, emitted + (s * planes + p) * ohw, o, h, w, oh, ow, updated);
      else pool_plane(row + p * plane, o, w, kh, kw, sh, sw, oh, ow);
    }
  }
};

// pool: empty, or {H, W, kh, kw, sh, sw} of the average pool fused after the neuron (no padding); with `gate`
// = {cumulative, emitted} the 2x2 spiking max-pool gate instead.
Sink sink_of(at::Tensor& out, const Layout& d, int64_t steps, const std::vector<int64_t>& pool, std::vector<at::Tensor>& gate) {
  TORCH_CHECK(out.is_contiguous() && out.scalar_type() == at::kFloat, "out must be contiguous float32");
  if (pool.empty()) {
    TORCH_CHECK(out.numel() == steps * d.n * d.l, "out must hold [K, N, L]");
    return {out.data_ptr<float>(), d.n, d.l, false, 0, 0, 0, 0, 0, 0, 0, 0};
  }
  TORCH_CHECK(pool.size() == 6, "pool is {H, W, kh, kw, sh, sw}");
  const int64_t h = pool[0], w = pool[1], kh = pool[2], kw = pool[3], sh = pool[4], sw = pool[5];
  TORCH_CHECK(h > 0 && w > 0 && kh > 0 && kw > 0 && sh > 0 && sw > 0 && kh <= h && kw <= w && d.l % (h * w) == 0,
              "bad pooling geometry");
  const int64_t oh = (h - kh) / sh + 1, ow = (w - kw) / sw + 1;
  TORCH_CHECK(out.numel() == steps * d.n * (d.l / (h * w)) * oh * ow, "out must hold [K, N, C, OH, OW]");
  Sink sink{out.data_ptr<float>(), d.n, d.l, true, h, w, kh, kw, sh, sw, oh, ow};
  if (!gate.empty()) {
    TORCH_CHECK(gate.size() == 2 && kh == 2 && kw == 2 && sh == 2 && sw == 2, "the fused gate is 2x2 at stride 2");
    for (const at::Tensor& state : gate) TORCH_CHECK(state.is_contiguous() && state.scalar_type() == at::kFloat, "gate state: float32");
    TORCH_CHECK(gate[0].numel() == d.n * d.l && gate[1].numel() == d.n * (d.l / (h * w)) * oh * ow, "gate state sizes");
    sink.cum = gate[0].data_ptr<float>();
    sink.emitted = gate[1].data_ptr<float>();
  }
  return sink;
}

template <bool kBias, bool kHard>
SPIKECONV_BLOCK void if_block(
    const float* __restrict__ x, float* __restrict__ v, const float* __restrict__ th, const float* __restrict__ b,
              float* __restrict__ out, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = kBias ? v[j] + (x[j] + b[j]) : v[j] + x[j];
    const float s = h >= th[j] ? 1.0f : 0.0f;
    const float o = s * th[j];
    out[j] = o;
    v[j] = kHard ? h * (1.0f - s) : h - o;
  }
}

}  // namespace

// Plain IF: H = V + X (+ bias), S = Θ(H − θ), V = H − θS (soft) or H(1 − S) (hard), out = θS.
void if_run(const at::Tensor& x, at::Tensor& v, const at::Tensor& th, const at::Tensor& bias, at::Tensor& out,
            int64_t steps, bool is_static, bool hard, std::vector<int64_t> pool, std::vector<at::Tensor> gate) {
  const Layout d = layout_of(x, v, is_static);
  const Sink sink = sink_of(out, d, steps, pool, gate);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  for_blocks(d.n, d.l, sink.block(), [&](int64_t n, int64_t j0, int64_t j1) {
    thread_local std::vector<float> scratch;
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = sink.row(t, n, scratch);
      if (bp && hard) if_block<true, true>(xx, vv, tp, bp, oo, j0, j1);
      else if (bp) if_block<true, false>(xx, vv, tp, bp, oo, j0, j1);
      else if (hard) if_block<false, true>(xx, vv, tp, bp, oo, j0, j1);
      else if_block<false, false>(xx, vv, tp, bp, oo, j0, j1);
      sink.finish(t, n, j0, j1, oo);
    }
  });
}

template <bool kBias>
SPIKECONV_BLOCK void signed_block(
    const float* __restrict__ x, float* __restrict__ v, float* __restrict__ c, const float* __restrict__ th,
                  const float* __restrict__ low, const float* __restrict__ b, float* __restrict__ out, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = kBias ? v[j] + (x[j] + b[j]) : v[j] + x[j];
    const float pos = h >= th[j] ? 1.0f : 0.0f;
    const float neg = (h < low[j]) & (c[j] > 0.0f) ? 1.0f : 0.0f;
    const float s = pos - neg;
    const float o = s * th[j];
    out[j] = o;
    v[j] = h - o;
    c[j] = c[j] + s;
  }
}

// Signed IF (sin_correction.signed_if_step): S = Θ(H − θ) − Θ(low − H)·[count > 0].
void signed_run(const at::Tensor& x, at::Tensor& v, at::Tensor& count, const at::Tensor& th, const at::Tensor& low,
                const at::Tensor& bias, at::Tensor& out, int64_t steps, bool is_static, std::vector<int64_t> pool,
                std::vector<at::Tensor> gate) {
  const Layout d = layout_of(x, v, is_static);
  const Sink sink = sink_of(out, d, steps, pool, gate);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* cp = count.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* lp = low.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  for_blocks(d.n, d.l, sink.block(), [&](int64_t n, int64_t j0, int64_t j1) {
    thread_local std::vector<float> scratch;
    float* vv = vp + n * d.l;
    float* cc = cp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = sink.row(t, n, scratch);
      if (bp) signed_block<true>(xx, vv, cc, tp, lp, bp, oo, j0, j1);
      else signed_block<false>(xx, vv, cc, tp, lp, bp, oo, j0, j1);
      sink.finish(t, n, j0, j1, oo);
    }
  });
}

// One ISI-corrected IF step over elements [j0, j1) of one sample; restrict pointers and branch-free masks so
// that the compiler vectorises it.
template <bool kBias>
SPIKECONV_BLOCK void isi_block(
    const float* __restrict__ x, float* __restrict__ v, float* __restrict__ c, float* __restrict__ f,
               float* __restrict__ first, float* __restrict__ last, float* __restrict__ ev, const float* __restrict__ th,
               const float* __restrict__ b, float* __restrict__ out, float step, float allow, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = kBias ? v[j] + (x[j] + b[j]) : v[j] + x[j];
    const float fired = f[j];
    const bool pos = h >= th[j];
    const float intervals = std::max(fired - 1.0f, 1.0f);
    const float mean_isi = (last[j] - first[j]) / intervals;
    const bool neg = !pos & (c[j] > 0.0f) & (fired >= 2.0f) & ((step - ev[j]) > mean_isi + allow);
    const float s = (pos ? 1.0f : 0.0f) - (neg ? 1.0f : 0.0f);
    const float o = s * th[j];
    out[j] = o;
    v[j] = h - o;
    first[j] = pos & (fired == 0.0f) ? step : first[j];
    c[j] = c[j] + s;
    f[j] = fired + (pos ? 1.0f : 0.0f);
    last[j] = pos ? step : last[j];
    ev[j] = pos | neg ? step : ev[j];
  }
}

// ISI-corrected IF (sin_correction.isi_if_step) for absolute steps start .. start + steps − 1.
void isi_run(const at::Tensor& x, at::Tensor& v, at::Tensor& count, at::Tensor& fired, at::Tensor& first, at::Tensor& last,
             at::Tensor& last_event, const at::Tensor& th, const at::Tensor& bias, at::Tensor& out, int64_t steps,
             bool is_static, int64_t start, double allowance, std::vector<int64_t> pool, std::vector<at::Tensor> gate) {
  const Layout d = layout_of(x, v, is_static);
  const Sink sink = sink_of(out, d, steps, pool, gate);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* cp = count.data_ptr<float>();
  float* fp = fired.data_ptr<float>();
  float* firstp = first.data_ptr<float>();
  float* lastp = last.data_ptr<float>();
  float* ep = last_event.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  const float allow = static_cast<float>(allowance);
  for_blocks(d.n, d.l, sink.block(), [&](int64_t n, int64_t j0, int64_t j1) {
    thread_local std::vector<float> scratch;
    const int64_t base = n * d.l;
    for (int64_t k = 0; k < steps; ++k) {
      const float step = static_cast<float>(start + k);
      const float* xx = xp + k * d.x_step + base;
      float* oo = sink.row(k, n, scratch);
      if (bp) isi_block<true>(xx, vp + base, cp + base, fp + base, firstp + base, lastp + base, ep + base, tp, bp, oo, step, allow, j0, j1);
      else isi_block<false>(xx, vp + base, cp + base, fp + base, firstp + base, lastp + base, ep + base, tp, bp, oo, step, allow, j0, j1);
      sink.finish(k, n, j0, j1, oo);
    }
  });
}

// kBias: 0 none, 1 H = V + (X + bias) (IFNeuron's order), 2 H = (V + X) + bias (bistable's order).
template <int kBias, bool kFire>
SPIKECONV_BLOCK void burst_block(
    const float* __restrict__ x, float* __restrict__ v, const float* __restrict__ th, const float* __restrict__ b,
                 float* __restrict__ out, float high, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = kBias == 0 ? v[j] + x[j] : (kBias == 1 ? v[j] + (x[j] + b[j]) : (v[j] + x[j]) + b[j]);
    if (kFire) {
      const float o = clamp_count(std::floor(h / th[j]), high) * th[j];
      out[j] = o;
      v[j] = h - o;
    } else {
      out[j] = 0.0f;
      v[j] = h;
    }
  }
}

template <int kBias>
void burst_step(const float* x, float* v, const float* th, const float* b, float* out, float high, bool fire, int64_t j0, int64_t j1) {
  if (fire) burst_block<kBias, true>(x, v, th, b, out, high, j0, j1);
  else burst_block<kBias, false>(x, v, th, b, out, high, j0, j1);
}

// Burst IF (dynamics.multi_spike_if_step) and bistable neurons: S = clip(⌊H/θ⌋, 0, Γ), V = H − θS.
// fire[t] == 0 makes step t integrate-only (bistable integrate state: output 0, no reset);
// bias_last adds the bias in bistable's order.
void burst_run(const at::Tensor& x, at::Tensor& v, const at::Tensor& th, const at::Tensor& bias, at::Tensor& out,
               int64_t steps, bool is_static, int64_t max_spikes, std::vector<int64_t> fire, bool bias_last,
               std::vector<int64_t> pool, std::vector<at::Tensor> gate) {
  const Layout d = layout_of(x, v, is_static);
  const Sink sink = sink_of(out, d, steps, pool, gate);
  TORCH_CHECK(static_cast<int64_t>(fire.size()) == steps, "fire needs one flag per step");
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  const float high = static_cast<float>(max_spikes);
  const int mode = bp ? (bias_last ? 2 : 1) : 0;
  for_blocks(d.n, d.l, sink.block(), [&](int64_t n, int64_t j0, int64_t j1) {
    thread_local std::vector<float> scratch;
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = sink.row(t, n, scratch);
      const bool firing = fire[t] != 0;
      if (mode == 0) burst_step<0>(xx, vv, tp, bp, oo, high, firing, j0, j1);
      else if (mode == 1) burst_step<1>(xx, vv, tp, bp, oo, high, firing, j0, j1);
      else burst_step<2>(xx, vv, tp, bp, oo, high, firing, j0, j1);
      sink.finish(t, n, j0, j1, oo);
    }
  });
}

}  // namespace spikeconv
