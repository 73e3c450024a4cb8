#include <cuda_runtime_api.h>

#include "../bind_gated_steer.h"
#include "../bind_steer_add_rmsnorm.h"

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "steerkit CUDA kernels";
  steerkit::def_gated_steer(m, steerkit::gated_steer_forward_cuda, steerkit::gated_steer_backward_cuda);
  steerkit::def_steer_add_rmsnorm(m, steerkit::steer_add_rmsnorm_cuda);
  m.def("runtime_version", []() {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    return v;
  });
#ifdef STEERKIT_CUDA_ARCHS
  m.attr("archs") = STEERKIT_CUDA_ARCHS;
#endif
}
