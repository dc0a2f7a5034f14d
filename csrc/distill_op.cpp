#include "distill_op.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace pylaundering {

namespace {
bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf;
}
}  // namespace

DistillParams make_distill_params(const at::Tensor& student, const std::optional<at::Tensor>& teacher,
                                  const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                  double temperature, double beta, int64_t ignore_index, bool compute_grad,
                                  double grad_scale) {
  TORCH_CHECK_VALUE(student.dim() == 2, "fused_distill: student logits must be 2-D [rows, V], got shape ",
                    student.sizes());
  TORCH_CHECK_TYPE(is_float_type(student.scalar_type()),
                   "fused_distill: student logits must be float32, float64, bfloat16 or float16, got ",
                   student.scalar_type());
  TORCH_CHECK_VALUE(student.is_contiguous(), "fused_distill: student logits must be contiguous");
  TORCH_CHECK_VALUE(kind >= kNoDistill && kind < kNumKinds, "fused_distill: unknown kind ", kind);
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0, "fused_distill: temperature must be > 0, got ",
                    temperature);
  TORCH_CHECK_VALUE(alpha >= 0 && alpha <= 1, "fused_distill: alpha must lie in [0, 1], got ", alpha);
  TORCH_CHECK_VALUE(kind != kJSD || (beta > 0 && beta < 1), "fused_distill: jsd beta must lie in (0, 1), got ", beta);
  TORCH_CHECK_VALUE(!is_skew_kind(kind) || (beta >= 0 && beta < 1),
                    "fused_distill: the skew beta must lie in [0, 1), got ", beta);
  TORCH_CHECK_VALUE(std::isfinite(grad_scale), "fused_distill: grad_scale must be finite, got ", grad_scale);
  DistillParams p;
  p.rows = student.size(0);
  p.cols = student.size(1);
  p.kind = kind;
  // Cross-entropy alone is the alpha = 0 end of the mix, whatever alpha was passed.
  p.alpha = kind == kNoDistill ? 0.0 : alpha;
  p.temperature = temperature;
  p.beta = beta;
  p.ignore_index = ignore_index;
  p.write_grad = compute_grad;
  p.grad_scale = grad_scale;
  p.has_teacher = teacher.has_value() && teacher->defined();
  p.has_labels = labels.has_value() && labels->defined();
  TORCH_CHECK_VALUE(p.cols > 0 || p.rows == 0, "fused_distill: the class dimension V must be >= 1");
  if (kind != kNoDistill) {
    TORCH_CHECK_VALUE(p.has_teacher, "fused_distill: a teacher is required for distillation kind ", kind);
    const at::Tensor& t = *teacher;
    TORCH_CHECK_VALUE(t.sizes() == student.sizes(), "fused_distill: teacher shape ", t.sizes(),
                      " does not match student shape ", student.sizes());
    TORCH_CHECK_TYPE(t.scalar_type() == student.scalar_type(), "fused_distill: teacher dtype ", t.scalar_type(),
                     " does not match student dtype ", student.scalar_type());
    TORCH_CHECK_VALUE(t.device() == student.device(), "fused_distill: teacher is on ", t.device(),
                      " but student is on ", student.device());
    TORCH_CHECK_VALUE(t.is_contiguous(), "fused_distill: teacher logits must be contiguous");
  }
  if (p.has_labels) {
    const at::Tensor& y = *labels;
    TORCH_CHECK_TYPE(y.scalar_type() == at::kLong, "fused_distill: labels must be int64, got ", y.scalar_type());
    TORCH_CHECK_VALUE(y.dim() == 1 && y.size(0) == p.rows, "fused_distill: labels shape ", y.sizes(),
                      " does not match ", p.rows, " rows");
    TORCH_CHECK_VALUE(y.device() == student.device(), "fused_distill: labels are on ", y.device(),
                      " but student is on ", student.device());
    TORCH_CHECK_VALUE(y.is_contiguous(), "fused_distill: labels must be contiguous");
  }
  TORCH_CHECK_VALUE(p.has_labels || p.alpha == 1.0 || kind == kNoDistill,
                    "fused_distill: alpha < 1 mixes in cross-entropy, which needs labels");
  TORCH_CHECK_VALUE(kind != kNoDistill || p.has_labels, "fused_distill: cross-entropy needs labels");
  return p;
}

std::tuple<at::Tensor, at::Tensor> allocate_row_outputs(const at::Tensor& student, int64_t rows, int64_t cols,
                                                        bool write_grad) {
  const auto loss_dtype = student.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor loss = at::empty({rows}, student.options().dtype(loss_dtype));
  at::Tensor grad = write_grad ? at::empty({rows, cols}, student.options()) : at::empty({0}, student.options());
  return {loss, grad};
}

std::tuple<at::Tensor, at::Tensor> allocate_distill_outputs(const at::Tensor& student, const DistillParams& p) {
  return allocate_row_outputs(student, p.rows, p.cols, p.write_grad);
}

void check_labels_in_range(const char* op, const int64_t* labels, int64_t rows, int64_t cols, int64_t ignore_index) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t y = labels[r];
    TORCH_CHECK_VALUE(y == ignore_index || (y >= 0 && y < cols), op, ": label ", y, " at row ", r,
                      " is out of range [0, ", cols, ") and is not ignore_index (", ignore_index, ")");
  }
}

void check_labels_host(const int64_t* labels, const DistillParams& p) {
  if (p.has_labels) check_labels_in_range("fused_distill", labels, p.rows, p.cols, p.ignore_index);
}

}  // namespace pylaundering
