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
