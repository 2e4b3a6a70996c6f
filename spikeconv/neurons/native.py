"""Optional C++ time loops for the conversion neurons, compiled once per machine.

Why: the pure-torch kernels make 4-6 passes over memory per step (add, compare, multiply,
subtract, dtype copies). The loops below keep a block of membranes in L1 cache and run every
timestep of that block before moving on, so each input is read once (once in all for a static
input) and each output written once. They do the same IEEE float32 operations in the same order
as the reference steps (compiled with ``-ffp-contract=off``: no fused multiply-adds, no fast
math; ``-fno-trapping-math`` only lets GCC vectorise ``floor``, which cannot trap on these
values), so their outputs and state are bit-identical to the reference, which
``tests/neurons/test_fast_kernels.py`` checks per neuron kind.

Build and cache: the first process that needs the loops compiles them (``load_inline``, about a
minute; one line on stderr says so) into ``<cache>/<key>/``, where ``<cache>`` is
``$SPIKECONV_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/spikeconv/native``, else
``~/.cache/spikeconv/native``, and ``<key>`` hashes the C++ source, the compile flags, the torch
and Python builds and this CPU (``-march=native`` code must never run on another CPU). A file
lock keeps two processes from building at once. Every later process imports the built library
directly (no compiler, no ninja), in milliseconds.

``SPIKECONV_NATIVE``: unset (default) uses the loops where they build and otherwise falls back,
with a logged warning, to the pure-torch kernels (also bit-identical); a failed build is recorded
in the cache folder so later processes do not retry it. ``0`` turns the loops off; ``1`` requires
them (retrying a failed build) and raises :class:`~spikeconv.errors.ConfigError` if they cannot
be built.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from spikeconv.errors import ConfigError
from spikeconv.neurons import native_training

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock (torch's own build lock still applies)
    fcntl = None

logger = logging.getLogger("spikeconv")

_LOOPS = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

constexpr int64_t kBlock = 1024;  // membranes per work unit: v, x, θ and bias blocks stay in L1

// Per-block loops are kept out of line: inlined into the parallel lambdas, GCC no longer proves the
// restrict pointers independent and leaves the ISI loop scalar (measured 13x the time of plain IF).
#define SPIKECONV_BLOCK __attribute__((noinline))

// Run body(n, j0, j1) over every sample n and block [j0, j1) of its L elements, in parallel.
template <typename Body>
void for_blocks(int64_t n_samples, int64_t length, int64_t block, const Body& body) {
  const int64_t blocks = (length + block - 1) / block;
  at::parallel_for(0, n_samples * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t n = u / blocks;
      const int64_t j0 = (u % blocks) * block;
      body(n, j0, std::min(length, j0 + block));
    }
  });
}

// 2x2 windows at stride 2 (most CNNs' pools), the same additions as pool_plane below; ·0.25 equals /4 exactly.
SPIKECONV_BLOCK void pool_plane_2x2(const float* __restrict__ plane, float* __restrict__ out, int64_t width, int64_t oh_n,
                                    int64_t ow_n) {
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const float* __restrict__ r0 = plane + 2 * oh * width;
    const float* __restrict__ r1 = r0 + width;
    float* __restrict__ o = out + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      o[ow] = ((((0.0f + r0[2 * ow]) + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1]) * 0.25f;
    }
  }
}

// One average-pooled H×W plane, each window summed row by row from 0 and divided by kh·kw: the additions of
// aten's CPU avg_pool2d in the same order.
inline void pool_plane(const float* plane, float* out, int64_t width, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                       int64_t oh_n, int64_t ow_n) {
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2) return pool_plane_2x2(plane, out, width, oh_n, ow_n);
  const float divide = static_cast<float>(kh * kw);
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      float sum = 0.0f;
      for (int64_t i = 0; i < kh; ++i) {
        const float* row = plane + (oh * sh + i) * width + ow * sw;
        for (int64_t j = 0; j < kw; ++j) sum += row[j];
      }
      out[oh * ow_n + ow] = sum / divide;
    }
  }
}

// One step of the 2x2, stride-2 gate (no padding, no dilation, every window inside the plane) for output row oh:
// the general loop's arithmetic and window order, written with selects so that the loop over ow vectorises.
SPIKECONV_BLOCK void maxpool_gate_row_2x2(const float* __restrict__ updated, const float* __restrict__ x,
                                          const float* __restrict__ c, float* __restrict__ m, float* __restrict__ o,
                                          int64_t width, int64_t oh, int64_t ow_n) {
  const int64_t r0 = 2 * oh * width, r1 = r0 + width;
  for (int64_t ow = 0; ow < ow_n; ++ow) {
    const int64_t i0 = r0 + 2 * ow, i2 = r1 + 2 * ow;
    // every candidate loaded unconditionally (a load inside a select keeps GCC from vectorising)
    const float x0 = x[i0], x1 = x[i0 + 1], x2 = x[i2], x3 = x[i2 + 1];
    const float c0 = c[i0], c1 = c[i0 + 1], c2 = c[i2], c3 = c[i2 + 1];
    float best = -std::numeric_limits<float>::infinity(), xb = x0, cb = c0;
    const float v0 = updated[i0], v1 = updated[i0 + 1], v2 = updated[i2], v3 = updated[i2 + 1];
    best = (v0 > best || v0 != v0) ? v0 : best;
    const bool t1 = v1 > best || v1 != v1;
    best = t1 ? v1 : best;
    xb = t1 ? x1 : xb;
    cb = t1 ? c1 : cb;
    const bool t2 = v2 > best || v2 != v2;
    best = t2 ? v2 : best;
    xb = t2 ? x2 : xb;
    cb = t2 ? c2 : cb;
    const bool t3 = v3 > best || v3 != v3;
    best = t3 ? v3 : best;
    xb = t3 ? x3 : xb;
    cb = t3 ? c3 : cb;
    const float grown = xb + (cb - m[oh * ow_n + ow]);
    o[oh * ow_n + ow] = best == m[oh * ow_n + ow] ? 0.0f : grown;
    m[oh * ow_n + ow] = best;
  }
}

// One step of the 2x2 gate for one plane: C' = C + x, the rows above, then C = C'.
inline void gate_plane_2x2(const float* x, float* c, float* m, float* o, int64_t height, int64_t width, int64_t oh_n,
                           int64_t ow_n, std::vector<float>& updated) {
  const int64_t hw = height * width;
  updated.resize(hw);
  for (int64_t i = 0; i < hw; ++i) updated[i] = c[i] + x[i];
  for (int64_t oh = 0; oh < oh_n; ++oh) maxpool_gate_row_2x2(updated.data(), x, c, m, o, width, oh, ow_n);
  std::copy(updated.begin(), updated.begin() + hw, c);
}

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

struct Layout {
  int64_t n, l, x_step;
};

Layout layout_of(const at::Tensor& x, const at::Tensor& v, bool is_static) {
  TORCH_CHECK(v.dim() == 2 && v.is_contiguous() && v.scalar_type() == at::kFloat, "v must be a contiguous float32 [N, L]");
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kFloat, "x must be contiguous float32");
  return {v.size(0), v.size(1), is_static ? 0 : v.size(0) * v.size(1)};
}

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

inline float clamp_count(float s, float high) {
  // torch.clamp(s, 0, high) for the non-NaN values a finite membrane produces
  s = s < 0.0f ? 0.0f : s;
  return s > high ? high : s;
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

// Average pooling of NCHW planes without padding, summing each window row by row from 0 and
// dividing by kh·kw, as aten's CPU avg_pool2d does (its channels-first kernel is ~3x slower than
// memory bandwidth on spike maps; the channels-last one is fast but would change the next
// convolution's summation order).
void avg_pool_run(const at::Tensor& x, at::Tensor& out, int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.scalar_type() == at::kFloat, "x must be a contiguous float32 [B, H, W]");
  TORCH_CHECK(out.dim() == 3 && out.is_contiguous() && out.scalar_type() == at::kFloat, "out must be a contiguous float32 [B, OH, OW]");
  const int64_t planes = x.size(0), height = x.size(1), width = x.size(2), oh_n = out.size(1), ow_n = out.size(2);
  TORCH_CHECK((oh_n - 1) * sh + kh <= height && (ow_n - 1) * sw + kw <= width, "pooling windows leave the input");
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) pool_plane(xp + p * height * width, op + p * oh_n * ow_n, width, kh, kw, sh, sw, oh_n, ow_n);
  });
}

// Binary trainable neuron forward (trainable.binary_neuron_step without MPR), U[0] given:
// H = U + X (IF) or U + (X − U)·leak (LIF); O = Θ((H − θ) ≥ 0); U = H − O (soft) or H·(1 − O) (hard).
// h (may be null) receives H of every step, for the fused BPTT's backward.
template <bool kLif, bool kHard>
SPIKECONV_BLOCK void binary_block(
    const float* __restrict__ x, float* __restrict__ v, float th, float leak, float* __restrict__ out,
                  float* __restrict__ h_out, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = kLif ? v[j] + (x[j] - v[j]) * leak : v[j] + x[j];
    const float o = (h - th) >= 0.0f ? 1.0f : 0.0f;
    out[j] = o;
    if (h_out) h_out[j] = h;
    v[j] = kHard ? h * (1.0f - o) : h - o;
  }
}

void binary_run(const at::Tensor& x, at::Tensor& v, double threshold, double leak, at::Tensor& out, int64_t steps,
                bool is_static, bool lif, bool hard, at::Tensor& h_all) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* hp = h_all.numel() ? h_all.data_ptr<float>() : nullptr;
  const float th = static_cast<float>(threshold), lk = static_cast<float>(leak);
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, kBlock, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      float* hh = hp ? hp + t * nl + n * d.l : nullptr;
      if (lif && hard) binary_block<true, true>(xx, vv, th, lk, oo, hh, j0, j1);
      else if (lif) binary_block<true, false>(xx, vv, th, lk, oo, hh, j0, j1);
      else if (hard) binary_block<false, true>(xx, vv, th, lk, oo, hh, j0, j1);
      else binary_block<false, false>(xx, vv, th, lk, oo, hh, j0, j1);
    }
  });
}

// Backward of the binary neuron over all steps (trainable._BinaryBPTT), per element from the last step:
// g_spike = dL/dO[t] (detached reset), dL/dO[t] − g_v (soft) or dL/dO[t] − g_v·H[t] (hard);
// g_H = g_direct + (g_spike·σ'[t])·φ'[t], g_direct = g_v (soft) or g_v·(1 − O[t]) (hard), φ' only with MPR;
// IF: dL/dX[t] = g_H, g_v = g_H; LIF: dL/dX[t] = g_H·leak, g_v = g_H − g_H·leak.
// σ'[t] (`sg`) and φ'[t] (`rect`) come from torch's vectorised ops; a static input gets Σ_t dL/dX[t], summed
// from the last step. g_v: dL/dU[K] in, dL/dU[0] out. The element-wise arithmetic is autograd's on the step loop.
// Steps run from the last, elements of a block inner, so the loop over elements vectorises.
template <bool kLif, bool kHard, bool kDetach, bool kRect, bool kStatic>
SPIKECONV_BLOCK void binary_bptt_block(const float* __restrict__ go, const float* __restrict__ h, const float* __restrict__ o,
                                       const float* __restrict__ sg, const float* __restrict__ rect, float* __restrict__ gv,
                                       float* __restrict__ gx, float leak, bool last, int64_t e0, int64_t e1) {
  for (int64_t e = e0; e < e1; ++e) {
    const float g_v = gv[e];
    const float g_spike = kDetach ? go[e] : (kHard ? go[e] - g_v * h[e] : go[e] - g_v);
    const float g_direct = kHard ? g_v * (1.0f - o[e]) : g_v;
    const float g_presented = g_spike * sg[e];
    const float g_h = g_direct + (kRect ? g_presented * rect[e] : g_presented);
    const float g_x = kLif ? g_h * leak : g_h;
    gv[e] = kLif ? g_h - g_x : g_h;
    if (kStatic) gx[e] = last ? g_x : gx[e] + g_x;
    else gx[e] = g_x;
  }
}

template <bool kLif, bool kHard, bool kDetach, bool kRect, bool kStatic>
void binary_bptt_steps(const float* go, const float* h, const float* o, const float* sg, const float* rect, float* gv, float* gx,
                       float leak, int64_t steps, int64_t stride) {
  at::parallel_for(0, stride, kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t e0 = begin; e0 < end; e0 += kBlock) {
      const int64_t e1 = std::min(end, e0 + kBlock);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t i = t * stride;
        binary_bptt_block<kLif, kHard, kDetach, kRect, kStatic>(go + i, h + i, o + i, sg + i, kRect ? rect + i : rect, gv,
                                                               kStatic ? gx : gx + i, leak, t == steps - 1, e0, e1);
      }
    }
  });
}

template <bool kLif, bool kHard, bool kDetach>
void binary_bptt_with(bool rect, bool is_static, const float* go, const float* h, const float* o, const float* sg, const float* r,
                      float* gv, float* gx, float leak, int64_t steps, int64_t stride) {
  if (rect && is_static) binary_bptt_steps<kLif, kHard, kDetach, true, true>(go, h, o, sg, r, gv, gx, leak, steps, stride);
  else if (rect) binary_bptt_steps<kLif, kHard, kDetach, true, false>(go, h, o, sg, r, gv, gx, leak, steps, stride);
  else if (is_static) binary_bptt_steps<kLif, kHard, kDetach, false, true>(go, h, o, sg, r, gv, gx, leak, steps, stride);
  else binary_bptt_steps<kLif, kHard, kDetach, false, false>(go, h, o, sg, r, gv, gx, leak, steps, stride);
}

void binary_bptt(const at::Tensor& grad_out, const at::Tensor& h_all, const at::Tensor& out, const at::Tensor& sg,
                 const at::Tensor& rect, at::Tensor& grad_v, at::Tensor& grad_x, bool is_static, bool lif, bool hard,
                 bool detach, double leak) {
  TORCH_CHECK(h_all.dim() == 3 && h_all.is_contiguous() && grad_out.is_contiguous() && out.is_contiguous() && sg.is_contiguous(),
              "[K, N, L] contiguous");
  TORCH_CHECK(grad_out.sizes() == h_all.sizes() && out.sizes() == h_all.sizes() && sg.sizes() == h_all.sizes(), "[K, N, L] each");
  TORCH_CHECK(!rect.numel() || (rect.is_contiguous() && rect.sizes() == h_all.sizes()), "rect must be like H");
  TORCH_CHECK(grad_v.is_contiguous() && grad_x.is_contiguous(), "bad gradient buffers");
  const int64_t steps = h_all.size(0), stride = h_all.size(1) * h_all.size(2);
  TORCH_CHECK(grad_v.numel() == stride && grad_x.numel() == (is_static ? stride : steps * stride), "bad gradient sizes");
  const float* go = grad_out.data_ptr<float>();
  const float* h = h_all.data_ptr<float>();
  const float* o = out.data_ptr<float>();
  const float* s = sg.data_ptr<float>();
  const float* r = rect.numel() ? rect.data_ptr<float>() : nullptr;
  float* gv = grad_v.data_ptr<float>();
  float* gx = grad_x.data_ptr<float>();
  const float lk = static_cast<float>(leak);
  const bool has_rect = r != nullptr;
  if (lif && hard && detach) binary_bptt_with<true, true, true>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else if (lif && hard) binary_bptt_with<true, true, false>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else if (lif && detach) binary_bptt_with<true, false, true>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else if (lif) binary_bptt_with<true, false, false>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else if (hard && detach) binary_bptt_with<false, true, true>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else if (hard) binary_bptt_with<false, true, false>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else if (detach) binary_bptt_with<false, false, true>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
  else binary_bptt_with<false, false, false>(has_rect, is_static, go, h, o, s, r, gv, gx, lk, steps, stride);
}

// Multi-threshold LIF forward (multi_threshold.multi_threshold_step): H = U + X, O = clip(⌊H/θ⌋, 0, Γ),
// U = k·H − θ·O (undecayed reset) or k·(H − θ·O) (decayed). h (may be null) receives H of every step.
template <bool kDecayed>
SPIKECONV_BLOCK void mtlif_block(
    const float* __restrict__ x, float* __restrict__ v, float th, float k, float high, float* __restrict__ out,
                 float* __restrict__ h_out, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = v[j] + x[j];
    const float o = clamp_count(std::floor(h / th), high);
    out[j] = o;
    if (h_out) h_out[j] = h;
    v[j] = kDecayed ? k * (h - th * o) : k * h - th * o;
  }
}

void mtlif_run(const at::Tensor& x, at::Tensor& v, double threshold, double decay, int64_t max_spikes, at::Tensor& out,
               int64_t steps, bool is_static, bool decayed, at::Tensor& h_all) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* hp = h_all.numel() ? h_all.data_ptr<float>() : nullptr;
  const float th = static_cast<float>(threshold), k = static_cast<float>(decay), high = static_cast<float>(max_spikes);
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, kBlock, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      float* hh = hp ? hp + t * nl + n * d.l : nullptr;
      if (decayed) mtlif_block<true>(xx, vv, th, k, high, oo, hh, j0, j1);
      else mtlif_block<false>(xx, vv, th, k, high, oo, hh, j0, j1);
    }
  });
}

// Backward of the multi-threshold LIF over all steps (multi_threshold._MultiThresholdBPTT), per element from the
// last step: g_direct = g_v·k; g_o = dL/dO[t], minus (g_v or g_direct)·θ unless the reset is detached;
// g_v = g_direct + g_o·σ'[t] = dL/dX[t] (a static input gets Σ_t, summed from the last step). σ'[t] (`sg`) comes
// from torch's vectorised surrogate. Steps run from the last, elements of a block inner (vectorised).
template <bool kDecayed, bool kDetach, bool kStatic>
SPIKECONV_BLOCK void mtlif_bptt_block(const float* __restrict__ go, const float* __restrict__ sg, float* __restrict__ gv,
                                      float* __restrict__ gx, float th, float k, bool last, int64_t e0, int64_t e1) {
  for (int64_t e = e0; e < e1; ++e) {
    const float g_v = gv[e];
    const float g_direct = g_v * k;
    const float g_o = kDetach ? go[e] : go[e] - (kDecayed ? g_direct : g_v) * th;
    const float g_new = g_direct + g_o * sg[e];
    gv[e] = g_new;
    if (kStatic) gx[e] = last ? g_new : gx[e] + g_new;
    else gx[e] = g_new;
  }
}

template <bool kDecayed, bool kDetach, bool kStatic>
void mtlif_bptt_steps(const float* go, const float* sg, float* gv, float* gx, float th, float k, int64_t steps, int64_t stride) {
  at::parallel_for(0, stride, kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t e0 = begin; e0 < end; e0 += kBlock) {
      const int64_t e1 = std::min(end, e0 + kBlock);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t i = t * stride;
        mtlif_bptt_block<kDecayed, kDetach, kStatic>(go + i, sg + i, gv, kStatic ? gx : gx + i, th, k, t == steps - 1, e0, e1);
      }
    }
  });
}

void mtlif_bptt(const at::Tensor& grad_out, const at::Tensor& sg, at::Tensor& grad_v, at::Tensor& grad_x, bool is_static,
                bool decayed, bool detach, double threshold, double decay) {
  TORCH_CHECK(sg.dim() == 3 && sg.is_contiguous() && grad_out.is_contiguous() && grad_out.sizes() == sg.sizes(), "[K, N, L] contiguous");
  TORCH_CHECK(grad_v.is_contiguous() && grad_x.is_contiguous(), "bad gradient buffers");
  const int64_t steps = sg.size(0), stride = sg.size(1) * sg.size(2);
  TORCH_CHECK(grad_v.numel() == stride && grad_x.numel() == (is_static ? stride : steps * stride), "bad gradient sizes");
  const float* go = grad_out.data_ptr<float>();
  const float* s = sg.data_ptr<float>();
  float* gv = grad_v.data_ptr<float>();
  float* gx = grad_x.data_ptr<float>();
  const float th = static_cast<float>(threshold), k = static_cast<float>(decay);
  if (decayed && detach && is_static) mtlif_bptt_steps<true, true, true>(go, s, gv, gx, th, k, steps, stride);
  else if (decayed && detach) mtlif_bptt_steps<true, true, false>(go, s, gv, gx, th, k, steps, stride);
  else if (decayed && is_static) mtlif_bptt_steps<true, false, true>(go, s, gv, gx, th, k, steps, stride);
  else if (decayed) mtlif_bptt_steps<true, false, false>(go, s, gv, gx, th, k, steps, stride);
  else if (detach && is_static) mtlif_bptt_steps<false, true, true>(go, s, gv, gx, th, k, steps, stride);
  else if (detach) mtlif_bptt_steps<false, true, false>(go, s, gv, gx, th, k, steps, stride);
  else if (is_static) mtlif_bptt_steps<false, false, true>(go, s, gv, gx, th, k, steps, stride);
  else mtlif_bptt_steps<false, false, false>(go, s, gv, gx, th, k, steps, stride);
}

// Spiking max-pool gate (spiking_maxpool.max_pool_gate_step) over `steps` steps, for NCHW planes:
// C' = C + x; M' = maxpool(C') with aten's CPU window order (row by row, the first maximum wins);
// out = 0 where M' == M, else x[w] + (C[w] − M) at the winner w; then C = C', M = M'.
void maxpool_gate_run(const at::Tensor& x, at::Tensor& cumulative, at::Tensor& emitted, at::Tensor& out, int64_t steps,
                      bool is_static, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  TORCH_CHECK(cumulative.dim() == 3 && cumulative.is_contiguous() && cumulative.scalar_type() == at::kFloat, "cumulative: [P, H, W]");
  TORCH_CHECK(emitted.dim() == 3 && emitted.is_contiguous() && emitted.scalar_type() == at::kFloat, "emitted: [P, OH, OW]");
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kFloat && out.is_contiguous(), "x and out must be contiguous float32");
  const int64_t planes = cumulative.size(0), height = cumulative.size(1), width = cumulative.size(2);
  const int64_t oh_n = emitted.size(1), ow_n = emitted.size(2), hw = height * width, ohw = oh_n * ow_n;
  const int64_t x_step = is_static ? 0 : planes * hw;
  const float* xp = x.data_ptr<float>();
  float* cp = cumulative.data_ptr<float>();
  float* mp = emitted.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool fast = kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1 &&
                    2 * oh_n <= height && 2 * ow_n <= width;
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> updated(hw);
    for (int64_t p = begin; p < end; ++p) {
      float* c = cp + p * hw;
      float* m = mp + p * ohw;
      for (int64_t t = 0; t < steps; ++t) {
        const float* xx = xp + t * x_step + p * hw;
        float* o = op + (t * planes + p) * ohw;
        for (int64_t i = 0; i < hw; ++i) updated[i] = c[i] + xx[i];
        if (fast) {
          for (int64_t oh = 0; oh < oh_n; ++oh) maxpool_gate_row_2x2(updated.data(), xx, c, m, o, width, oh, ow_n);
          std::copy(updated.begin(), updated.end(), c);
          continue;
        }
        for (int64_t oh = 0; oh < oh_n; ++oh) {
          int64_t ih0 = oh * sh - ph;
          const int64_t ih1 = std::min(ih0 + (kh - 1) * dh + 1, height);
          while (ih0 < 0) ih0 += dh;
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            int64_t iw0 = ow * sw - pw;
            const int64_t iw1 = std::min(iw0 + (kw - 1) * dw + 1, width);
            while (iw0 < 0) iw0 += dw;
            int64_t best = ih0 * width + iw0;
            float best_value = -std::numeric_limits<float>::infinity();
            for (int64_t ih = ih0; ih < ih1; ih += dh) {
              for (int64_t iw = iw0; iw < iw1; iw += dw) {
                const int64_t index = ih * width + iw;
                const float value = updated[index];
                if (value > best_value || std::isnan(value)) {
                  best_value = value;
                  best = index;
                }
              }
            }
            const int64_t k = oh * ow_n + ow;
            const float grown = xx[best] + (c[best] - m[k]);
            o[k] = best_value == m[k] ? 0.0f : grown;
            m[k] = best_value;
          }
        }
        std::copy(updated.begin(), updated.end(), c);
      }
    }
  });
}
"""

