// Argument blocks shared by the CPU and CUDA gated_steer kernels and their pybind11 bindings.
// Pointers are raw device or host addresses; the Python side has checked every tensor.
#pragma once
#include <cstdint>

namespace steerkit {

// Codes agreed with steerkit/backends/_native.py.
enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

// Tensors of the storage dtype: h (row stride h_row_stride, unit column stride), out, theta, gate_w.
// Tensors of the accumulation dtype (float32, or float64 for float64 storage): gate_b, strength
// (row stride 0 for a per-attribute [K] strength), gates [N,K], norms [N,2].
struct SteerArgs {
  const void* h; int64_t h_row_stride;
  void* out;
  const void* theta;
  const void* gate_w;  // null: gates are 1
  const void* gate_b;  // null: no bias
  const void* strength; int64_t strength_row_stride;
  void* gates;
  void* norms;
  int64_t n, d, k;
  DType dtype;
  bool norm_preserve;
};

struct SteerBackwardArgs {
  const void* grad; int64_t grad_row_stride;
  const void* h; int64_t h_row_stride;
  const void* theta;
  const void* gate_w;
  const void* strength; int64_t strength_row_stride;
  const void* gates;
  const void* norms;
  const void* gram;  // theta @ theta^T, [K,K], accumulation dtype
  void* dh;          // [N,D] contiguous, storage dtype
  void* dc;          // [N,K] accumulation dtype
  void* ra;          // [N,2] accumulation dtype: (r, a)
  int64_t n, d, k;
  DType dtype;
  bool norm_preserve;
};

// steer_add_rmsnorm: branch and residual [N,D] (storage dtype, unit column stride), new_residual and
// normed [N,D] contiguous (normed null: no norm), norm_weight [D] in the storage dtype; theta,
// gate_w, gate_b and strength as in SteerArgs.
struct SteerNormArgs {
  const void* branch; int64_t branch_row_stride;
  const void* residual; int64_t residual_row_stride;
  void* new_residual;
  void* normed;
  const void* theta;
  const void* gate_w;
  const void* gate_b;
  const void* strength; int64_t strength_row_stride;
  const void* norm_weight;
  float eps, weight_offset;
  bool cast_before_weight;
  int64_t n, d, k;
  DType dtype;
  bool norm_preserve;
};

void gated_steer_forward_cpu(const SteerArgs& a);
void gated_steer_backward_cpu(const SteerBackwardArgs& a);
void gated_steer_forward_cuda(const SteerArgs& a, uintptr_t stream);
void gated_steer_backward_cuda(const SteerBackwardArgs& a, uintptr_t stream);
void steer_add_rmsnorm_cuda(const SteerNormArgs& a, uintptr_t stream);

}  // namespace steerkit
