#include "../bind_gated_steer.h"

#ifdef _OPENMP
#include <omp.h>
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "steerkit CPU kernels (C++, OpenMP)";
  steerkit::def_gated_steer(
      m, [](const steerkit::SteerArgs& a, uintptr_t) { steerkit::gated_steer_forward_cpu(a); },
      [](const steerkit::SteerBackwardArgs& a, uintptr_t) { steerkit::gated_steer_backward_cpu(a); });
#ifdef _OPENMP
  m.attr("openmp") = true;
  m.def("max_threads", []() { return omp_get_max_threads(); });
#else
  m.attr("openmp") = false;
  m.def("max_threads", []() { return 1; });
#endif
}