_SOURCE = _LOOPS + native_training.SOURCE
_FUNCTIONS = ["if_run", "signed_run", "isi_run", "burst_run", "avg_pool_run", "binary_run", "binary_bptt", "mtlif_run", "mtlif_bptt",
              "maxpool_gate_run", *native_training.FUNCTIONS]  # fmt: skip
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math", "-march=native"]
_LAYOUT = "1"  # the cache folder layout; part of the key
_state: dict[str, ModuleType | None] = {}


class _Unavailable(Exception):
    """The loops cannot be used here; the message says why (``recorded``: an earlier process's failure)."""

    def __init__(self, reason: str, recorded: bool = False) -> None:
        super().__init__(reason)
        self.recorded = recorded


def _cpu_tag() -> str:
    """A short hash of this CPU's model and flags: ``-march=native`` code built for one CPU must never be loaded
    from a shared cache on another (it could stop on an illegal instruction)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags", "Features", "CPU part"))][:3]
    except OSError:
        lines = []
    return hashlib.sha256(("".join(lines) + platform.machine() + platform.processor()).encode()).hexdigest()[:10]


def cache_key() -> str:
    """What the built library depends on: source, flags, torch and Python builds, CPU."""
    parts = [_LAYOUT, _SOURCE, " ".join(_FLAGS), ",".join(_FUNCTIONS), torch.__version__, str(torch.version.git_version),
             sys.version, sysconfig.get_config_var("EXT_SUFFIX") or "", _cpu_tag()]  # fmt: skip
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cache_root() -> Path:
    """The folder holding one sub-folder per :func:`cache_key`."""
    explicit = os.environ.get("SPIKECONV_NATIVE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spikeconv" / "native"


def _module_name() -> str:
    return f"spikeconv_native_{cache_key()}"


def cached_library() -> Path:
    """Where the built library for this machine lives (it may not exist yet)."""
    return cache_root() / cache_key() / f"{_module_name()}{importlib.machinery.EXTENSION_SUFFIXES[-1]}"


def _import_library(path: Path) -> ModuleType:
    """Import a built extension module from ``path`` (no compiler involved); ImportError if unusable."""
    name = _module_name()
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise ImportError(f"no module spec for {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    missing = [f for f in _FUNCTIONS if not hasattr(module, f)]
    if missing:
        raise ImportError(f"{path} lacks {', '.join(missing)}")
    return module


def _try_cached(path: Path) -> ModuleType | None:
    """The cached library, or ``None`` if absent or unusable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        return _import_library(path)
    except ImportError as error:
        logger.warning("spikeconv: cached C++ kernels %s unusable (%s); rebuilding", path, error)
        return None


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _compile(target: Path) -> ModuleType:
    """Build the extension in a scratch folder beside ``target``, move the library to ``target``, return it."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise _Unavailable(f"no C++ compiler {compiler!r} on PATH")
    build = target.parent / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    from torch.utils.cpp_extension import load_inline

    module = load_inline(_module_name(), cpp_sources=[_SOURCE], functions=_FUNCTIONS, extra_cflags=_FLAGS,
                         build_directory=str(build), verbose=False)  # fmt: skip
    os.replace(module.__file__, target)
    shutil.rmtree(build, ignore_errors=True)
    return module


def _build(target: Path) -> ModuleType:
    """Compile under the lock unless another process finished first; record a failure for later processes."""
    failed = target.parent / "failed.txt"
    with _build_lock(target.parent.with_suffix(".lock")):
        module = _try_cached(target)
        if module is not None:
            return module
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"spikeconv: compiling the C++ neuron kernels once for this machine (about a minute) into {target.parent}; "
              "SPIKECONV_NATIVE=0 skips this", file=sys.stderr, flush=True)  # fmt: skip
        try:
            module = _compile(target)
        except Exception as error:  # noqa: BLE001 - any build failure means: no loops here
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            failed.write_text(f"{reason}\n", encoding="utf-8")
            raise _Unavailable(reason) from error
        failed.unlink(missing_ok=True)
        return module


def _mode() -> str:
    """``auto``, ``off`` or ``on`` from ``SPIKECONV_NATIVE``."""
    value = os.environ.get("SPIKECONV_NATIVE", "").strip().lower()
    modes = {"": "auto", "auto": "auto", "0": "off", "false": "off", "off": "off", "1": "on", "true": "on", "on": "on"}
    if value not in modes:
        raise ConfigError(f"SPIKECONV_NATIVE must be 0 (pure-torch kernels), 1 (require the C++ kernels) or unset, got {value!r}")
    return modes[value]


def _load(mode: str) -> ModuleType:
    """The cached library, else a fresh build (``auto`` does not retry a recorded failure)."""
    target = cached_library()
    module = _try_cached(target)
    if module is not None:
        return module
    failed = target.parent / "failed.txt"
    if mode == "auto" and failed.is_file():
        raise _Unavailable(f"an earlier build failed ({failed.read_text(encoding='utf-8').strip()}); "
                           "SPIKECONV_NATIVE=1 retries it", recorded=True)  # fmt: skip
    return _build(target)


def native_ops() -> ModuleType | None:
    """The compiled extension, or ``None`` if it is turned off or cannot be built (logged once per process).

    Raises:
        ConfigError: ``SPIKECONV_NATIVE=1`` and the extension cannot be built or loaded.
    """
    if "ops" in _state:
        return _state["ops"]
    mode, ops = _mode(), None
    if mode != "off":
        try:
            ops = _load(mode)
        except (_Unavailable, OSError) as error:
            if mode == "on":
                raise ConfigError(f"SPIKECONV_NATIVE=1 but the C++ neuron kernels are unavailable: {error}; "
                                  "unset SPIKECONV_NATIVE to fall back to the pure-torch kernels") from error  # fmt: skip
            level = logging.INFO if getattr(error, "recorded", False) else logging.WARNING
            logger.log(level, "spikeconv: C++ neuron kernels unavailable (%s); using the pure-torch kernels (same results)", error)
    _state["ops"] = ops
    return ops


def native_ops_for(*tensors: object) -> ModuleType | None:
    """The extension, where these plain CPU tensors are computed eagerly (not traced, exported or
    compiled, not fake or subclassed tensors: the C++ calls are invisible to those), else ``None``."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return None
    if not all(type(t) is torch.Tensor and t.device.type == "cpu" for t in tensors):
        return None
    return native_ops()


def float32_ops_for(x: torch.Tensor, *scalars: torch.Tensor) -> ModuleType | None:
    """:func:`native_ops_for` where ``x`` is a non-empty contiguous float32 CPU tensor and each of ``scalars`` holds
    one value: what the element-wise C++ passes of :mod:`~spikeconv.neurons.native_training` take."""
    if x.dtype != torch.float32 or not x.is_contiguous() or x.numel() == 0 or any(s.numel() != 1 for s in scalars):
        return None
    return native_ops_for(x, *scalars)


def native_available() -> bool:
    """Whether the C++ kernels are (or can be) loaded on this machine."""
    return native_ops() is not None
