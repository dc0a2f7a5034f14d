// Parameters of the fused distillation loss, shared by the CPU and CUDA kernels.
//
// One kernel family computes, per row of V logits,
//   loss = alpha * distill(student, teacher) + (1 - alpha) * CE(student, label)
// and, when asked, d loss / d student for that row. Reductions over rows happen in
// Python, so the kernels only ever produce per-row values.
#pragma once
#include <cstdint>

namespace pylaundering {

// The codes are the Python table's (pylaundering/loss_kinds.py, which also says how to add a kind); a
// test compares them with kind_codes() (bindings.cpp), which lists kKindNames.
enum DistillKind : int64_t {
  kNoDistill = 0,      // cross-entropy only (no teacher)
  kForwardKL = 1,      // T^2 * KL(pt || ps)
  kReverseKL = 2,      // T^2 * KL(ps || pt)
  kJSD = 3,            // T^2 * (beta KL(pt||m) + (1-beta) KL(ps||m)), m = beta pt + (1-beta) ps
  kMSE = 4,            // mean over V of (s - t)^2, temperature ignored
  kTVD = 5,            // 0.5 * sum |pt - ps| (not times T^2)
  kSkewKL = 6,         // T^2 * KL(pt || m), m = beta pt + (1-beta) ps (DistiLLM's skewed KL, skew beta)
  kSkewReverseKL = 7,  // T^2 * KL(ps || m), m = beta ps + (1-beta) pt
  kNumKinds            // one past the last code: the range checks' bound
};

// The names of the codes, as Python spells them (kNoDistill has no Python kind: "no_distill").
inline constexpr const char* kKindNames[kNumKinds] = {"no_distill", "kl",  "reverse_kl", "jsd",
                                                      "mse",        "tvd", "skew_kl",    "skew_reverse_kl"};

// Kinds formed from the two softmaxes at temperature T.
template <int64_t KIND>
inline constexpr bool kSoftKind = KIND == kForwardKL || KIND == kReverseKL || KIND == kJSD || KIND == kTVD ||
                                  KIND == kSkewKL || KIND == kSkewReverseKL;
// Kinds whose gradient needs a sum over the whole row first (a third pass: d = coef * (b_j - ps_j * sum b)).
template <int64_t KIND>
inline constexpr bool kRowSumGrad = KIND == kJSD || KIND == kTVD || KIND == kSkewKL || KIND == kSkewReverseKL;

inline bool is_soft_kind(int64_t kind) { return kind >= kForwardKL && kind < kNumKinds && kind != kMSE; }
// beta is a skew in [0, 1) (at 1 the loss is identically 0).
inline bool is_skew_kind(int64_t kind) { return kind == kSkewKL || kind == kSkewReverseKL; }
// The distillation term is T^2 times a divergence of the softmaxes at T (tvd is not scaled).
inline bool is_t2_kind(int64_t kind) { return is_soft_kind(kind) && kind != kTVD; }

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
