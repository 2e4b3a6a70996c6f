// Pooling kernels: average pooling of spike maps and its gradient with aten's CPU arithmetic, and the spiking
// max-pool gate's time loop; bound as avg_pool_run, avg_pool_grad and maxpool_gate_run.
//
// Why: aten's channels-first (NCHW) CPU kernels of avg_pool2d and avg_pool2d_backward run at about a third of
// the memory bandwidth on spike maps; these give the same floats (spikeconv/neurons/pooling.py).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ops.h"
#include "pool_planes.h"

namespace spikeconv {

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

namespace {

// The gradient of an average pool without padding, ceil mode or divisor override, as aten's CPU
// avg_pool2d_backward computes it: each plane zeroed, then every window, in output order, adds go/(kh·kw)
// to its cells. 2x2 windows at stride 2 touch each cell once, so those cells are 0 + go/4 directly.
SPIKECONV_BLOCK void pool_grad_2x2(const float* __restrict__ go, float* __restrict__ gi, int64_t width, int64_t height,
                                   int64_t oh_n, int64_t ow_n) {
  for (int64_t ih = 2 * oh_n; ih < height; ++ih)
    for (int64_t iw = 0; iw < width; ++iw) gi[ih * width + iw] = 0.0f;
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    float* __restrict__ r0 = gi + 2 * oh * width;
    float* __restrict__ r1 = r0 + width;
    const float* __restrict__ g = go + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const float d = 0.0f + g[ow] / 4.0f;
      r0[2 * ow] = d;
      r0[2 * ow + 1] = d;
      r1[2 * ow] = d;
      r1[2 * ow + 1] = d;
    }
    for (int64_t iw = 2 * ow_n; iw < width; ++iw) r0[iw] = r1[iw] = 0.0f;
  }
}

void pool_grad_plane(const float* go, float* gi, int64_t height, int64_t width, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                     int64_t oh_n, int64_t ow_n) {
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2) return pool_grad_2x2(go, gi, width, height, oh_n, ow_n);
  std::fill(gi, gi + height * width, 0.0f);
  const int64_t divide = kh * kw;
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const float d = go[oh * ow_n + ow] / divide;
      for (int64_t i = 0; i < kh; ++i) {
        float* row = gi + (oh * sh + i) * width + ow * sw;
        for (int64_t j = 0; j < kw; ++j) row[j] += d;
      }
    }
  }
}

}  // namespace

void avg_pool_grad(const at::Tensor& grad_out, at::Tensor& grad_in, int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.is_contiguous() && grad_out.scalar_type() == at::kFloat, "grad_out: float32 [B, OH, OW]");
  TORCH_CHECK(grad_in.dim() == 3 && grad_in.is_contiguous() && grad_in.scalar_type() == at::kFloat, "grad_in: float32 [B, H, W]");
  const int64_t planes = grad_in.size(0), height = grad_in.size(1), width = grad_in.size(2);
  const int64_t oh_n = grad_out.size(1), ow_n = grad_out.size(2);
  TORCH_CHECK(grad_out.size(0) == planes && (oh_n - 1) * sh + kh <= height && (ow_n - 1) * sw + kw <= width,
              "pooling windows leave the input");
  const float* g = grad_out.data_ptr<float>();
  float* gi = grad_in.data_ptr<float>();
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      pool_grad_plane(g + p * oh_n * ow_n, gi + p * height * width, height, width, kh, kw, sh, sw, oh_n, ow_n);
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

}  // namespace spikeconv
