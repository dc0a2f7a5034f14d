// Raw-pointer entry point of the CUDA fused distillation kernel (csrc/cuda/distill_kernel.cu).
//
// The .cu file sees only CUDA headers and this one: the device guard, the current stream and
// tensor handling live in distill_cuda.cpp, which is built only when torch has CUDA (the CPU
// torch wheel cannot compile ATen/cuda or c10/cuda headers, but nvcc can still check the .cu).
#pragma once
#include "cuda/row_cluster.h"
#include "kernels/distill_params.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pylaundering::cuda {

// Element type of student, teacher and grad. loss is float for all but kDtypeDouble (double),
// as allocate_distill_outputs makes it.
enum DistillDtype : int {
  kDtypeFloat = 0,
  kDtypeDouble = 1,
  kDtypeBFloat16 = 2,
  kDtypeHalf = 3,
};

// Launches the kernel for p.rows rows of p.cols logits on `stream` and returns
// cudaGetLastError() (launch errors only; the kernel runs asynchronously).
//   student: [rows, cols], contiguous.
//   teacher: [rows, cols], contiguous; ignored (may be null) when p.kind == kNoDistill.
//   labels:  [rows] int64, only read when p.has_labels; must already be range-checked
//            (label == p.ignore_index or 0 <= label < cols).
//   loss:    [rows] float (double for kDtypeDouble).
//   grad:    [rows, cols] in the input dtype; only written (and may be null) when p.write_grad.
// All pointers are device pointers on the current device.
cudaError_t launch_fused_distill(const DistillParams& p, const void* student, const void* teacher,
                                 const int64_t* labels, void* loss, void* grad, int dtype_code, cudaStream_t stream);

}  // namespace pylaundering::cuda
