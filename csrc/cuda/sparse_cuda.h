// Raw-pointer entry points of the CUDA fused sparse-teacher distillation kernel
// (csrc/cuda/sparse_kernel.cu; semantics and gradient formulas: csrc/kernels/sparse_params.h).
//
// As for the dense op (distill_cuda.h), the .cu file sees only CUDA headers and this one; the
// device guard, the current stream, tensors and error messages live in sparse_cuda.cpp.
#pragma once
#include "cuda/distill_cuda.h"  // DistillDtype codes (kDtypeFloat, ...), shared with the dense op
#include "kernels/sparse_params.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pylaundering::cuda {

// Each row keeps a bitmap of its kept indices (V bits) while it is processed. It lives in shared
// memory up to the device's opt-in limit per block (V up to about 1.8M on H100, 1.3M on A100);
// beyond that, in a global scratch buffer of uint32 words that the caller allocates.
// Sets *words to the size of that buffer for p on the current device, 0 when none is needed.
cudaError_t sparse_distill_scratch_words(const SparseDistillParams& p, int64_t* words);

// Launches the kernel for p.rows rows on `stream` and returns cudaGetLastError() (launch errors
// only; the kernel runs asynchronously). All pointers are device pointers on the current device.
//   student:        [rows, cols], contiguous, dtype per dtype_code.
//   values:         [rows, k] teacher values, same dtype.
//   indices:        [rows, k] int64. Not checked by the caller: an index out of [0, cols) or repeated
//                   within its row, and a label out of range, raise *bad_input (set to 1, never
//                   cleared) and give that row a NaN loss and gradient instead of a wrong read.
//   log_normalizer: [rows] float (double for kDtypeDouble); only read when p.has_lognorm.
//   labels:         [rows] int64; only read when p.has_labels.
//   loss:           [rows] float (double for kDtypeDouble).
//   grad:           [rows, cols] in the input dtype; only written (and may be null) when p.write_grad.
//                   May be the student itself (the gradient written in place of the logits).
//   scratch:        sparse_distill_scratch_words(p) uint32 words (contents ignored), or null when 0.
//   bad_input:      a zeroed int32, or null (no report: while a CUDA graph is being captured).
cudaError_t launch_fused_sparse_distill(const SparseDistillParams& p, const void* student, const void* values,
                                        const int64_t* indices, const void* log_normalizer, const int64_t* labels,
                                        void* loss, void* grad, uint32_t* scratch, int64_t scratch_words,
                                        int32_t* bad_input, int dtype_code, cudaStream_t stream);

}  // namespace pylaundering::cuda
