// Shared helpers of the C++ neuron kernels: block-wise parallel loops over membranes, the [N, L] layout of a
// neuron's state, and the clamp of spike counts.
//
// Every kernel does the same IEEE float32 operations in the same order as the pure-torch reference it stands
// in for (built with -ffp-contract=off: no fused multiply-adds, no fast math), so its results are bit-identical
// to that reference; spikeconv/neurons/native.py builds, caches and binds these files.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

namespace spikeconv {

constexpr int64_t kBlock = 1024;  // membranes per work unit: v, x, θ and bias blocks stay in L1

// Per-block loops are kept out of line: inlined into the parallel lambdas, GCC no longer proves the
// restrict pointers independent and leaves the ISI loop scalar (measured 13x the time of plain IF).
#define SPIKECONV_BLOCK __attribute__((noinline))

// Run body(n, j0, j1) over every sample n and block [j0, j1) of its L elements, in parallel.
template <typename Body>
inline void for_blocks(int64_t n_samples, int64_t length, int64_t block, const Body& body) {
  const int64_t blocks = (length + block - 1) / block;
  at::parallel_for(0, n_samples * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t n = u / blocks;
      const int64_t j0 = (u % blocks) * block;
      body(n, j0, std::min(length, j0 + block));
    }
  });
}

// A neuron's membranes as [N, L] (N samples of L elements); x_step is 0 for a static input (the same x at
// every step), else N·L.
struct Layout {
  int64_t n, l, x_step;
};

inline Layout layout_of(const at::Tensor& x, const at::Tensor& v, bool is_static) {
  TORCH_CHECK(v.dim() == 2 && v.is_contiguous() && v.scalar_type() == at::kFloat, "v must be a contiguous float32 [N, L]");
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kFloat, "x must be contiguous float32");
  return {v.size(0), v.size(1), is_static ? 0 : v.size(0) * v.size(1)};
}

inline float clamp_count(float s, float high) {
  // torch.clamp(s, 0, high) for the non-NaN values a finite membrane produces
  s = s < 0.0f ? 0.0f : s;
  return s > high ? high : s;
}

}  // namespace spikeconv
