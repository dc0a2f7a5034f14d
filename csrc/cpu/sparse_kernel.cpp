// Fused sparse-teacher distillation loss, CPU (semantics and formulas: csrc/kernels/sparse_params.h).
// Compiled once per CPU capability, as distill_kernel.cpp.
//
// Per row, with the teacher's k kept entries:
//   pass 1: the student's max (NaN / +inf poison the row, as in the dense op);
//   pass 2: e_j = exp((s_j - max) / T) into a row-sized scratch, and their sum Z;
//   kept:   the k kept e_j are read and zeroed in the scratch, so the scratch then holds exactly the
//           student's rest and its sum is the rest mass (0 at k = V, never 1 - kept);
//   the k + 1 outcomes' loss, g_o and G in double (k values, not V);
//   pass 3: the gradient of the non-kept entries, e_j * const (+ cross-entropy), then the k kept
//           entries are written from their own formula.
// The only [N, V] buffer is the gradient, written once, and only when asked for.
#include "kernels/sparse_params.h"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/vec_util.h"

namespace pylaundering::cpu {
namespace CPU_CAPABILITY {

namespace {

using namespace vecu;

// log sum exp of n values, summed in Wide: long double for fp64 inputs, so that a kept total of
// thousands of entries is accurate to a few ulps of the input's precision (it decides whether the
// teacher leaves a rest); double suffices for the others. NaN propagates.
template <typename Wide>
inline double log_sum_exp(const double* x, int64_t n) {
  double m = neg_inf<double>();
  for (int64_t i = 0; i < n; ++i) m = (x[i] > m || std::isnan(x[i])) ? x[i] : m;
  if (!(m > neg_inf<double>()) || std::isinf(m)) return m;  // all -inf, +inf or NaN
  Wide acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += std::exp(static_cast<Wide>(x[i] - m));
  return m + static_cast<double>(std::log(acc));
}

// log(exp(a) + exp(b)), -inf when both are.
inline double log_add(double a, double b) {
  const double m = std::max(a, b);
  if (m == neg_inf<double>()) return m;
  return m + std::log1p(std::exp(std::min(a, b) - m));
}

template <typename scalar_t, typename acc_t, int64_t KIND>
void sparse_rows(const SparseDistillParams& p, const scalar_t* S, const scalar_t* Vals, const int64_t* Idx,
                 const acc_t* LogNorm, const int64_t* Y, acc_t* out_loss, scalar_t* G, int64_t r0, int64_t r1) {
  using Vec = Vectorized<acc_t>;
  constexpr int64_t VS = Vec::size();
  constexpr bool kSoft = KIND != kMSE;
  using Wide = std::conditional_t<std::is_same_v<acc_t, double>, long double, double>;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const int64_t V = p.cols, K = p.k;
  const double T = p.temperature, invT = 1.0 / p.temperature, alpha = p.alpha, beta = p.beta;
  // d(T^2 loss)/ds = T d loss/du, u = s / T; TVD is not times T^2: its factor is 1 / T
  const double gT = KIND == kTVD ? invT : T;
  const bool ce = p.ce_on();
  const double ce_w = ce ? 1.0 - alpha : 0.0;
  const double gs = p.grad_scale;
  const bool ce_shares = kSoft && T == 1.0;  // CE at T = 1 shares the soft term's exps
  const bool restricted = p.restricted();
  const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();

  std::vector<acc_t> E(kSoft ? V : 0);
  std::vector<uint8_t> kept_mask(V, 0);
  std::vector<double> sk(K), ek(K), ls(K + 1), lt(K + 1), gk(K + 1);

  for (int64_t r = r0; r < r1; ++r) {
    const scalar_t* s = S + r * V;
    const scalar_t* v = Vals + r * K;
    const int64_t* idx = Idx + r * K;
    scalar_t* g = G ? G + r * V : nullptr;
    const int64_t y = p.has_labels ? Y[r] : -1;

    // The row's kept indices are marked for as long as the row is worked on (cleared on every way out).
    // Duplicates would be counted twice; the Python API refuses them first, the raw op here.
    struct Marks {
      std::vector<uint8_t>& mask;
      const int64_t* idx;
      int64_t n = 0;
      ~Marks() {
        for (int64_t i = 0; i < n; ++i) mask[idx[i]] = 0;
      }
    } marks{kept_mask, idx};
    for (int64_t i = 0; i < K; ++i) {
      TORCH_CHECK_VALUE(!kept_mask[idx[i]], "fused_sparse_distill: index ", idx[i], " repeats in row ", r,
                        "; each kept entry must be a distinct class");
      kept_mask[idx[i]] = 1;
      marks.n = i + 1;
    }

    if (p.has_labels && y == p.ignore_index) {
      out_loss[r] = 0;
      if (g) std::fill(g, g + V, scalar_t(0));
      continue;
    }

    // ---- pass 1: max
    Vec vm(neg_inf<acc_t>());
    for (int64_t j = 0; j < V; j += VS) vm = at::vec::maximum(vm, load<scalar_t, acc_t>(s + j, std::min(VS, V - j)));
    const double m = hmax(vm);
    // NaN or +inf in a live student logit, or (soft kinds) in a teacher value or its normaliser,
    // poisons the row: loss and gradient NaN, as the dense op does
    bool poisoned = !(m < kInf);
    if (kSoft && alpha != 0) {
      for (int64_t i = 0; i < K && !poisoned; ++i) poisoned = !(double(static_cast<acc_t>(v[i])) < kInf);
      if (p.has_lognorm && !std::isfinite(double(LogNorm[r]))) poisoned = true;
    }
    if (poisoned) {
      out_loss[r] = nan;
      if (g) std::fill(g, g + V, static_cast<scalar_t>(nan));
      continue;
    }
    const bool live = m != neg_inf<double>();
    // exps as 2^((x - m) log2 e / T): log2 e folded into the factor the argument is scaled by anyway
    constexpr double kLog2e = 1.44269504088896341;
    const Vec v_m(static_cast<acc_t>(live ? m : 0.0)), v_c(static_cast<acc_t>(kLog2e * invT)), zero(0);
    const Vec v_log2e(static_cast<acc_t>(kLog2e));

    // ---- pass 2: exps at T (kept in scratch) and, for CE at T = 1 when T != 1, their sum
    double Z = 0, Z1 = 0;
    {
      Vec vz(0), vz1(0);
      for (int64_t j = 0; j < V; j += VS) {
        const int64_t n = std::min(VS, V - j);
        const Vec x = load<scalar_t, acc_t>(s + j, n);
        if constexpr (kSoft) {
          const Vec e = live ? vexp2((x - v_m) * v_c) : zero;
          store_scratch(E.data() + j, e, n);
          vz += e;
        }
        if (ce && !ce_shares) vz1 += live ? vexp2((x - v_m) * v_log2e) : zero;
      }
      Z = hsum(vz);
      Z1 = ce_shares ? Z : double(hsum(vz1));
    }
    const double lZ = std::log(Z), lZ1 = std::log(Z1);

    // ---- the kept entries: gathered, and taken out of the scratch, which then holds the rest
    for (int64_t i = 0; i < K; ++i) {
      sk[i] = static_cast<acc_t>(s[idx[i]]);
      if constexpr (kSoft) {
        ek[i] = E[idx[i]];
        E[idx[i]] = 0;
      }
    }

    double distill = 0, A = 0, G_sum = 0;  // A: non-kept gradient per unit of e_j (before alpha * T)
    // When the rest's exps relative to the row max underflow (every entry outside the kept ones more
    // than ~87 T below it in fp32), the rest is measured from its own max instead: its log-mass from
    // rest_max and rest_sum, its entries' gradient from exp((s_j - rest_max) / T) (a scalar pass, rare).
    bool rest_own = false;
    double rest_max = 0, rest_sum = 0;
    if (kSoft && alpha != 0) {
      // student log-probabilities of the k + 1 outcomes
      double Qrest_sum = 0;
      if (restricted) {
        for (int64_t i = 0; i < K; ++i) ls[i] = sk[i] * invT;
        const double lk = log_sum_exp<Wide>(ls.data(), K);
        for (int64_t i = 0; i < K; ++i) ls[i] -= lk;
        ls[K] = neg_inf<double>();
      } else {
        Vec vr(0);
        for (int64_t j = 0; j < V; j += VS) vr += load_scratch(E.data() + j, std::min(VS, V - j));
        Qrest_sum = hsum(vr);
        for (int64_t i = 0; i < K; ++i) ls[i] = (sk[i] - m) * invT - lZ;
        ls[K] = Qrest_sum > 0 ? std::log(Qrest_sum) - lZ : neg_inf<double>();
        if (K < V && Qrest_sum < 1e6 * double(std::numeric_limits<acc_t>::min())) {
          rest_max = neg_inf<double>();
          for (int64_t j = 0; j < V; ++j) {
            if (!kept_mask[j]) rest_max = std::max(rest_max, double(static_cast<acc_t>(s[j])));
          }
          if (rest_max > neg_inf<double>()) {
            Wide acc = 0;
            for (int64_t j = 0; j < V; ++j) {
              if (!kept_mask[j])
                acc += std::exp(static_cast<Wide>((double(static_cast<acc_t>(s[j])) - rest_max) * invT));
            }
            rest_sum = static_cast<double>(acc);
            rest_own = true;
            ls[K] = (rest_max - m) * invT + std::log(rest_sum) - lZ;
          }
        }
      }
      // teacher log-probabilities
      const double ln = p.has_lognorm ? double(LogNorm[r]) : 0.0;
      for (int64_t i = 0; i < K; ++i) lt[i] = double(static_cast<acc_t>(v[i])) * invT - ln;
      const double tot = log_sum_exp<Wide>(lt.data(), K);
      if (p.has_lognorm) {
        const double tiny = 8.0 * std::numeric_limits<acc_t>::epsilon() * (1.0 + std::abs(ln));
        // k = V: no class is left for a rest, whatever the stored values' rounding says
        lt[K] = (K < V && tot < -tiny) ? std::log(-std::expm1(tot)) : neg_inf<double>();
      } else {  // renormalised over the kept entries
        for (int64_t i = 0; i < K; ++i) lt[i] -= tot;
        lt[K] = neg_inf<double>();
      }
      // loss and g_o = d loss / d ls_o over the k + 1 outcomes
      double L = 0;
      for (int64_t o = 0; o <= K; ++o) {
        const double pt = std::exp(lt[o]), qs = std::exp(ls[o]);
        double go = 0;
        if constexpr (KIND == kForwardKL) {
          if (pt > 0) L += pt * (lt[o] - ls[o]);
          go = -pt;
        } else if constexpr (KIND == kReverseKL) {
          if (qs > 0) {
            L += qs * (ls[o] - lt[o]);
            go = qs * (ls[o] - lt[o] + 1);
          }
        } else if constexpr (KIND == kJSD) {
          const double mix = beta * pt + (1 - beta) * qs;
          const double lm = mix > 0 ? std::log(mix) : 0.0;
          if (pt > 0) L += beta * pt * (lt[o] - lm);
          if (qs > 0) {
            L += (1 - beta) * qs * (ls[o] - lm);
            go = (1 - beta) * qs * (ls[o] - lm);
          }
        } else if constexpr (KIND == kTVD) {
          L += 0.5 * std::abs(pt - qs);
          go = qs > pt ? 0.5 * qs : (qs < pt ? -0.5 * qs : 0.0);  // subgradient 0 at ties
        } else if constexpr (KIND == kSkewKL) {
          // log m in log space (m underflows long before its log does); at skew 0, m = Q
          const double lm = beta > 0 ? log_add(std::log(beta) + lt[o], std::log1p(-beta) + ls[o]) : ls[o];
          if (pt > 0) {
            L += pt * (lt[o] - lm);
            go = -(1 - beta) * pt * std::exp(ls[o] - lm);
          }
        } else {  // skew reverse KL
          const double lm = beta > 0 ? log_add(std::log(beta) + ls[o], std::log1p(-beta) + lt[o]) : lt[o];
          if (qs > 0) {
            const double r = std::exp(ls[o] - lm);  // Q / m <= 1 / beta
            L += qs * (ls[o] - lm);
            go = qs * (ls[o] - lm + 1 - beta * r);
          }
        }
        gk[o] = go;
        G_sum += go;
      }
      distill = KIND == kTVD ? L : T * T * L;
      if (!restricted) A = (Qrest_sum > 0 && !rest_own ? gk[K] / Qrest_sum : 0.0) - G_sum / Z;
    } else if (!kSoft && alpha != 0) {  // MSE on the kept logits
      double acc = 0;
      for (int64_t i = 0; i < K; ++i) {
        const double tv = static_cast<acc_t>(v[i]);
        const double d = sk[i] == tv ? 0.0 : sk[i] - tv;  // both -inf: masked, as the dense op
        acc += d * d;
      }
      distill = acc / double(K);
    }
    double row = alpha * distill;
    if (ce) row += ce_w * -(double(static_cast<acc_t>(s[y])) - m - lZ1);
    out_loss[r] = static_cast<acc_t>(row);
    if (!g) continue;

    // ---- pass 3: the gradient of every entry as if not kept, then the kept ones
    // every gradient term carries grad_scale (a reduction's 1/count); the loss does not
    const Vec v_a(static_cast<acc_t>(alpha * gT * A * gs)), v_cew(static_cast<acc_t>(ce_w * gs));
    const Vec v_z(static_cast<acc_t>(ce_shares ? Z : Z1));
    for (int64_t j = 0; j < V && !rest_own; j += VS) {
      const int64_t n = std::min(VS, V - j);
      Vec gr(0);
      if constexpr (kSoft) gr = v_a * load_scratch(E.data() + j, n);
      if (ce) {
        const Vec e1 = ce_shares ? load_scratch(E.data() + j, n)
                                 : (live ? vexp2((load<scalar_t, acc_t>(s + j, n) - v_m) * v_log2e) : zero);
        gr += v_cew * e1 / v_z;
      }
      store<scalar_t, acc_t>(g + j, gr, n);
    }
    if (rest_own) {  // the same pass in scalar code, the rest's entries from its own max (kept: below)
      const double c_rest = gk[K] / rest_sum, c_all = G_sum / Z, z1 = ce_shares ? Z : Z1;
      for (int64_t j = 0; j < V; ++j) {
        const double x = double(static_cast<acc_t>(s[j]));  // read before g[j] is written (in place)
        double gj = 0;
        if (!kept_mask[j]) gj = alpha * gT * (std::exp((x - rest_max) * invT) * c_rest - double(E[j]) * c_all);
        if (ce) gj += ce_w * (live ? std::exp(x - m) : 0.0) / z1;
        g[j] = static_cast<scalar_t>(gj * gs);
      }
    }
    for (int64_t i = 0; i < K; ++i) {
      double gi = 0;
      if (alpha == 0) {
        // cross-entropy alone: no soft term (never 0 * inf)
      } else if constexpr (kSoft) {
        const double qi = restricted ? std::exp(ls[i]) : ek[i] / Z;
        gi = alpha * gT * (gk[i] - qi * G_sum);
      } else {
        const double tv = static_cast<acc_t>(v[i]);
        gi = alpha * 2.0 * (sk[i] == tv ? 0.0 : sk[i] - tv) / double(K);
      }
      if (ce) gi += ce_w * (live ? std::exp(sk[i] - m) / Z1 : 0.0);
      g[idx[i]] = static_cast<scalar_t>(gi * gs);
    }
    if (ce) g[y] = static_cast<scalar_t>(double(static_cast<acc_t>(g[y])) - ce_w * gs);
  }
}

template <typename scalar_t, typename acc_t>
void launch(const SparseDistillParams& p, const at::Tensor& student, const at::Tensor& values,
            const at::Tensor& indices, const at::Tensor& lognorm, const at::Tensor& labels, at::Tensor& loss,
            at::Tensor& grad) {
  const scalar_t* S = student.const_data_ptr<scalar_t>();
  const scalar_t* Vv = values.const_data_ptr<scalar_t>();
  const int64_t* I = indices.const_data_ptr<int64_t>();
  const acc_t* LN = lognorm.defined() ? lognorm.const_data_ptr<acc_t>() : nullptr;
  const int64_t* Y = labels.defined() ? labels.const_data_ptr<int64_t>() : nullptr;
  acc_t* L = loss.mutable_data_ptr<acc_t>();
  scalar_t* G = p.write_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr;
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, p.cols));
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    switch (p.kind) {
      case kForwardKL:
        return sparse_rows<scalar_t, acc_t, kForwardKL>(p, S, Vv, I, LN, Y, L, G, r0, r1);
      case kReverseKL:
        return sparse_rows<scalar_t, acc_t, kReverseKL>(p, S, Vv, I, LN, Y, L, G, r0, r1);
      case kJSD:
        return sparse_rows<scalar_t, acc_t, kJSD>(p, S, Vv, I, LN, Y, L, G, r0, r1);
      case kMSE:
        return sparse_rows<scalar_t, acc_t, kMSE>(p, S, Vv, I, LN, Y, L, G, r0, r1);
      case kTVD:
        return sparse_rows<scalar_t, acc_t, kTVD>(p, S, Vv, I, LN, Y, L, G, r0, r1);
      case kSkewKL:
        return sparse_rows<scalar_t, acc_t, kSkewKL>(p, S, Vv, I, LN, Y, L, G, r0, r1);
      case kSkewReverseKL:
        return sparse_rows<scalar_t, acc_t, kSkewReverseKL>(p, S, Vv, I, LN, Y, L, G, r0, r1);
    }
  });
}

}  // namespace

void fused_sparse_distill_kernel(const SparseDistillParams& p, const at::Tensor& student, const at::Tensor& values,
                                 const at::Tensor& indices, const at::Tensor& lognorm, const at::Tensor& labels,
                                 at::Tensor& loss, at::Tensor& grad) {
  switch (student.scalar_type()) {
    case at::kFloat:
      return launch<float, float>(p, student, values, indices, lognorm, labels, loss, grad);
    case at::kDouble:
      return launch<double, double>(p, student, values, indices, lognorm, labels, loss, grad);
    case at::kBFloat16:
      return launch<c10::BFloat16, float>(p, student, values, indices, lognorm, labels, loss, grad);
    case at::kHalf:
      return launch<c10::Half, float>(p, student, values, indices, lognorm, labels, loss, grad);
    default:
      TORCH_CHECK_TYPE(false, "fused_sparse_distill: unsupported dtype ", student.scalar_type());
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace pylaundering::cpu
