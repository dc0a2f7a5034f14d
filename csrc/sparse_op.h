// Device-independent half of the fused sparse-teacher op (torch.ops.pylaundering.fused_sparse_distill):
// argument checks and outputs, shared by the CPU and CUDA backends like distill_op.h.
#pragma once
#include "kernels/sparse_params.h"

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace pylaundering {

// Validates shapes, dtypes, devices and scalars. Index ranges, duplicates and labels need the data
// and are checked by each backend.
SparseDistillParams make_sparse_params(const at::Tensor& student, const at::Tensor& values, const at::Tensor& indices,
                                       const std::optional<at::Tensor>& log_normalizer,
                                       const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                       double temperature, double beta, int64_t ignore_index, bool compute_grad,
                                       double grad_scale = 1.0);

// Per-row loss (fp32, fp64 for fp64 inputs) and the [rows, V] gradient or an empty tensor.
std::tuple<at::Tensor, at::Tensor> allocate_sparse_outputs(const at::Tensor& student, const SparseDistillParams& p);

// Host-side checks: every index in [0, V) and labels in range (indices / labels in host memory).
void check_sparse_indices_host(const int64_t* indices, const SparseDistillParams& p);
void check_sparse_labels_host(const int64_t* labels, const SparseDistillParams& p);

std::tuple<at::Tensor, at::Tensor> fused_sparse_distill_cpu(const at::Tensor& student, const at::Tensor& values,
                                                            const at::Tensor& indices,
                                                            const std::optional<at::Tensor>& log_normalizer,
                                                            const std::optional<at::Tensor>& labels, int64_t kind,
                                                            double alpha, double temperature, double beta,
                                                            int64_t ignore_index, bool compute_grad, double grad_scale);

// The same, with the gradient written into grad_out (which may be the student tensor itself).
at::Tensor fused_sparse_distill_out_cpu(const at::Tensor& student, const at::Tensor& values, const at::Tensor& indices,
                                        const std::optional<at::Tensor>& log_normalizer,
                                        const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                        double temperature, double beta, int64_t ignore_index, at::Tensor& grad_out,
                                        double grad_scale);

}  // namespace pylaundering
