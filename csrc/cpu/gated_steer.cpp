// gated_steer on the CPU: one row per iteration, rows spread over OpenMP threads. Same math and
// same outputs as steerkit.reference.gated_steer_forward_rows / gated_steer_backward_rows.
#include "gated_steer.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "half.h"

namespace steerkit {
namespace {

constexpr double kNormEps = 1e-8;

template <typename T, typename A>
std::vector<A> to_acc(const T* src, int64_t n) {
  std::vector<A> dst(size_t(n > 0 ? n : 0));
  for (int64_t i = 0; i < n; ++i) dst[size_t(i)] = A(Conv<T>::load(src[i]));
  return dst;
}

// The simd reduction lets the compiler split the sum across vector lanes (strict FP order would
// forbid it without -ffast-math): 4-8x on the dot products that dominate at larger K.
template <typename A>
inline A dot(const A* a, const A* b, int64_t d) {
  A s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

template <typename T, typename A>
void forward_impl(const SteerArgs& a) {
  const T* h = static_cast<const T*>(a.h);
  T* out = static_cast<T*>(a.out);
  const A* b = static_cast<const A*>(a.gate_b);
  const A* s = static_cast<const A*>(a.strength);
  A* gates = static_cast<A*>(a.gates);
  A* norms = static_cast<A*>(a.norms);
  const int64_t N = a.n, D = a.d, K = a.k;
  // theta and gate_w are small and read by every row: convert them once.
  const std::vector<A> th = to_acc<T, A>(static_cast<const T*>(a.theta), K * D);
  const std::vector<A> w = a.gate_w ? to_acc<T, A>(static_cast<const T*>(a.gate_w), K * D) : std::vector<A>();

#pragma omp parallel
  {
    std::vector<A> u(static_cast<size_t>(D)), c(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* hn = h + n * a.h_row_stride;
      for (int64_t i = 0; i < D; ++i) u[size_t(i)] = A(Conv<T>::load(hn[i]));
      const A nh = std::sqrt(dot(u.data(), u.data(), D));
      for (int64_t k = 0; k < K; ++k) {
        A g = 1;
        if (a.gate_w) {
          A z = dot(u.data(), w.data() + k * D, D) + (b ? b[k] : A(0));
          g = A(1) / (A(1) + std::exp(-z));
        }
        gates[n * K + k] = g;
        c[size_t(k)] = s[n * a.strength_row_stride + k] * g;
      }
      for (int64_t k = 0; k < K; ++k) {
        const A ck = c[size_t(k)];
        const A* tk = th.data() + k * D;
        for (int64_t i = 0; i < D; ++i) u[size_t(i)] += ck * tk[i];
      }
      const A nu = std::sqrt(dot(u.data(), u.data(), D));
      const A r = (a.norm_preserve && nu > A(kNormEps)) ? nh / nu : A(1);
      T* on = out + n * D;
      for (int64_t i = 0; i < D; ++i) on[i] = Conv<T>::store(r * u[size_t(i)]);
      norms[2 * n] = nh;
      norms[2 * n + 1] = nu;
    }
  }
}

template <typename T, typename A>
void backward_impl(const SteerBackwardArgs& a) {
  const T* grad = static_cast<const T*>(a.grad);
  const T* h = static_cast<const T*>(a.h);
  const A* s = static_cast<const A*>(a.strength);
  const A* gates = static_cast<const A*>(a.gates);
  const A* norms = static_cast<const A*>(a.norms);
  const A* gram = static_cast<const A*>(a.gram);
  T* dh = static_cast<T*>(a.dh);
  A* dc = static_cast<A*>(a.dc);
  A* ra = static_cast<A*>(a.ra);
  const int64_t N = a.n, D = a.d, K = a.k;
  const std::vector<A> th = to_acc<T, A>(static_cast<const T*>(a.theta), K * D);
  const std::vector<A> w = a.gate_w ? to_acc<T, A>(static_cast<const T*>(a.gate_w), K * D) : std::vector<A>();

#pragma omp parallel
  {
    const size_t nd = static_cast<size_t>(D), nk = static_cast<size_t>(K);
    std::vector<A> hr(nd), gr(nd), acc(nd), c(nk), dz(nk);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* hn = h + n * a.h_row_stride;
      const T* gn = grad + n * a.grad_row_stride;
      for (int64_t i = 0; i < D; ++i) {
        hr[size_t(i)] = A(Conv<T>::load(hn[i]));
        gr[size_t(i)] = A(Conv<T>::load(gn[i]));
      }
      for (int64_t k = 0; k < K; ++k) c[size_t(k)] = s[n * a.strength_row_stride + k] * gates[n * K + k];
      A r = 1, al = 0, hcoef = 0;
      bool scaled = false;
      if (a.norm_preserve) {
        const A nh = norms[2 * n], nu = norms[2 * n + 1];
        scaled = nu > A(kNormEps);
        if (scaled) {
          A g_u = dot(gr.data(), hr.data(), D);
          for (int64_t k = 0; k < K; ++k) g_u += c[size_t(k)] * dot(gr.data(), th.data() + k * D, D);
          r = nh / nu;
          al = g_u / (nu * nu);
          hcoef = nh > 0 ? g_u / (nu * nh) : A(0);
        }
      }
      for (int64_t k = 0; k < K; ++k) {
        const A* tk = th.data() + k * D;
        A d = dot(gr.data(), tk, D);
        if (scaled) {
          A u_theta = dot(hr.data(), tk, D);
          for (int64_t j = 0; j < K; ++j) u_theta += c[size_t(j)] * gram[j * K + k];
          d = r * (d - al * u_theta);
        }
        dc[n * K + k] = d;
        const A g = gates[n * K + k];
        dz[size_t(k)] = a.gate_w ? d * s[n * a.strength_row_stride + k] * g * (A(1) - g) : A(0);
      }
      // dh = r (grad - al u) + hcoef h + Σ dz_k w_k, with u = h + Σ c_k theta_k
      for (int64_t i = 0; i < D; ++i) acc[size_t(i)] = r * gr[size_t(i)] + (hcoef - r * al) * hr[size_t(i)];
      if (scaled) {
        for (int64_t k = 0; k < K; ++k) {
          const A f = -r * al * c[size_t(k)];
          const A* tk = th.data() + k * D;
          for (int64_t i = 0; i < D; ++i) acc[size_t(i)] += f * tk[i];
        }
      }
      if (a.gate_w) {
        for (int64_t k = 0; k < K; ++k) {
          const A f = dz[size_t(k)];
          const A* wk = w.data() + k * D;
          for (int64_t i = 0; i < D; ++i) acc[size_t(i)] += f * wk[i];
        }
      }
      T* dhn = dh + n * D;
      for (int64_t i = 0; i < D; ++i) dhn[i] = Conv<T>::store(acc[size_t(i)]);
      ra[2 * n] = r;
      ra[2 * n + 1] = al;
    }
  }
}

}  // namespace

void gated_steer_forward_cpu(const SteerArgs& a) {
  switch (a.dtype) {
    case DType::kFloat32: forward_impl<float, float>(a); break;
    case DType::kFloat16: forward_impl<half_t, float>(a); break;
    case DType::kBFloat16: forward_impl<bf16_t, float>(a); break;
    case DType::kFloat64: forward_impl<double, double>(a); break;
    default: throw std::invalid_argument("gated_steer (cpu): unsupported dtype code");
  }
}

void gated_steer_backward_cpu(const SteerBackwardArgs& a) {
  switch (a.dtype) {
    case DType::kFloat32: backward_impl<float, float>(a); break;
    case DType::kFloat16: backward_impl<half_t, float>(a); break;
    case DType::kBFloat16: backward_impl<bf16_t, float>(a); break;
    case DType::kFloat64: backward_impl<double, double>(a); break;
    default: throw std::invalid_argument("gated_steer (cpu): unsupported dtype code");
  }
}

}  // namespace steerkit
