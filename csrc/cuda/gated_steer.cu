// gated_steer on CUDA: one thread block per row. Same math and outputs as
// steerkit.reference.gated_steer_forward_rows / gated_steer_backward_rows, accumulated in float32.
// Launched on the caller's stream; no host synchronisation. norms[:,1] (the steered norm) is
// only computed when norm_preserve is set, the only case in which the backward reads it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../gated_steer.h"
#include "device_common.cuh"

namespace steerkit {
using namespace detail;
namespace {

template <typename T>
__global__ void forward_kernel(SteerArgs a) {
  extern __shared__ float sm[];
  const int K = int(a.k);
  const int64_t D = a.d, n = blockIdx.x;
  const int nw = blockDim.x >> 5;
  float* scratch = sm;                 // nw * (K + 1)
  float* red = scratch + nw * (K + 1); // K + 1
  float* c = red + (K + 1);            // K
  float* rs = c + K;                   // 1: the row's scale r

  const T* h = static_cast<const T*>(a.h) + n * a.h_row_stride;
  const T* th = static_cast<const T*>(a.theta);
  const T* w = static_cast<const T*>(a.gate_w);
  const float* b = static_cast<const float*>(a.gate_b);
  const float* s = static_cast<const float*>(a.strength) + n * a.strength_row_stride;

  float* gates = static_cast<float*>(a.gates) + n * K;
  const float nh = sqrtf(row_coefficients(h, D, K, w, b, s, true, scratch, red, c, gates));
  const float nu = a.norm_preserve ? steered_norm(h, th, c, K, D, scratch, rs) : 0.f;
  const float r = (a.norm_preserve && nu > kNormEps) ? nh / nu : 1.f;
  T* out = static_cast<T*>(a.out) + n * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) out[i] = from_f<T>(r * steered_at(h, th, c, K, D, i));
  if (threadIdx.x == 0) {
    float* norms = static_cast<float*>(a.norms) + 2 * n;
    norms[0] = nh;
    norms[1] = nu;
  }
}

template <typename T>
__global__ void backward_kernel(SteerBackwardArgs a) {
  extern __shared__ float sm[];
  const int K = int(a.k);
  const int64_t D = a.d, n = blockIdx.x;
  const int nw = blockDim.x >> 5;
  const int M = 2 * K + 1;
  float* scratch = sm;            // nw * M
  float* red = scratch + nw * M;  // M: grad·theta_k, h·theta_k, grad·h
  float* c = red + M;             // K
  float* dz = c + K;              // K
  float* sc = dz + K;             // 3: r, a, hcoef

  const T* g = static_cast<const T*>(a.grad) + n * a.grad_row_stride;
  const T* h = static_cast<const T*>(a.h) + n * a.h_row_stride;
  const T* th = static_cast<const T*>(a.theta);
  const T* w = static_cast<const T*>(a.gate_w);
  const float* s = static_cast<const float*>(a.strength) + n * a.strength_row_stride;
  const float* gates = static_cast<const float*>(a.gates) + n * K;
  const float* gram = static_cast<const float*>(a.gram);
  const bool np = a.norm_preserve;

  block_sums(np ? M : K, [&](int m) {
    float p = 0.f;
    if (m < K) {
      const T* tk = th + int64_t(m) * D;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) p += to_f(g[i]) * to_f(tk[i]);
    } else if (m < 2 * K) {
      const T* tk = th + int64_t(m - K) * D;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) p += to_f(h[i]) * to_f(tk[i]);
    } else {
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) p += to_f(g[i]) * to_f(h[i]);
    }
    return p;
  }, scratch, red);

  for (int k = threadIdx.x; k < K; k += blockDim.x) c[k] = s[k] * gates[k];
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = 1.f, al = 0.f, hc = 0.f;
    if (np) {
      const float* norms = static_cast<const float*>(a.norms) + 2 * n;
      const float nh = norms[0], nu = norms[1];
      if (nu > kNormEps) {
        float g_u = red[2 * K];
        for (int k = 0; k < K; ++k) g_u += c[k] * red[k];
        r = nh / nu;
        al = g_u / (nu * nu);
        hc = nh > 0.f ? g_u / (nu * nh) : 0.f;
      }
    }
    sc[0] = r; sc[1] = al; sc[2] = hc;
    float* ra = static_cast<float*>(a.ra) + 2 * n;
    ra[0] = r; ra[1] = al;
  }
  __syncthreads();
  const float r = sc[0], al = sc[1], hc = sc[2];
  float* dc = static_cast<float*>(a.dc) + n * K;
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    float d = red[k];
    if (al != 0.f) {
      float u_theta = red[K + k];
      for (int j = 0; j < K; ++j) u_theta += c[j] * gram[j * K + k];
      d = r * (d - al * u_theta);
    } else {
      d = r * d;
    }
    dc[k] = d;
    dz[k] = (w != nullptr) ? d * s[k] * gates[k] * (1.f - gates[k]) : 0.f;
  }
  __syncthreads();
  T* dh = static_cast<T*>(a.dh) + n * D;
  const float hfac = hc - r * al;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    float acc = r * to_f(g[i]) + hfac * to_f(h[i]);
    for (int k = 0; k < K; ++k) {
      const int64_t ki = int64_t(k) * D + i;
      if (al != 0.f) acc -= r * al * c[k] * to_f(th[ki]);
      if (w != nullptr) acc += dz[k] * to_f(w[ki]);
    }
    dh[i] = from_f<T>(acc);
  }
}


