// Device helpers shared by steerkit's CUDA kernels: dtype conversion, block-wide sums, launch
// checks and dtype dispatch. Header-only; everything is inline or a template.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../gated_steer.h"

namespace steerkit {
namespace detail {

constexpr float kNormEps = 1e-8f;

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sums M per-thread partials over the block: partial(m) is called by every thread for each m, the
// totals land in out[0..M). scratch holds (blockDim/32)*M floats. Ends with a barrier.
template <typename F>
__device__ void block_sums(int M, F partial, float* scratch, float* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int m = 0; m < M; ++m) {
    float v = warp_sum(partial(m));
    if (lane == 0) scratch[warp * M + m] = v;
  }
  __syncthreads();
  for (int m = threadIdx.x; m < M; m += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < nw; ++w) s += scratch[w * M + m];
    out[m] = s;
  }
  __syncthreads();
}

// One element of a steered row: h_i + Σ_k c_k θ_k,i.
template <typename T>
__device__ __forceinline__ float steered_at(const T* h, const T* th, const float* c, int K, int64_t D, int64_t i) {
  float u = to_f(h[i]);
  for (int k = 0; k < K; ++k) u += c[k] * to_f(th[int64_t(k) * D + i]);
  return u;
}

// The prologue of a one-block-per-row steer: c[k] = s_k·g_k with g_k = σ(h·w_k + b_k) (1 without gate
// weights), also written to gates[k] when gates is not null. Returns ‖h‖², summed only when want_sq.
// Shared memory: scratch (blockDim/32)·(K+1) floats, red K+1, c K. Ends with a barrier.
template <typename T>
__device__ float row_coefficients(const T* h, int64_t D, int K, const T* w, const float* b, const float* s,
                                  bool want_sq, float* scratch, float* red, float* c, float* gates) {
  block_sums(K + 1, [&](int m) {
    float p = 0.f;
    if (m == K) {
      if (want_sq)
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) { float x = to_f(h[i]); p += x * x; }
    } else if (w != nullptr) {
      const T* wk = w + int64_t(m) * D;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) p += to_f(h[i]) * to_f(wk[i]);
    }
    return p;
  }, scratch, red);
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    float g = 1.f;
    if (w != nullptr) g = 1.f / (1.f + __expf(-(red[k] + (b != nullptr ? b[k] : 0.f))));
    if (gates != nullptr) gates[k] = g;
    c[k] = s[k] * g;
  }
  __syncthreads();
  return red[K];
}

// ‖h + Σ_k c_k θ_k‖ of the block's row; rs is one float of shared memory.
template <typename T>
__device__ float steered_norm(const T* h, const T* th, const float* c, int K, int64_t D, float* scratch,
                              float* rs) {
  block_sums(1, [&](int) {
    float p = 0.f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) { float u = steered_at(h, th, c, K, D, i); p += u * u; }
    return p;
  }, scratch, rs);
  return sqrtf(rs[0]);
}

inline int threads_for(int64_t d) { return d <= 256 ? 64 : (d <= 2048 ? 128 : 256); }

inline void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

template <typename Args, typename L>
void dispatch_dtype(const Args& a, const char* what, L launch) {
  switch (a.dtype) {
    case DType::kFloat32: launch(float{}); break;
    case DType::kFloat16: launch(__half{}); break;
    case DType::kBFloat16: launch(__nv_bfloat16{}); break;
    default: throw std::invalid_argument(std::string(what) + ": dtype must be float32, float16 or bfloat16");
  }
}

}  // namespace detail
}  // namespace steerkit
