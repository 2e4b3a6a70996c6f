// The functions of the C++ neuron extension, as bindings.cpp binds them to Python (one name each in
// spikeconv/neurons/native.py's _FUNCTIONS). Tensors are float32, contiguous and on the CPU; each definition
// says which torch reference it reproduces bit for bit.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace spikeconv {

// if_loops.cpp: time loops of the converted IF neurons, optionally pooling their spikes as they are written.
void if_run(const at::Tensor& x, at::Tensor& v, const at::Tensor& th, const at::Tensor& bias, at::Tensor& out, int64_t steps,
            bool is_static, bool hard, std::vector<int64_t> pool, std::vector<at::Tensor> gate);
void signed_run(const at::Tensor& x, at::Tensor& v, at::Tensor& count, const at::Tensor& th, const at::Tensor& low,
                const at::Tensor& bias, at::Tensor& out, int64_t steps, bool is_static, std::vector<int64_t> pool,
                std::vector<at::Tensor> gate);
void isi_run(const at::Tensor& x, at::Tensor& v, at::Tensor& count, at::Tensor& fired, at::Tensor& first, at::Tensor& last,
             at::Tensor& last_event, const at::Tensor& th, const at::Tensor& bias, at::Tensor& out, int64_t steps,
             bool is_static, int64_t start, double allowance, std::vector<int64_t> pool, std::vector<at::Tensor> gate);
void burst_run(const at::Tensor& x, at::Tensor& v, const at::Tensor& th, const at::Tensor& bias, at::Tensor& out,
               int64_t steps, bool is_static, int64_t max_spikes, std::vector<int64_t> fire, bool bias_last,
               std::vector<int64_t> pool, std::vector<at::Tensor> gate);

// pooling.cpp: average pooling (forward and gradient) and the spiking max-pool gate.
void avg_pool_run(const at::Tensor& x, at::Tensor& out, int64_t kh, int64_t kw, int64_t sh, int64_t sw);
void avg_pool_grad(const at::Tensor& grad_out, at::Tensor& grad_in, int64_t kh, int64_t kw, int64_t sh, int64_t sw);
void maxpool_gate_run(const at::Tensor& x, at::Tensor& cumulative, at::Tensor& emitted, at::Tensor& out, int64_t steps,
                      bool is_static, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw);

// trainable_loops.cpp: the trainable neurons' time loops, forward and backward through time.
void binary_run(const at::Tensor& x, at::Tensor& v, double threshold, double leak, at::Tensor& out, int64_t steps,
                bool is_static, bool lif, bool hard, at::Tensor& h_all);
void binary_bptt(const at::Tensor& grad_out, const at::Tensor& h_all, const at::Tensor& out, const at::Tensor& sg,
                 const at::Tensor& rect, at::Tensor& grad_v, at::Tensor& grad_x, bool is_static, bool lif, bool hard,
                 bool detach, double leak);
void mtlif_run(const at::Tensor& x, at::Tensor& v, double threshold, double decay, int64_t max_spikes, at::Tensor& out,
               int64_t steps, bool is_static, bool decayed, at::Tensor& h_all);
void mtlif_bptt(const at::Tensor& grad_out, const at::Tensor& sg, at::Tensor& grad_v, at::Tensor& grad_x, bool is_static,
                bool decayed, bool detach, double threshold, double decay);

// training_passes.cpp: element-wise passes of direct training (MPR's φ and φ′, surrogate slopes, one step's backward).
void mpr_parts(const at::Tensor& u, at::Tensor& a, at::Tensor& r, double eps, bool clamp);
void mpr_parts_both(const at::Tensor& u, at::Tensor& a, at::Tensor& r1, at::Tensor& r2, double eps);
void mpr_join(const at::Tensor& u, const at::Tensor& t, const at::Tensor& r, at::Tensor& out, double c, bool derivative);
void mpr_fire(const at::Tensor& u, const at::Tensor& t, const at::Tensor& r, at::Tensor& x, at::Tensor& spikes, double span,
              double threshold);
void mpr_fire_grad(const at::Tensor& u, const at::Tensor& t, const at::Tensor& r, const at::Tensor& g, const at::Tensor& s,
                   at::Tensor& out, double scale, bool rect, double half, double width);
void binary_step_grad(const at::Tensor& go, const at::Tensor& gv, const at::Tensor& h, const at::Tensor& o, const at::Tensor& t,
                      const at::Tensor& r1, const at::Tensor& r2, at::Tensor& gx, at::Tensor& gvo,
                      double threshold, double span, double scale, double half, double width, double leak, bool lif, bool hard,
                      bool detach, bool mpr);
void mtlif_step_grad(const at::Tensor& go, const at::Tensor& gv, const at::Tensor& h, const at::Tensor& ex, at::Tensor& gx,
                     double threshold, int64_t max_spikes, double b, double a, double decay, bool rational, bool decayed, bool detach);
void rectangular_slope(const at::Tensor& x, at::Tensor& out, double half, double width);
void heaviside(const at::Tensor& x, at::Tensor& out);
void comb_slope(const at::Tensor& u, at::Tensor& out, double threshold, int64_t max_spikes, double b, double a, int64_t kind);

}  // namespace spikeconv
