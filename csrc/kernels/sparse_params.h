// Parameters of the fused sparse-teacher distillation loss, shared by the CPU and CUDA kernels.
//
// The teacher of a row is k kept entries: values v[k] at distinct vocabulary indices idx[k], and
// either its log-normaliser Lt (logsumexp of its logits / T over the full vocabulary) or none.
// Both distributions become distributions over k + 1 outcomes, the kept entries and one "rest"
// bucket (the semantics of pylaundering/ops/sparse.py, whose plain-PyTorch formulas are the
// reference):
//   student: ls_i = log q(idx_i) from the full softmax of s / T; ls_rest = log of its mass outside
//            the kept indices, summed from those entries (never as 1 - kept: exact 0 at k = V).
//   teacher with Lt:    lt_i = v_i / T - Lt, lt_rest = log(1 - sum exp(lt_i)); -inf when
//                       log sum exp(lt_i) >= -8 eps (1 + |Lt|), eps of Lt's dtype (the stored Lt's
//                       rounding), and always at k = V, where no class is left for a rest. The kept
//                       total is summed as max + log sum exp, accurately (long double for fp64).
//   teacher without Lt: lt = log_softmax(v / T) over the kept entries, lt_rest = -inf; for reverse
//                       KL the student is renormalised over the kept entries too (restricted).
// With g_o = d loss / d ls_o and G = sum_o g_o, the gradient of T^2 * loss with respect to s_j is
//   kept j = idx_i: T * (g_i - q_j G),   other j: T * q_j * (g_rest / Q_rest - G),
// (restricted: T * (g_i - Q_i G) on the kept entries with Q renormalised over them, 0 elsewhere), and
//   forward KL: loss = sum p_o (lt_o - ls_o),  g_o = -p_o
//   reverse KL: loss = sum Q_o (ls_o - lt_o),  g_o = Q_o (ls_o - lt_o + 1)
//   JSD:        loss = beta sum p_o (lt_o - lm_o) + (1 - beta) sum Q_o (ls_o - lm_o),
//               lm_o = log(beta p_o + (1 - beta) Q_o),  g_o = (1 - beta) Q_o (ls_o - lm_o)
//   TVD:        loss = 0.5 sum |p_o - Q_o|,  g_o = 0.5 Q_o sign(Q_o - p_o)  (0 at ties); not times T^2,
//               so its gradient is (1 / T) (g_i - q_j G) where the KL family's is T (...)
//   skew KL:    loss = sum p_o (lt_o - lm_o), lm_o = log(beta p_o + (1 - beta) Q_o),
//               g_o = -(1 - beta) p_o Q_o / m_o
//   skew rKL:   loss = sum Q_o (ls_o - lm_o), lm_o = log(beta Q_o + (1 - beta) p_o),
//               g_o = Q_o (ls_o - lm_o + 1 - beta Q_o / m_o)
// where an outcome of zero probability contributes 0 to the sum that it weights. MSE: mean over
// the k kept entries of (s_idx - v)^2. Cross-entropy (weight 1 - alpha, labels) is on the full
// student logits at T = 1, as the dense op. Rows whose label is ignore_index: loss 0, gradient 0.
#pragma once
#include "kernels/distill_params.h"

#include <cstdint>

namespace pylaundering {

struct SparseDistillParams {
  int64_t rows = 0;
  int64_t cols = 0;           // V
  int64_t k = 0;              // kept entries per row
  int64_t kind = kForwardKL;  // any DistillKind but kNoDistill
  double alpha = 1.0;
  double temperature = 1.0;
  double beta = 0.5;
  int64_t ignore_index = -100;
  bool has_lognorm = false;
  bool has_labels = false;
  bool write_grad = true;
  // The gradient is written times this (a reduction's 1/count; see DistillParams). CPU only: the
  // CUDA op accepts 1 alone.
  double grad_scale = 1.0;

  bool ce_on() const { return has_labels && alpha != 1.0; }
  // Without the teacher's normaliser its rest is empty; reverse KL (and skewed reverse KL, reverse KL at
  // skew 0) then compares on the kept entries.
  bool restricted() const { return (kind == kReverseKL || kind == kSkewReverseKL) && !has_lognorm; }
};

}  // namespace pylaundering
