// Device-independent half of the fused distillation op: argument checks and parameters.
// Every backend (CPU here, CUDA in csrc/cuda) calls these, so a user calling
// torch.ops.pylaundering.fused_distill directly gets the same clear errors as the Python API.
#pragma once
#include "kernels/distill_params.h"

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace pylaundering {

// Validates shapes, dtypes, devices and scalar arguments; returns the kernel parameters.
// Label range is checked by each backend (it needs the data).
DistillParams make_distill_params(const at::Tensor& student, const std::optional<at::Tensor>& teacher,
                                  const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                  double temperature, double beta, int64_t ignore_index, bool compute_grad,
                                  double grad_scale = 1.0);

// Outputs: per-row loss (fp32, fp64 for fp64 inputs) and the gradient (input dtype) or an
// empty tensor when no gradient is wanted.
std::tuple<at::Tensor, at::Tensor> allocate_distill_outputs(const at::Tensor& student, const DistillParams& p);

// Scalar label check for labels resident in host memory.
void check_labels_host(const int64_t* labels, const DistillParams& p);

// Shared by every row-fused op (dense, sparse): per-row loss (fp32, fp64 for fp64 inputs) and the
// [rows, cols] gradient in the input dtype, or an empty tensor; and the host label check, whose
// error names the op, the label and its row.
std::tuple<at::Tensor, at::Tensor> allocate_row_outputs(const at::Tensor& student, int64_t rows, int64_t cols,
                                                        bool write_grad);
void check_labels_in_range(const char* op, const int64_t* labels, int64_t rows, int64_t cols, int64_t ignore_index);

std::tuple<at::Tensor, at::Tensor> fused_distill_cpu(const at::Tensor& student,
                                                     const std::optional<at::Tensor>& teacher,
                                                     const std::optional<at::Tensor>& labels, int64_t kind,
                                                     double alpha, double temperature, double beta,
                                                     int64_t ignore_index, bool compute_grad, double grad_scale);

// The same, with the gradient written into grad_out (which may be the student tensor itself: the
// kernel reads each student element before writing the gradient's element at that index).
at::Tensor fused_distill_out_cpu(const at::Tensor& student, const std::optional<at::Tensor>& teacher,
                                 const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                 double temperature, double beta, int64_t ignore_index, at::Tensor& grad_out,
                                 double grad_scale);

// Which CPU kernel variant runs here ("AVX512", "AVX2" or "DEFAULT").
const char* cpu_kernel_variant();

}  // namespace pylaundering
