// Parameters of the fused distillation loss, shared by the CPU and CUDA kernels.
//
// One kernel family computes, per row of V logits,
//   loss = alpha * distill(student, teacher) + (1 - alpha) * CE(student, label)
// and, when asked, d loss / d student for that row. Reductions over rows happen in
// Python, so the kernels only ever produce per-row values.
#pragma once
#include <cstdint>

namespace pylaundering {

enum DistillKind : int64_t {
  kNoDistill = 0,  // cross-entropy only (no teacher)
  kForwardKL = 1,  // T^2 * KL(pt || ps)
  kReverseKL = 2,  // T^2 * KL(ps || pt)
  kJSD = 3,        // T^2 * (beta KL(pt||m) + (1-beta) KL(ps||m)), m = beta pt + (1-beta) ps
  kMSE = 4,        // mean over V of (s - t)^2, temperature ignored
};

struct DistillParams {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t kind = kForwardKL;
  // double, so that fp64 inputs (gradcheck) see the parameters exactly as given
  double alpha = 1.0;        // weight of the distillation term
  double temperature = 1.0;  // applies to the distillation term only; CE uses T = 1
  double beta = 0.5;
  int64_t ignore_index = -100;
  // The gradient is written times this: a scalar reduction's 1/count folded into the forward, so
  // that backward need not rescale the [rows, V] gradient in another pass (1 = d row / d logits).
  double grad_scale = 1.0;
  bool has_teacher = true;
  bool has_labels = false;
  bool write_grad = true;

  bool ce_on() const { return has_labels && alpha != 1.0; }
};

}  // namespace pylaundering
