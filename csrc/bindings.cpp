// The extension module: torch op schemas and CPU implementation (TORCH_LIBRARY), plus a few
// non-tensor helpers for Python (pybind11). Tensors never cross pybind11: they go through the
// dispatcher, so autograd, torch.compile and device dispatch all see one op.
#include <pybind11/pybind11.h>
#include <torch/library.h>

#include "cpu/grad_buffer.h"
#ifdef PYLAUNDERING_WITH_CUDA
#include "cuda/row_cluster.h"
#endif
#include "distill_op.h"
#include "sparse_op.h"

#ifndef PYLAUNDERING_VERSION
#define PYLAUNDERING_VERSION "unknown"
#endif

TORCH_LIBRARY(pylaundering, m) {
  m.def(
      "fused_distill(Tensor student, Tensor? teacher, Tensor? labels, int kind, float alpha, float temperature, "
      "float beta, int ignore_index, bool compute_grad, float grad_scale=1.0) -> (Tensor, Tensor)");
  m.def(
      "fused_sparse_distill(Tensor student, Tensor values, Tensor indices, Tensor? log_normalizer, Tensor? labels, "
      "int kind, float alpha, float temperature, float beta, int ignore_index, bool compute_grad, "
      "float grad_scale=1.0) -> (Tensor, Tensor)");
  // The gradient written into grad_out, which may be the student tensor itself (no autograd: for callers
  // that own the logits and need only the gradient, as the fused-linear op's chunks). CPU only.
  m.def(
      "fused_distill_out(Tensor student, Tensor? teacher, Tensor? labels, int kind, float alpha, float temperature, "
      "float beta, int ignore_index, Tensor(a!) grad_out, float grad_scale=1.0) -> Tensor");
  m.def(
      "fused_sparse_distill_out(Tensor student, Tensor values, Tensor indices, Tensor? log_normalizer, "
      "Tensor? labels, int kind, float alpha, float temperature, float beta, int ignore_index, Tensor(a!) grad_out, "
      "float grad_scale=1.0) -> Tensor");
}

TORCH_LIBRARY_IMPL(pylaundering, CPU, m) {
  m.impl("fused_distill", &pylaundering::fused_distill_cpu);
  m.impl("fused_sparse_distill", &pylaundering::fused_sparse_distill_cpu);
  m.impl("fused_distill_out", &pylaundering::fused_distill_out_cpu);
  m.impl("fused_sparse_distill_out", &pylaundering::fused_sparse_distill_out_cpu);
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "pylaundering compiled kernels (ops are registered under torch.ops.pylaundering)";
  m.def("cpu_kernel_variant", &pylaundering::cpu_kernel_variant,
        "Vector width of the CPU kernel chosen for this machine (AVX512, AVX2 or DEFAULT).");
  m.def("empty_cache", &pylaundering::release_cached_gradient,
        "Unmaps the CPU ops' idle cached gradient buffer; returns the bytes released.");
  m.def("cached_bytes", &pylaundering::cached_gradient_bytes,
        "Bytes held by the CPU ops' idle cached gradient buffer.");
  m.def(
      "kind_codes",
      []() {
        pybind11::dict codes;
        for (int64_t k = 0; k < pylaundering::kNumKinds; ++k) codes[pybind11::str(pylaundering::kKindNames[k])] = k;
        return codes;
      },
      "The kernels' loss kinds: name -> DistillKind code (no_distill: cross-entropy alone).");
  m.def("built_with_cuda", []() {
#ifdef PYLAUNDERING_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
#ifdef PYLAUNDERING_WITH_CUDA
  // dtype_code: 0 float32, 1 float64, 2 bfloat16, 3 float16 (cuda::DistillDtype).
  m.def(
      "cuda_row_cluster_plan",
      [](int64_t kind, int64_t rows, int64_t cols, int dtype_code, bool aligned) {
        const auto plan = pylaundering::cuda::row_cluster_plan(kind, rows, cols, dtype_code, aligned);
        return pybind11::make_tuple(plan.cluster, plan.rows_in_flight);
      },
      "(blocks per row, rows in flight) of the CUDA kernel's row-cluster mode on the current device; "
      "(0, 0) when the default kernel runs.");
#endif
  m.attr("__version__") = PYLAUNDERING_VERSION;
}
