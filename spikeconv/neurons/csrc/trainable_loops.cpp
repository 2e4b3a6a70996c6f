// Time loops of the trainable neurons (binary IF/LIF/SRIF and the multi-threshold LIF): the forward over all
// steps, which also records H for the backward, and backpropagation through time over all steps, bound as
// binary_run, binary_bptt, mtlif_run and mtlif_bptt.
//
// The forward loops do the op-by-op steps' float operations in the same order (bit-identical outputs and
// state); the backward loops do autograd's element-wise arithmetic on the step loop, with the surrogate and
// MPR slopes computed beforehand by torch's vectorised ops (tests/neurons/test_fused_training.py).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.h"
#include "ops.h"

namespace spikeconv {

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

// Backward of the binary neuron over all steps (binary_nodes._BinaryBPTT), per element from the last step:
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

}  // namespace spikeconv
