// CUDA implementation of pylaundering::fused_sparse_distill: the same argument checks and outputs
// as the CPU op (csrc/sparse_op.cpp), then the kernel in sparse_kernel.cu on the current stream.
// Built only when torch has CUDA (CMakeLists.txt globs csrc/cuda/*.cpp then), like distill_cuda.cpp.
#include "cuda/dtype_code.h"
#include "cuda/sparse_cuda.h"
#include "sparse_op.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace pylaundering {
namespace {

// The kernel flagged an index out of [0, V), an index repeated within its row, or a label out of
// range. Only then are indices and labels copied to the host, so the error names the first bad
// entry and its row, in the CPU op's order and words (ranges, labels, then repeats).
void raise_bad_inputs(const at::Tensor& indices, const std::optional<at::Tensor>& labels,
                      const SparseDistillParams& p) {
  const at::Tensor idx = indices.cpu();
  const int64_t* I = idx.const_data_ptr<int64_t>();
  check_sparse_indices_host(I, p);
  if (p.has_labels) {
    const at::Tensor y = labels->cpu();
    check_sparse_labels_host(y.const_data_ptr<int64_t>(), p);
  }
  std::vector<int64_t> row(static_cast<size_t>(p.k));
  for (int64_t r = 0; r < p.rows; ++r) {
    std::copy(I + r * p.k, I + (r + 1) * p.k, row.begin());
    std::sort(row.begin(), row.end());
    const auto rep = std::adjacent_find(row.begin(), row.end());
    TORCH_CHECK_VALUE(rep == row.end(), "fused_sparse_distill: index ", *rep, " repeats in row ", r,
                      "; each kept entry must be a distinct class");
  }
  TORCH_CHECK_VALUE(false, "fused_sparse_distill: an index is out of range [0, ", p.cols,
                    ") or repeats within its row, or a label is out of range");  // not reached
}

}  // namespace

// Indices (range, no repeat within a row) and labels are checked on the device by the kernel
// itself, which raises a flag and gives a bad row NaN instead of reading out of bounds; one sync
// reads the flag after the launch. While the stream captures a CUDA graph no sync is allowed: no
// flag is read and bad rows just come out NaN.
std::tuple<at::Tensor, at::Tensor> fused_sparse_distill_cuda(
    const at::Tensor& student, const at::Tensor& values, const at::Tensor& indices,
    const std::optional<at::Tensor>& log_normalizer, const std::optional<at::Tensor>& labels, int64_t kind,
    double alpha, double temperature, double beta, int64_t ignore_index, bool compute_grad, double grad_scale) {
  const SparseDistillParams p = make_sparse_params(student, values, indices, log_normalizer, labels, kind, alpha,
                                                   temperature, beta, ignore_index, compute_grad, grad_scale);
  // The CUDA kernel writes the plain gradient (the Python front folds a scale on the CPU only).
  TORCH_CHECK_VALUE(grad_scale == 1.0, "fused_sparse_distill: grad_scale other than 1 is CPU-only, got ", grad_scale);
  TORCH_CHECK_VALUE(student.is_cuda(), "fused_sparse_distill: the CUDA kernel got student logits on ",
                    student.device());
  const c10::cuda::CUDAGuard guard(student.device());
  auto [loss, grad] = allocate_sparse_outputs(student, p);
  if (p.rows == 0) return {loss, grad};

  const bool capturing = c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None;
  const at::Tensor flag = capturing ? at::Tensor() : at::zeros({1}, student.options().dtype(at::kInt));
  int64_t scratch_words = 0;
  C10_CUDA_CHECK(cuda::sparse_distill_scratch_words(p, &scratch_words));
  // only for V beyond shared memory; the caching allocator keeps it alive for the stream's work
  const at::Tensor scratch =
      scratch_words > 0 ? at::empty({scratch_words}, student.options().dtype(at::kInt)) : at::Tensor();

  const void* ln = p.has_lognorm ? log_normalizer->const_data_ptr() : nullptr;
  const int64_t* y = p.has_labels ? labels->const_data_ptr<int64_t>() : nullptr;
  void* g = p.write_grad ? grad.mutable_data_ptr() : nullptr;
  auto* scratch_ptr = scratch.defined() ? reinterpret_cast<uint32_t*>(scratch.mutable_data_ptr<int32_t>()) : nullptr;
  int32_t* flag_ptr = flag.defined() ? flag.mutable_data_ptr<int32_t>() : nullptr;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const int dtype = cuda::dtype_code(student.scalar_type(), "fused_sparse_distill");
  C10_CUDA_CHECK(cuda::launch_fused_sparse_distill(p, student.const_data_ptr(), values.const_data_ptr(),
                                                   indices.const_data_ptr<int64_t>(), ln, y, loss.mutable_data_ptr(), g,
                                                   scratch_ptr, scratch_words, flag_ptr, dtype, stream));
  if (flag.defined() && flag.item<int32_t>() != 0) raise_bad_inputs(indices, labels, p);
  return {loss, grad};
}

}  // namespace pylaundering

TORCH_LIBRARY_IMPL(pylaundering, CUDA, m) { m.impl("fused_sparse_distill", &pylaundering::fused_sparse_distill_cuda); }
