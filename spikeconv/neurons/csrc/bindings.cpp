// The Python module of the C++ neuron kernels: one binding per function of ops.h. TORCH_EXTENSION_NAME is the
// cache-keyed module name that spikeconv/neurons/native.py builds; wrap_pybind_function turns a failed
// TORCH_CHECK into a Python RuntimeError.
#include <torch/extension.h>

#include "ops.h"

#define SPIKECONV_BIND(name) m.def(#name, torch::wrap_pybind_function(spikeconv::name), #name)

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  SPIKECONV_BIND(if_run);
  SPIKECONV_BIND(signed_run);
  SPIKECONV_BIND(isi_run);
  SPIKECONV_BIND(burst_run);
  SPIKECONV_BIND(avg_pool_run);
  SPIKECONV_BIND(avg_pool_grad);
  SPIKECONV_BIND(maxpool_gate_run);
  SPIKECONV_BIND(binary_run);
  SPIKECONV_BIND(binary_bptt);
  SPIKECONV_BIND(mtlif_run);
  SPIKECONV_BIND(mtlif_bptt);
  SPIKECONV_BIND(mpr_parts);
  SPIKECONV_BIND(mpr_parts_both);
  SPIKECONV_BIND(mpr_join);
  SPIKECONV_BIND(mpr_fire);
  SPIKECONV_BIND(mpr_fire_grad);
  SPIKECONV_BIND(binary_step_grad);
  SPIKECONV_BIND(mtlif_step_grad);
  SPIKECONV_BIND(rectangular_slope);
  SPIKECONV_BIND(heaviside);
  SPIKECONV_BIND(comb_slope);
}
