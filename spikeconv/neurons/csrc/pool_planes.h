// Pooling of one H×W plane, shared by the pooling kernels (pooling.cpp) and the neuron loops that pool their
// spikes before writing them (if_loops.cpp): average pools with aten's CPU arithmetic, and one step of the 2x2
// spiking max-pool gate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "common.h"

namespace spikeconv {

// 2x2 windows at stride 2 (most CNNs' pools), the same additions as pool_plane below; ·0.25 equals /4 exactly.
SPIKECONV_BLOCK inline void pool_plane_2x2(const float* __restrict__ plane, float* __restrict__ out, int64_t width, int64_t oh_n,
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
SPIKECONV_BLOCK inline void maxpool_gate_row_2x2(const float* __restrict__ updated, const float* __restrict__ x,
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

}  // namespace spikeconv
