#include "sparse_op.h"

#include "distill_op.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace pylaundering {

namespace {
bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf;
}

void check_on(const char* name, const at::Tensor& x, const at::Tensor& student) {
  TORCH_CHECK_VALUE(x.device() == student.device(), "fused_sparse_distill: ", name, " is on ", x.device(),
                    " but student is on ", student.device());
  TORCH_CHECK_VALUE(x.is_contiguous(), "fused_sparse_distill: ", name, " must be contiguous");
}
}  // namespace

SparseDistillParams make_sparse_params(const at::Tensor& student, const at::Tensor& values, const at::Tensor& indices,
                                       const std::optional<at::Tensor>& log_normalizer,
                                       const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                       double temperature, double beta, int64_t ignore_index, bool compute_grad,
                                       double grad_scale) {
  TORCH_CHECK_VALUE(student.dim() == 2, "fused_sparse_distill: student logits must be 2-D [rows, V], got shape ",
                    student.sizes());
  TORCH_CHECK_TYPE(is_float_type(student.scalar_type()),
                   "fused_sparse_distill: student logits must be float32, float64, bfloat16 or float16, got ",
                   student.scalar_type());
  TORCH_CHECK_VALUE(student.is_contiguous(), "fused_sparse_distill: student logits must be contiguous");
  TORCH_CHECK_VALUE(kind > kNoDistill && kind < kNumKinds, "fused_sparse_distill: unknown kind ", kind,
                    " (1 = kl, 2 = reverse kl, 3 = jsd, 4 = mse, 5 = tvd, 6 = skew kl, 7 = skew reverse kl)");
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0,
                    "fused_sparse_distill: temperature must be > 0, got ", temperature);
  TORCH_CHECK_VALUE(alpha >= 0 && alpha <= 1, "fused_sparse_distill: alpha must lie in [0, 1], got ", alpha);
  TORCH_CHECK_VALUE(kind != kJSD || (beta > 0 && beta < 1), "fused_sparse_distill: jsd beta must lie in (0, 1), got ",
                    beta);
  TORCH_CHECK_VALUE(!is_skew_kind(kind) || (beta >= 0 && beta < 1),
                    "fused_sparse_distill: the skew beta must lie in [0, 1), got ", beta);
  SparseDistillParams p;
  p.rows = student.size(0);
  p.cols = student.size(1);
  p.kind = kind;
  p.alpha = alpha;
  p.temperature = temperature;
  p.beta = beta;
  p.ignore_index = ignore_index;
  p.write_grad = compute_grad;
  TORCH_CHECK_VALUE(std::isfinite(grad_scale), "fused_sparse_distill: grad_scale must be finite, got ", grad_scale);
  p.grad_scale = grad_scale;
  TORCH_CHECK_VALUE(values.dim() == 2 && values.size(0) == p.rows, "fused_sparse_distill: teacher values ",
                    values.sizes(), " must be [rows, k] with rows = ", p.rows);
  p.k = values.size(1);
  TORCH_CHECK_VALUE(p.k >= 1 && p.k <= p.cols, "fused_sparse_distill: k = ", p.k,
                    " kept entries per row must lie in [1, V] = [1, ", p.cols, "]");
  TORCH_CHECK_TYPE(values.scalar_type() == student.scalar_type(), "fused_sparse_distill: teacher values dtype ",
                   values.scalar_type(), " does not match student dtype ", student.scalar_type());
  check_on("teacher values", values, student);
  TORCH_CHECK_TYPE(indices.scalar_type() == at::kLong, "fused_sparse_distill: indices must be int64, got ",
                   indices.scalar_type());
  TORCH_CHECK_VALUE(indices.sizes() == values.sizes(), "fused_sparse_distill: indices ", indices.sizes(),
                    " must match values ", values.sizes());
  check_on("indices", indices, student);
  p.has_lognorm = log_normalizer.has_value() && log_normalizer->defined();
  if (p.has_lognorm) {
    const at::Tensor& z = *log_normalizer;
    const auto want = student.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK_TYPE(z.scalar_type() == want, "fused_sparse_distill: log_normalizer must be ", want, ", got ",
                     z.scalar_type());
    TORCH_CHECK_VALUE(z.dim() == 1 && z.size(0) == p.rows, "fused_sparse_distill: log_normalizer ", z.sizes(),
                      " must be [rows] = [", p.rows, "]");
    check_on("log_normalizer", z, student);
  }
  p.has_labels = labels.has_value() && labels->defined();
  if (p.has_labels) {
    const at::Tensor& y = *labels;
    TORCH_CHECK_TYPE(y.scalar_type() == at::kLong, "fused_sparse_distill: labels must be int64, got ", y.scalar_type());
    TORCH_CHECK_VALUE(y.dim() == 1 && y.size(0) == p.rows, "fused_sparse_distill: labels shape ", y.sizes(),
                      " does not match ", p.rows, " rows");
    check_on("labels", y, student);
  }
  TORCH_CHECK_VALUE(p.has_labels || p.alpha == 1.0,
                    "fused_sparse_distill: alpha < 1 mixes in cross-entropy, which needs labels");
  return p;
}

std::tuple<at::Tensor, at::Tensor> allocate_sparse_outputs(const at::Tensor& student, const SparseDistillParams& p) {
  return allocate_row_outputs(student, p.rows, p.cols, p.write_grad);
}

void check_sparse_indices_host(const int64_t* indices, const SparseDistillParams& p) {
  for (int64_t i = 0; i < p.rows * p.k; ++i) {
    const int64_t j = indices[i];
    TORCH_CHECK_VALUE(j >= 0 && j < p.cols, "fused_sparse_distill: index ", j, " at row ", i / p.k,
                      " is out of range [0, ", p.cols, ")");
  }
}

void check_sparse_labels_host(const int64_t* labels, const SparseDistillParams& p) {
  if (p.has_labels) check_labels_in_range("fused_sparse_distill", labels, p.rows, p.cols, p.ignore_index);
}

}  // namespace pylaundering
