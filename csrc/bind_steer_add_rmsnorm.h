// The pybind11 signature of steer_add_rmsnorm: addresses as integers, shapes, strides, a dtype code
// and a stream handle, like bind_gated_steer.h.
#pragma once
#include <pybind11/pybind11.h>

#include "gated_steer.h"

namespace steerkit {

template <typename Fn>
void def_steer_add_rmsnorm(pybind11::module_& m, Fn fn) {
  namespace py = pybind11;
  auto ptr = [](uintptr_t p) { return reinterpret_cast<void*>(p); };
  m.def(
      "steer_add_rmsnorm",
      [=](uintptr_t branch, int64_t branch_row_stride, uintptr_t residual, int64_t residual_row_stride,
          uintptr_t new_residual, uintptr_t normed, uintptr_t theta, uintptr_t gate_w, uintptr_t gate_b,
          uintptr_t strength, int64_t strength_row_stride, uintptr_t norm_weight, float eps,
          float weight_offset, bool cast_before_weight, int64_t n, int64_t d, int64_t k, int dtype,
          bool norm_preserve, uintptr_t stream) {
        SteerNormArgs a{ptr(branch), branch_row_stride, ptr(residual), residual_row_stride,
                        ptr(new_residual), ptr(normed), ptr(theta), ptr(gate_w), ptr(gate_b),
                        ptr(strength), strength_row_stride, ptr(norm_weight), eps, weight_offset,
                        cast_before_weight, n, d, k, static_cast<DType>(dtype), norm_preserve};
        py::gil_scoped_release release;
        fn(a, stream);
      },
      py::arg("branch"), py::arg("branch_row_stride"), py::arg("residual"), py::arg("residual_row_stride"),
      py::arg("new_residual"), py::arg("normed"), py::arg("theta"), py::arg("gate_w"), py::arg("gate_b"),
      py::arg("strength"), py::arg("strength_row_stride"), py::arg("norm_weight"), py::arg("eps"),
      py::arg("weight_offset"), py::arg("cast_before_weight"), py::arg("n"), py::arg("d"), py::arg("k"),
      py::arg("dtype"), py::arg("norm_preserve"), py::arg("stream"));
}

}  // namespace steerkit