// Register-blocked forward for K <= 32: a block steers R rows at once, so each theta/gate_w element
// loaded from L2 serves R rows (the per-row kernel above re-reads them K times per element per row).
// Per-attribute sums live in registers, z[R][KMAX] then c[R][KMAX].
constexpr int kRowsThreads = 256;

template <typename T, int R, int KMAX>
__global__ void __launch_bounds__(kRowsThreads) forward_rows_kernel(SteerArgs a) {
  constexpr int M = R * (KMAX + 1);
  __shared__ float scratch[(kRowsThreads / 32) * M];
  __shared__ float red[M];
  __shared__ float cs[R * KMAX];
  const int K = int(a.k);
  const int64_t D = a.d;
  const int64_t row0 = int64_t(blockIdx.x) * R;
  const int nrows = a.n - row0 < R ? int(a.n - row0) : R;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T* h[R];
#pragma unroll
  for (int r = 0; r < R; ++r)  // rows past the end alias the last real row; their results are dropped
    h[r] = static_cast<const T*>(a.h) + (row0 + (r < nrows ? r : nrows - 1)) * a.h_row_stride;
  const T* th = static_cast<const T*>(a.theta);
  const T* w = static_cast<const T*>(a.gate_w);
  const float* b = static_cast<const float*>(a.gate_b);
  const float* s = static_cast<const float*>(a.strength);

  auto block_reduce = [&](float (*vals)[KMAX + 1], int count_per_row) {
    // count_per_row values per row: the first K (or none) and the last slot
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int k = 0; k <= KMAX; ++k) {
        if (k == KMAX || k < count_per_row) {
          float v = warp_sum(vals[r][k]);
          if (lane == 0) scratch[warp * M + r * (KMAX + 1) + k] = v;
        }
      }
    }
    __syncthreads();
    for (int m = threadIdx.x; m < M; m += blockDim.x) {
      float t = 0.f;
      for (int wi = 0; wi < kRowsThreads / 32; ++wi) t += scratch[wi * M + m];
      red[m] = t;
    }
    __syncthreads();
  };

  float acc[R][KMAX + 1];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int k = 0; k <= KMAX; ++k) acc[r][k] = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += kRowsThreads) {
    float x[R];
#pragma unroll
    for (int r = 0; r < R; ++r) { x[r] = to_f(h[r][i]); acc[r][KMAX] += x[r] * x[r]; }
    if (w != nullptr) {
#pragma unroll
      for (int k = 0; k < KMAX; ++k) {
        if (k < K) {
          const float wk = to_f(w[int64_t(k) * D + i]);
#pragma unroll
          for (int r = 0; r < R; ++r) acc[r][k] += x[r] * wk;
        }
      }
    }
  }
  block_reduce(acc, w != nullptr ? K : 0);

  for (int m = threadIdx.x; m < R * KMAX; m += blockDim.x) {
    const int r = m / KMAX, k = m % KMAX;
    float c = 0.f;
    if (k < K && r < nrows) {
      float g = 1.f;
      if (w != nullptr) g = 1.f / (1.f + __expf(-(red[r * (KMAX + 1) + k] + (b != nullptr ? b[k] : 0.f))));
      static_cast<float*>(a.gates)[(row0 + r) * K + k] = g;
      c = s[(row0 + r) * a.strength_row_stride + k] * g;
    }
    cs[m] = c;
  }
  __syncthreads();
  float c[R][KMAX], rscale[R], nh[R], nu[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int k = 0; k < KMAX; ++k) c[r][k] = cs[r * KMAX + k];
    nh[r] = sqrtf(red[r * (KMAX + 1) + KMAX]);
    nu[r] = 0.f;
    rscale[r] = 1.f;
  }
  // u_r[i] = h_r[i] + Σ_k c[r][k] θ_k[i] for the block's rows: each θ element loaded once for R rows
  auto steered = [&](int64_t i, float (&u)[R]) {
#pragma unroll
    for (int r = 0; r < R; ++r) u[r] = to_f(h[r][i]);
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      if (k < K) {
        const float t = to_f(th[int64_t(k) * D + i]);
#pragma unroll
        for (int r = 0; r < R; ++r) u[r] += c[r][k] * t;
      }
    }
  };
  if (a.norm_preserve) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int k = 0; k <= KMAX; ++k) acc[r][k] = 0.f;
    for (int64_t i = threadIdx.x; i < D; i += kRowsThreads) {
      float u[R];
      steered(i, u);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][KMAX] += u[r] * u[r];
    }
    block_reduce(acc, 0);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      nu[r] = sqrtf(red[r * (KMAX + 1) + KMAX]);
      rscale[r] = nu[r] > kNormEps ? nh[r] / nu[r] : 1.f;
    }
  }
  for (int64_t i = threadIdx.x; i < D; i += kRowsThreads) {
    float u[R];
    steered(i, u);
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < nrows) static_cast<T*>(a.out)[(row0 + r) * D + i] = from_f<T>(rscale[r] * u[r]);
  }
  if (threadIdx.x < nrows) {
    float* norms = static_cast<float*>(a.norms) + 2 * (row0 + threadIdx.x);
    for (int r = 0; r < R; ++r)
      if (r == int(threadIdx.x)) { norms[0] = nh[r]; norms[1] = nu[r]; }
  }
}

