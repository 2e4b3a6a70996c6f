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

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock (torch's own build lock still applies)
    fcntl = None

logger = logging.getLogger("spikeconv")

_SOURCE = r"""
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
void for_blocks(int64_t n_samples, int64_t length, const Body& body) {
  const int64_t blocks = (length + kBlock - 1) / kBlock;
  at::parallel_for(0, n_samples * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t n = u / blocks;
      const int64_t j0 = (u % blocks) * kBlock;
      body(n, j0, std::min(length, j0 + kBlock));
    }
  });
}

struct Layout {
  int64_t n, l, x_step;
};

Layout layout_of(const at::Tensor& x, const at::Tensor& v, bool is_static) {
  TORCH_CHECK(v.dim() == 2 && v.is_contiguous() && v.scalar_type() == at::kFloat, "v must be a contiguous float32 [N, L]");
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kFloat, "x must be contiguous float32");
  return {v.size(0), v.size(1), is_static ? 0 : v.size(0) * v.size(1)};
}

inline float clamp_count(float s, float high) {
  // torch.clamp(s, 0, high) for the non-NaN values a finite membrane produces
  s = s < 0.0f ? 0.0f : s;
  return s > high ? high : s;
}

template <bool kBias, bool kHard>
SPIKECONV_BLOCK void if_block(const float* __restrict__ x, float* __restrict__ v, const float* __restrict__ th, const float* __restrict__ b,
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
            int64_t steps, bool is_static, bool hard) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      if (bp && hard) if_block<true, true>(xx, vv, tp, bp, oo, j0, j1);
      else if (bp) if_block<true, false>(xx, vv, tp, bp, oo, j0, j1);
      else if (hard) if_block<false, true>(xx, vv, tp, bp, oo, j0, j1);
      else if_block<false, false>(xx, vv, tp, bp, oo, j0, j1);
    }
  });
}

template <bool kBias>
SPIKECONV_BLOCK void signed_block(const float* __restrict__ x, float* __restrict__ v, float* __restrict__ c, const float* __restrict__ th,
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
                const at::Tensor& bias, at::Tensor& out, int64_t steps, bool is_static) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* cp = count.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* lp = low.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    float* cc = cp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      if (bp) signed_block<true>(xx, vv, cc, tp, lp, bp, oo, j0, j1);
      else signed_block<false>(xx, vv, cc, tp, lp, bp, oo, j0, j1);
    }
  });
}

// One ISI-corrected IF step over elements [j0, j1) of one sample; restrict pointers and branch-free masks so
// that the compiler vectorises it.
template <bool kBias>
SPIKECONV_BLOCK void isi_block(const float* __restrict__ x, float* __restrict__ v, float* __restrict__ c, float* __restrict__ f,
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
             bool is_static, int64_t start, double allowance) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* cp = count.data_ptr<float>();
  float* fp = fired.data_ptr<float>();
  float* firstp = first.data_ptr<float>();
  float* lastp = last.data_ptr<float>();
  float* ep = last_event.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const float allow = static_cast<float>(allowance);
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
    const int64_t base = n * d.l;
    for (int64_t k = 0; k < steps; ++k) {
      const float step = static_cast<float>(start + k);
      const float* xx = xp + k * d.x_step + base;
      float* oo = op + k * nl + base;
      if (bp) isi_block<true>(xx, vp + base, cp + base, fp + base, firstp + base, lastp + base, ep + base, tp, bp, oo, step, allow, j0, j1);
      else isi_block<false>(xx, vp + base, cp + base, fp + base, firstp + base, lastp + base, ep + base, tp, bp, oo, step, allow, j0, j1);
    }
  });
}

// kBias: 0 none, 1 H = V + (X + bias) (IFNeuron's order), 2 H = (V + X) + bias (bistable's order).
template <int kBias, bool kFire>
SPIKECONV_BLOCK void burst_block(const float* __restrict__ x, float* __restrict__ v, const float* __restrict__ th, const float* __restrict__ b,
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
               int64_t steps, bool is_static, int64_t max_spikes, std::vector<int64_t> fire, bool bias_last) {
  const Layout d = layout_of(x, v, is_static);
  TORCH_CHECK(static_cast<int64_t>(fire.size()) == steps, "fire needs one flag per step");
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const float* tp = th.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const float high = static_cast<float>(max_spikes);
  const int64_t nl = d.n * d.l;
  const int mode = bp ? (bias_last ? 2 : 1) : 0;
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      const bool firing = fire[t] != 0;
      if (mode == 0) burst_step<0>(xx, vv, tp, bp, oo, high, firing, j0, j1);
      else if (mode == 1) burst_step<1>(xx, vv, tp, bp, oo, high, firing, j0, j1);
      else burst_step<2>(xx, vv, tp, bp, oo, high, firing, j0, j1);
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
  const float divide = static_cast<float>(kh * kw);
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sums(ow_n);
    for (int64_t p = begin; p < end; ++p) {
      const float* plane = xp + p * height * width;
      float* o = op + p * oh_n * ow_n;
      for (int64_t oh = 0; oh < oh_n; ++oh) {
        std::fill(sums.begin(), sums.end(), 0.0f);
        for (int64_t i = 0; i < kh; ++i) {
          const float* row = plane + (oh * sh + i) * width;
          for (int64_t j = 0; j < kw; ++j) {
            for (int64_t ow = 0; ow < ow_n; ++ow) sums[ow] += row[ow * sw + j];
          }
        }
        for (int64_t ow = 0; ow < ow_n; ++ow) o[oh * ow_n + ow] = sums[ow] / divide;
      }
    }
  });
}

// Binary trainable neuron forward (trainable.binary_neuron_step without MPR), U[0] given:
// H = U + X (IF) or U + (X − U)·leak (LIF); O = Θ((H − θ) ≥ 0); U = H − O (soft) or H·(1 − O) (hard).
// h (may be null) receives H of every step, for the fused BPTT's backward.
template <bool kLif, bool kHard>
SPIKECONV_BLOCK void binary_block(const float* __restrict__ x, float* __restrict__ v, float th, float leak, float* __restrict__ out,
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
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
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
// g_H = g_direct + (g_spike·σ'[t])·φ'(H[t]), g_direct = g_v (soft) or g_v·(1 − O[t]) (hard), φ' only with MPR;
// IF: dL/dX[t] = g_H, g_v = g_H; LIF: dL/dX[t] = g_H·leak, g_v = g_H − g_H·leak.
// σ'[t] is `sg` or, where `sg` is empty, the rectangular window ((|P[t] − θ| ≤ w/2) ? 1 : 0) / w on the presented
// membrane P: `presented` if given, else φ(H) with MPR (std::tanh/std::pow: the window edges at H ≈ 0 and 1 may
// fall within an ulp of torch's), else H. A static input gets Σ_t dL/dX[t], summed from the last step.
// g_v: dL/dU[K] in, dL/dU[0] out. Element-wise arithmetic is autograd's; φ' uses std::tanh/std::pow (last-bit
// differences from torch's vectorised ones).
struct BinaryBptt {
  const float *go, *h, *o, *p, *sg;  // [K, N·L] each; p and sg may be null
  float *gv, *gx;
  int64_t steps, stride;
  bool is_static, detach, mpr;
  float th, half, width, leak, mpr_scale, mpr_eps, mpr_span;
};

// φ(u) of mpr.py: tanh(3(u − 1/2))/(2·tanh(3/2)) + 1/2 on [0, 1], sign(u)·|u|^(1/3) outside (NaN stays NaN).
inline float mpr_value(const BinaryBptt& a, float u) {
  if (u >= 0.0f && u <= 1.0f) return std::tanh(3.0f * (u - 0.5f)) / a.mpr_span + 0.5f;
  const float r = std::pow(std::fabs(u), 1.0f / 3.0f);
  return u < 0.0f ? -r : r;
}

inline float mpr_slope(const BinaryBptt& a, float u) {
  if (u >= 0.0f && u <= 1.0f) {
    const float t = std::tanh(3.0f * (u - 0.5f));
    return a.mpr_scale * (1.0f - t * t);
  }
  return std::pow(std::max(std::fabs(u), a.mpr_eps), -2.0f / 3.0f) / 3.0f;
}

template <bool kLif, bool kHard>
void binary_bptt_element(const BinaryBptt& a, int64_t e) {
  float g_v = a.gv[e], total = 0.0f;
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t i = t * a.stride + e;
    const float g_spike = a.detach ? a.go[i] : (kHard ? a.go[i] - g_v * a.h[i] : a.go[i] - g_v);
    const float g_direct = kHard ? g_v * (1.0f - a.o[i]) : g_v;
    const float presented = a.p ? a.p[i] : (a.mpr ? mpr_value(a, a.h[i]) : a.h[i]);
    const float s = a.sg ? a.sg[i] : (std::fabs(presented - a.th) <= a.half ? 1.0f : 0.0f) / a.width;
    const float g_presented = g_spike * s;
    const float g_h = g_direct + (a.mpr ? g_presented * mpr_slope(a, a.h[i]) : g_presented);
    float g_x = g_h;
    if (kLif) {
      g_x = g_h * a.leak;
      g_v = g_h - g_x;
    } else {
      g_v = g_h;
    }
    if (!a.is_static) a.gx[i] = g_x;
    else total = t == a.steps - 1 ? g_x : total + g_x;
  }
  a.gv[e] = g_v;
  if (a.is_static) a.gx[e] = total;
}

void binary_bptt(const at::Tensor& grad_out, const at::Tensor& h_all, const at::Tensor& out, const at::Tensor& presented,
                 const at::Tensor& sg, at::Tensor& grad_v, at::Tensor& grad_x, bool is_static, bool lif, bool hard,
                 bool detach, bool mpr, double threshold, double width, double leak, double mpr_scale, double mpr_eps,
                 double mpr_span) {
  TORCH_CHECK(h_all.dim() == 3 && h_all.is_contiguous() && grad_out.is_contiguous() && out.is_contiguous(), "[K, N, L] contiguous");
  TORCH_CHECK(!presented.numel() || (presented.is_contiguous() && presented.sizes() == h_all.sizes()), "presented must be like H");
  TORCH_CHECK(grad_v.is_contiguous() && grad_x.is_contiguous() && grad_out.sizes() == h_all.sizes(), "bad gradient buffers");
  const BinaryBptt a{grad_out.data_ptr<float>(), h_all.data_ptr<float>(), out.data_ptr<float>(),
                     presented.numel() ? presented.data_ptr<float>() : nullptr,
                     sg.numel() ? sg.data_ptr<float>() : nullptr, grad_v.data_ptr<float>(), grad_x.data_ptr<float>(),
                     h_all.size(0), h_all.size(1) * h_all.size(2), is_static, detach, mpr, static_cast<float>(threshold),
                     static_cast<float>(width / 2.0), static_cast<float>(width), static_cast<float>(leak),
                     static_cast<float>(mpr_scale), static_cast<float>(mpr_eps), static_cast<float>(mpr_span)};
  at::parallel_for(0, a.stride, kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      if (lif && hard) binary_bptt_element<true, true>(a, e);
      else if (lif) binary_bptt_element<true, false>(a, e);
      else if (hard) binary_bptt_element<false, true>(a, e);
      else binary_bptt_element<false, false>(a, e);
    }
  });
}

// Multi-threshold LIF forward (multi_threshold.multi_threshold_step): H = U + X, O = clip(⌊H/θ⌋, 0, Γ),
// U = k·H − θ·O (undecayed reset) or k·(H − θ·O) (decayed). h (may be null) receives H of every step.
template <bool kDecayed>
SPIKECONV_BLOCK void mtlif_block(const float* __restrict__ x, float* __restrict__ v, float th, float k, float high, float* __restrict__ out,
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
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
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
// g_v = g_direct + g_o·h'[t] = dL/dX[t] (a static input gets Σ_t, summed from the last step). h'[t] is `sg`, or
// with `comb_max` the comb-max surrogate a·exp(−d²/b), d = H − clip(round(H/θ), 1, Γ)·θ, from `h_or_sg` = H
// (std::exp: last-bit differences from torch's vectorised exp).
void mtlif_bptt(const at::Tensor& grad_out, const at::Tensor& h_or_sg, at::Tensor& grad_v, at::Tensor& grad_x, bool is_static,
                bool decayed, bool detach, double threshold, double decay, bool comb_max, double amplitude, double width,
                int64_t max_spikes) {
  TORCH_CHECK(h_or_sg.dim() == 3 && h_or_sg.is_contiguous() && grad_out.is_contiguous() && grad_out.sizes() == h_or_sg.sizes(),
              "[K, N, L] contiguous");
  TORCH_CHECK(grad_v.is_contiguous() && grad_x.is_contiguous(), "bad gradient buffers");
  const int64_t steps = h_or_sg.size(0), stride = h_or_sg.size(1) * h_or_sg.size(2);
  const float* gop = grad_out.data_ptr<float>();
  const float* sp = h_or_sg.data_ptr<float>();
  float* gvp = grad_v.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float th = static_cast<float>(threshold), k = static_cast<float>(decay);
  const float amp = static_cast<float>(amplitude), b = static_cast<float>(width), high = static_cast<float>(max_spikes);
  at::parallel_for(0, stride, kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      float g_v = gvp[e], total = 0.0f;
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t i = t * stride + e;
        float slope = sp[i];
        if (comb_max) {
          const float peak = std::min(std::max(std::nearbyint(sp[i] / th), 1.0f), high);
          const float d = sp[i] - peak * th;
          slope = amp * std::exp(-(d * d) / b);
        }
        const float g_direct = g_v * k;
        const float g_o = detach ? gop[i] : gop[i] - (decayed ? g_direct : g_v) * th;
        g_v = g_direct + g_o * slope;
        if (!is_static) gxp[i] = g_v;
        else total = t == steps - 1 ? g_v : total + g_v;
      }
      gvp[e] = g_v;
      if (is_static) gxp[e] = total;
    }
  });
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
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> updated(hw);
    for (int64_t p = begin; p < end; ++p) {
      float* c = cp + p * hw;
      float* m = mp + p * ohw;
      for (int64_t t = 0; t < steps; ++t) {
        const float* xx = xp + t * x_step + p * hw;
        float* o = op + (t * planes + p) * ohw;
        for (int64_t i = 0; i < hw; ++i) updated[i] = c[i] + xx[i];
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

_FUNCTIONS = ["if_run", "signed_run", "isi_run", "burst_run", "avg_pool_run", "binary_run", "binary_bptt", "mtlif_run", "mtlif_bptt",
              "maxpool_gate_run"]  # fmt: skip
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


def native_available() -> bool:
    """Whether the C++ kernels are (or can be) loaded on this machine."""
    return native_ops() is not None
