// The pybind11 signature of gated_steer, shared by the CPU and CUDA modules so both take exactly
// the same arguments: addresses as integers, shapes, strides, a dtype code and a stream handle
// (ignored on the CPU).
#pragma once
#include <pybind11/pybind11.h>

#include "gated_steer.h"

namespace steerkit {

template <typename Fwd, typename Bwd>
void def_gated_steer(pybind11::module_& m, Fwd fwd, Bwd bwd) {
  namespace py = pybind11;
  auto ptr = [](uintptr_t p) { return reinterpret_cast<void*>(p); };
  m.def(
      "gated_steer_forward",
      [=](uintptr_t h, int64_t h_row_stride, uintptr_t out, uintptr_t theta, uintptr_t gate_w,
          uintptr_t gate_b, uintptr_t strength, int64_t strength_row_stride, uintptr_t gates,
          uintptr_t norms, int64_t n, int64_t d, int64_t k, int dtype, bool norm_preserve,
          uintptr_t stream) {
        SteerArgs a{ptr(h), h_row_stride, ptr(out), ptr(theta), ptr(gate_w), ptr(gate_b),
                    ptr(strength), strength_row_stride, ptr(gates), ptr(norms), n, d, k,
                    static_cast<DType>(dtype), norm_preserve};
        py::gil_scoped_release release;
        fwd(a, stream);
      },
      py::arg("h"), py::arg("h_row_stride"), py::arg("out"), py::arg("theta"), py::arg("gate_w"),
      py::arg("gate_b"), py::arg("strength"), py::arg("strength_row_stride"), py::arg("gates"),
      py::arg("norms"), py::arg("n"), py::arg("d"), py::arg("k"), py::arg("dtype"),
      py::arg("norm_preserve"), py::arg("stream"));
  m.def(
      "gated_steer_backward",
      [=](uintptr_t grad, int64_t grad_row_stride, uintptr_t h, int64_t h_row_stride,
          uintptr_t theta, uintptr_t gate_w, uintptr_t strength, int64_t strength_row_stride,
          uintptr_t gates, uintptr_t norms, uintptr_t gram, uintptr_t dh, uintptr_t dc,
          uintptr_t ra, int64_t n, int64_t d, int64_t k, int dtype, bool norm_preserve,
          uintptr_t stream) {
        SteerBackwardArgs a{ptr(grad), grad_row_stride, ptr(h), h_row_stride, ptr(theta),
                            ptr(gate_w), ptr(strength), strength_row_stride, ptr(gates),
                            ptr(norms), ptr(gram), ptr(dh), ptr(dc), ptr(ra), n, d, k,
                            static_cast<DType>(dtype), norm_preserve};
        py::gil_scoped_release release;
        bwd(a, stream);
      },
      py::arg("grad"), py::arg("grad_row_stride"), py::arg("h"), py::arg("h_row_stride"),
      py::arg("theta"), py::arg("gate_w"), py::arg("strength"), py::arg("strength_row_stride"),
      py::arg("gates"), py::arg("norms"), py::arg("gram"), py::arg("dh"), py::arg("dc"),
      py::arg("ra"), py::arg("n"), py::arg("d"), py::arg("k"), py::arg("dtype"),
      py::arg("norm_preserve"), py::arg("stream"));
}

}  // namespace steerkit