template <typename T, int R, int KMAX>
void launch_rows(const SteerArgs& a, cudaStream_t stream) {
  const unsigned blocks = unsigned((a.n + R - 1) / R);
  forward_rows_kernel<T, R, KMAX><<<blocks, kRowsThreads, 0, stream>>>(a);
}

// Picks the register-blocked kernel's (rows per block, attribute capacity) for K; false if K > 32.
template <typename T>
bool launch_forward_rows(const SteerArgs& a, cudaStream_t stream) {
  if (a.k <= 1) launch_rows<T, 8, 1>(a, stream);
  else if (a.k <= 2) launch_rows<T, 8, 2>(a, stream);
  else if (a.k <= 4) launch_rows<T, 8, 4>(a, stream);
  else if (a.k <= 8) launch_rows<T, 4, 8>(a, stream);
  else if (a.k <= 16) launch_rows<T, 4, 16>(a, stream);
  else if (a.k <= 32) launch_rows<T, 2, 32>(a, stream);
  else return false;
  return true;
}

}  // namespace

void gated_steer_forward_cuda(const SteerArgs& a, uintptr_t stream) {
  if (a.n == 0) return;
  const int threads = threads_for(a.d);
  const size_t smem = sizeof(float) * size_t((threads / 32) * (a.k + 1) + (a.k + 1) + a.k + 1);
  dispatch_dtype(a, "gated_steer_forward_cuda", [&](auto tag) {
    using T = decltype(tag);
    const auto st = reinterpret_cast<cudaStream_t>(stream);
    if (!launch_forward_rows<T>(a, st)) forward_kernel<T><<<dim3(unsigned(a.n)), threads, smem, st>>>(a);
  });
  check_launch("gated_steer_forward_cuda");
}

void gated_steer_backward_cuda(const SteerBackwardArgs& a, uintptr_t stream) {
  if (a.n == 0) return;
  const int threads = threads_for(a.d);
  const int64_t M = 2 * a.k + 1;
  const size_t smem = sizeof(float) * size_t((threads / 32) * M + M + 2 * a.k + 3);
  dispatch_dtype(a, "gated_steer_backward_cuda", [&](auto tag) {
    using T = decltype(tag);
    backward_kernel<T><<<dim3(unsigned(a.n)), threads, smem, reinterpret_cast<cudaStream_t>(stream)>>>(a);
  });
  check_launch("gated_steer_backward_cuda");
}

}  // namespace steerkit
