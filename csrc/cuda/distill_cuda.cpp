// CUDA implementation of pylaundering::fused_distill: the same argument checks and outputs as
// the CPU op (csrc/distill_op.cpp), then the kernel in distill_kernel.cu on the current stream.
// Built only when torch has CUDA (CMakeLists.txt globs csrc/cuda/*.cpp then); it is the one
// place that needs c10/cuda headers, which a CPU-only torch wheel cannot compile.
#include "cuda/distill_cuda.h"
#include "cuda/dtype_code.h"
#include "distill_op.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

namespace pylaundering {
namespace {

// Labels must be ignore_index or in [0, V). The check runs on the device (a few elementwise ops
// and one reduction) with one sync to read the flag; only when a label is bad are the labels
// copied to the host, so the error names the first bad label and row exactly as the CPU op's
// does. While the stream is capturing a CUDA graph no sync is allowed, so the check is skipped;
// the kernel never reads out of bounds and gives such a row a NaN loss instead.
void check_labels_cuda(const at::Tensor& labels, const DistillParams& p) {
  if (p.rows == 0) return;
  if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None) return;
  const at::Tensor bad = labels.ne(p.ignore_index).logical_and(labels.lt(0).logical_or(labels.ge(p.cols)));
  if (!bad.any().item<bool>()) return;
  const at::Tensor host = labels.cpu();
  check_labels_host(host.const_data_ptr<int64_t>(), p);
  TORCH_CHECK_VALUE(false, "fused_distill: a label is out of range [0, ", p.cols, ")");  // not reached
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> fused_distill_cuda(const at::Tensor& student,
                                                      const std::optional<at::Tensor>& teacher,
                                                      const std::optional<at::Tensor>& labels, int64_t kind,
                                                      double alpha, double temperature, double beta,
                                                      int64_t ignore_index, bool compute_grad, double grad_scale) {
  DistillParams p = make_distill_params(student, teacher, labels, kind, alpha, temperature, beta, ignore_index,
                                        compute_grad, grad_scale);
  TORCH_CHECK_VALUE(student.is_cuda(), "fused_distill: the CUDA kernel got student logits on ", student.device());
  const c10::cuda::CUDAGuard guard(student.device());
  if (p.has_labels) check_labels_cuda(*labels, p);
  auto [loss, grad] = allocate_distill_outputs(student, p);
  if (p.rows == 0) return {loss, grad};

  const void* t = p.kind != kNoDistill ? teacher->const_data_ptr() : nullptr;
  const int64_t* y = p.has_labels ? labels->const_data_ptr<int64_t>() : nullptr;
  void* g = p.write_grad ? grad.mutable_data_ptr() : nullptr;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  C10_CUDA_CHECK(cuda::launch_fused_distill(p, student.const_data_ptr(), t, y, loss.mutable_data_ptr(), g,
                                            cuda::dtype_code(student.scalar_type(), "fused_distill"), stream));
  return {loss, grad};
}

}  // namespace pylaundering

TORCH_LIBRARY_IMPL(pylaundering, CUDA, m) { m.impl("fused_distill", &pylaundering::fused_distill_cuda); }
