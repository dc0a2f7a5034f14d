// Row-cluster mode of the CUDA distillation kernel (csrc/cuda/distill_kernel.cu): plain C++, no
// CUDA headers, so bindings.cpp can report the plan to Python (tests, `launder bench`).
#pragma once
#include <cstdint>

namespace pylaundering::cuda {

// cluster: blocks per row (0: the default block/warp kernel runs); rows_in_flight: clusters
// launched, each walking rows grid-stride.
struct RowClusterPlan {
  int cluster = 0;
  int64_t rows_in_flight = 0;
};

// The plan a launch on the current device would use now (it reads PYLAUNDERING_CUDA_ROW_CLUSTER
// and PYLAUNDERING_CUDA_CLUSTER_ROWS). dtype_code is a DistillDtype; aligned: student, teacher
// and grad rows share their 16-byte alignment (fresh tensors do).
RowClusterPlan row_cluster_plan(int64_t kind, int64_t rows, int64_t cols, int dtype_code, bool aligned);

}  // namespace pylaundering::cuda
