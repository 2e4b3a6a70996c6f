"""Optional C++ time loops for the conversion neurons, compiled on first use.

Why: the pure-torch kernels make 4-6 passes over memory per step (add, compare, multiply,
subtract, dtype copies). The loops below keep a block of membranes in L1 cache and run every
timestep of that block before moving on, so each input is read once (once in all for a static
input) and each output written once. They do the same IEEE float32 operations in the same order
as the reference steps (compiled with ``-ffp-contract=off``: no fused multiply-adds, no fast
math), so their outputs and state are bit-identical to the reference, which
``tests/neurons/test_fast_kernels.py`` checks per neuron kind.

The extension is built with ``torch.utils.cpp_extension.load_inline`` into torch's extension
cache. They are opt-in (``SPIKECONV_NATIVE=1``): on this project's machines ``load_inline`` spent
about 53 s per *process* (it re-runs the build step each time), so a fresh ``spikeconv curve`` on
digits took 71 s instead of 7.7 s; until the build is cached across processes the pure-torch
kernels (also bit-identical) are the default. When the extension cannot be built,
:func:`native_ops` returns ``None`` once with a warning and the pure-torch kernels run instead.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

import torch

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
void if_block(const float* __restrict__ x, float* __restrict__ v, const float* __restrict__ th, const float* __restrict__ b,
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
void signed_block(const float* __restrict__ x, float* __restrict__ v, float* __restrict__ c, const float* __restrict__ th,
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
      const float* __restrict__ xx = xp + k * d.x_step + base;
      float* __restrict__ oo = op + k * nl + base;
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t i = base + j;
        const float h = vp[i] + (bp ? xx[j] + bp[j] : xx[j]);
        const bool pos = h >= tp[j];
        const float intervals = std::max(fp[i] - 1.0f, 1.0f);
        const float mean_isi = (lastp[i] - firstp[i]) / intervals;
        const bool neg = !pos && cp[i] > 0.0f && fp[i] >= 2.0f && (step - ep[i]) > mean_isi + allow;
        const float s = (pos ? 1.0f : 0.0f) - (neg ? 1.0f : 0.0f);
        const float o = s * tp[j];
        oo[j] = o;
        vp[i] = h - o;
        firstp[i] = pos && fp[i] == 0.0f ? step : firstp[i];
        cp[i] = cp[i] + s;
        fp[i] = fp[i] + (pos ? 1.0f : 0.0f);
        lastp[i] = pos ? step : lastp[i];
        ep[i] = pos || neg ? step : ep[i];
      }
    }
  });
}

// kBias: 0 none, 1 H = V + (X + bias) (IFNeuron's order), 2 H = (V + X) + bias (bistable's order).
template <int kBias, bool kFire>
void burst_block(const float* __restrict__ x, float* __restrict__ v, const float* __restrict__ th, const float* __restrict__ b,
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
template <bool kLif, bool kHard>
void binary_block(const float* __restrict__ x, float* __restrict__ v, float th, float leak, float* __restrict__ out,
                  int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = kLif ? v[j] + (x[j] - v[j]) * leak : v[j] + x[j];
    const float o = (h - th) >= 0.0f ? 1.0f : 0.0f;
    out[j] = o;
    v[j] = kHard ? h * (1.0f - o) : h - o;
  }
}

void binary_run(const at::Tensor& x, at::Tensor& v, double threshold, double leak, at::Tensor& out, int64_t steps,
                bool is_static, bool lif, bool hard) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float th = static_cast<float>(threshold), lk = static_cast<float>(leak);
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      if (lif && hard) binary_block<true, true>(xx, vv, th, lk, oo, j0, j1);
      else if (lif) binary_block<true, false>(xx, vv, th, lk, oo, j0, j1);
      else if (hard) binary_block<false, true>(xx, vv, th, lk, oo, j0, j1);
      else binary_block<false, false>(xx, vv, th, lk, oo, j0, j1);
    }
  });
}

// Multi-threshold LIF forward (multi_threshold.multi_threshold_step): H = U + X, O = clip(⌊H/θ⌋, 0, Γ),
// U = k·H − θ·O (undecayed reset) or k·(H − θ·O) (decayed).
template <bool kDecayed>
void mtlif_block(const float* __restrict__ x, float* __restrict__ v, float th, float k, float high, float* __restrict__ out,
                 int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float h = v[j] + x[j];
    const float o = clamp_count(std::floor(h / th), high);
    out[j] = o;
    v[j] = kDecayed ? k * (h - th * o) : k * h - th * o;
  }
}

void mtlif_run(const at::Tensor& x, at::Tensor& v, double threshold, double decay, int64_t max_spikes, at::Tensor& out,
               int64_t steps, bool is_static, bool decayed) {
  const Layout d = layout_of(x, v, is_static);
  const float* xp = x.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float th = static_cast<float>(threshold), k = static_cast<float>(decay), high = static_cast<float>(max_spikes);
  const int64_t nl = d.n * d.l;
  for_blocks(d.n, d.l, [&](int64_t n, int64_t j0, int64_t j1) {
    float* vv = vp + n * d.l;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xx = xp + t * d.x_step + n * d.l;
      float* oo = op + t * nl + n * d.l;
      if (decayed) mtlif_block<true>(xx, vv, th, k, high, oo, j0, j1);
      else mtlif_block<false>(xx, vv, th, k, high, oo, j0, j1);
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

_FUNCTIONS = ["if_run", "signed_run", "isi_run", "burst_run", "avg_pool_run", "binary_run", "mtlif_run", "maxpool_gate_run"]
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math"]
_state: dict[str, ModuleType | None] = {}


def _cpu_tag() -> str:
    """A short hash of this CPU's model and flags: ``-march=native`` code built for one CPU must never be loaded
    from a shared extension cache on another (it could stop on an illegal instruction)."""
    import hashlib
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags", "Features", "CPU part"))][:3]
    except OSError:
        lines = []
    return hashlib.sha256(("".join(lines) + platform.machine()).encode()).hexdigest()[:10]


def native_ops() -> ModuleType | None:
    """The compiled extension, or ``None`` if it is disabled or cannot be built (warned once)."""
    if "ops" in _state:
        return _state["ops"]
    ops = None
    if os.environ.get("SPIKECONV_NATIVE", "0") == "1":
        try:
            from torch.utils.cpp_extension import load_inline

            ops = load_inline(f"spikeconv_neurons_v5_{_cpu_tag()}", cpp_sources=[_SOURCE], functions=_FUNCTIONS,
                              extra_cflags=[*_FLAGS, "-march=native"], verbose=False)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - any build failure means: use the pure-torch kernels
            logger.warning("spikeconv: C++ neuron kernels unavailable (%s); using the pure-torch kernels", str(error).splitlines()[0])
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
