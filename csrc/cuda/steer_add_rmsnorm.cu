// steer_add_rmsnorm on CUDA: one thread block per row. Steering of a block's output, the residual
// add and the next RMSNorm in one pass: the branch and residual rows are read, the new residual
// and the normed row written. Same math as steerkit.reference.steer_add_rmsnorm, accumulated in
// float32. Launched on the caller's stream; no host synchronisation.
#include "../gated_steer.h"
#include "device_common.cuh"

namespace steerkit {
using namespace detail;
namespace {

template <typename T>
__global__ void steer_add_rmsnorm_kernel(SteerNormArgs a) {
  extern __shared__ float sm[];
  const int K = int(a.k);
  const int64_t D = a.d, n = blockIdx.x;
  const int nw = blockDim.x >> 5;
  float* scratch = sm;                 // nw * (K + 1)
  float* red = scratch + nw * (K + 1); // K + 1
  float* c = red + (K + 1);            // K
  float* rs = c + K;                   // 1

  const T* br = static_cast<const T*>(a.branch) + n * a.branch_row_stride;
  const T* res = static_cast<const T*>(a.residual) + n * a.residual_row_stride;
  const T* th = static_cast<const T*>(a.theta);
  const T* w = static_cast<const T*>(a.gate_w);
  const float* b = static_cast<const float*>(a.gate_b);
  const float* s = static_cast<const float*>(a.strength) + n * a.strength_row_stride;

  const float sq = row_coefficients(br, D, K, w, b, s, a.norm_preserve, scratch, red, c, nullptr);
  float r = 1.f;
  if (a.norm_preserve) {
    const float nu = steered_norm(br, th, c, K, D, scratch, rs);
    r = nu > kNormEps ? sqrtf(sq) / nu : 1.f;
  }
  T* out = static_cast<T*>(a.new_residual) + n * D;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const T v = from_f<T>(to_f(res[i]) + r * steered_at(br, th, c, K, D, i));
    out[i] = v;
    const float f = to_f(v);
    ss += f * f;
  }
  if (a.normed == nullptr) return;
  block_sums(1, [&](int) { return ss; }, scratch, rs);
  const float inv = rsqrtf(rs[0] / float(D) + a.eps);
  const T* nwt = static_cast<const T*>(a.norm_weight);
  T* normed = static_cast<T*>(a.normed) + n * D;
  // Each thread reads back only the elements it wrote itself above.
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    float y = to_f(out[i]) * inv;
    if (a.cast_before_weight) y = to_f(from_f<T>(y));
    normed[i] = from_f<T>((to_f(nwt[i]) + a.weight_offset) * y);
  }
}

}  // namespace

void steer_add_rmsnorm_cuda(const SteerNormArgs& a, uintptr_t stream) {
  if (a.n == 0) return;
  const int threads = threads_for(a.d);
  const size_t smem = sizeof(float) * size_t((threads / 32) * (a.k + 1) + (a.k + 1) + a.k + 1);
  dispatch_dtype(a, "steer_add_rmsnorm_cuda", [&](auto tag) {
    using T = decltype(tag);
    steer_add_rmsnorm_kernel<T><<<dim3(unsigned(a.n)), threads, smem, reinterpret_cast<cudaStream_t>(stream)>>>(a);
  });
  check_launch("steer_add_rmsnorm_cuda");
}

}  // namespace steerkit
