// Fused distillation loss, CPU. Compiled once per CPU capability (DEFAULT, AVX2, AVX512)
// with CPU_CAPABILITY set to that name, as ATen's DispatchStub kernels are; distill_cpu.cpp
// picks the variant at run time, so the library runs on any x86-64.
//
// Per row (all math in acc_t: float for fp32/bf16/fp16, double for fp64):
//   pass 1 (statistics): blocks of BLK elements; per block the max of student and teacher,
//     then exp-sums against the running max, rescaling the running sums when the max moves
//     (online softmax at block granularity: one exp per element, the block stays in L1).
//   pass 2 (loss + gradient): log-probabilities from the statistics, the row's loss, and the
//     gradient written once. Reverse KL's gradient needs the row's KL before the pass; it is
//     assembled in pass 1 from two extra running sums (see f_rkl below).
//   pass 3, kinds whose gradient needs a sum over the whole row (JSD: KL(ps || m), which needs log m;
//     TVD: sum sign(ps - pt) ps; the skewed KLs), when the gradient is wanted: pass 2 keeps
//     coef * b_j in scratch, and pass 3 writes coef * (b_j - ps_j sum b) over the (cache-hot) row.
// No [N, V] temporaries: only the gradient is written, and only when asked for. Every element of
// the student row is read before the gradient's element at the same index is written, and no
// student element after, so the gradient may be written over the student's own storage
// (fused_distill_out with grad_out = student: the fused-linear op's chunk logits).
#include "kernels/distill_params.h"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include "cpu/vec_util.h"
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace pylaundering::cpu {
namespace CPU_CAPABILITY {

using at::vec::Vectorized;

namespace {

using namespace vecu;

constexpr double kLog2e = 1.44269504088896341, kLn2 = 0.693147180559945309;
constexpr int64_t kBlock = 2048;  // elements per statistics block: 8 KiB per fp32 row in L1
// A gradient at least this large is written with non-temporal stores: several times a server's L3,
// so its lines would be evicted before anyone read them, and a normal store first reads each line.
constexpr int64_t kStreamBytes = int64_t(64) << 20;

// Per-thread scratch: exponentials from pass 1, so pass 2 needs no exp at all. Row-sized, so it
// stays in L2 with the row; it is not an [N, V] temporary.
template <typename acc_t>
struct Scratch {
  std::vector<acc_t> es, et, e1;     // exp((x - running max) / T) per element; e1 at T = 1
  std::vector<double> ms_at, mt_at;  // running max when each block's exps were taken
  std::vector<double> kl_d, kl_z;    // forward KL: per block, sum et (ut - us) and sum et
  Scratch(int64_t V, bool soft, bool ce_stats, bool ce) {
    const int64_t nb = (V + kBlock - 1) / kBlock;
    if (soft) {
      es.resize(V);
      et.resize(V);
    }
    if (ce_stats || (ce && !soft)) e1.resize(V);
    ms_at.resize(nb);
    mt_at.resize(nb);
    kl_d.resize(nb);
    kl_z.resize(nb);
  }
};

// The cross-entropy part of forward_kl_grad's gradient: ce_wg (p1 - onehot(y)), p1 = softmax(s) at
// T = 1, which is ps itself when the soft term is at T = 1 (E1 null) and E1 * exp(ms_at - ms) / z1
// otherwise. ce_wg = 0: no CE.
template <typename acc_t>
struct CeGrad {
  acc_t ce_wg = 0;
  const acc_t* E1 = nullptr;
  double z1 = 1;
  int64_t y = -1;
};

// Forward KL (Hinton KD, the common case; with or without CE) needs no second pass over the inputs:
// pass 1 also sums, per block, D = sum et (ut - us), each side's u against the max its exps used, and
// the row's KL is assembled from those block sums (forward_kl_from_blocks). Pass 2 is then the
// gradient alone, gsoft (ps - pt) (+ the CE part), from the scratch exps: it reads nothing of s or t
// (so it may write over s), and inference skips it. The kernel is bound by arithmetic: this saves
// re-reading both rows and five operations per vector.
template <typename scalar_t, typename acc_t>
void forward_kl_grad(scalar_t* g, int64_t V, const acc_t* ES, const acc_t* ET, const double* ms_at, const double* mt_at,
                     double ms, double mt, double zs, double zt, double invT, acc_t gsoft, const CeGrad<acc_t>& ce,
                     bool stream) {
  using Vec = Vectorized<acc_t>;
  constexpr int64_t VS = Vec::size();
  for (int64_t b0 = 0, blk = 0; b0 < V; b0 += kBlock, ++blk) {
    const int64_t b1 = std::min(V, b0 + kBlock);
    const double fs = std::exp((ms_at[blk] - ms) * invT) / zs, ft = std::exp((mt_at[blk] - mt) * invT) / zt;
    // p1 = ps shares the student's coefficient; otherwise E1 has its own
    const double fs_ce = ce.E1 == nullptr ? double(ce.ce_wg) * fs : 0.0;
    const Vec fsg(static_cast<acc_t>(double(gsoft) * fs + fs_ce)), ftg(static_cast<acc_t>(double(gsoft) * ft));
    const Vec f1g(static_cast<acc_t>(double(ce.ce_wg) * std::exp(ms_at[blk] - ms) / ce.z1)), v_cew(ce.ce_wg);
    if (ce.ce_wg == acc_t(0)) {  // KD alone: the loop without CE's per-vector tests
      for (int64_t j = b0; j < b1; j += VS) {
        const int64_t n = std::min(VS, b1 - j);
        store_out<scalar_t, acc_t>(g + j, at::vec::fmsub(load_scratch(ES + j, n), fsg, load_scratch(ET + j, n) * ftg),
                                   n, stream);
      }
    } else {
      for (int64_t j = b0; j < b1; j += VS) {
        const int64_t n = std::min(VS, b1 - j);
        Vec grad = at::vec::fmsub(load_scratch(ES + j, n), fsg, load_scratch(ET + j, n) * ftg);
        if (ce.E1 != nullptr) grad = at::vec::fmadd(load_scratch(ce.E1 + j, n), f1g, grad);
        if (ce.y >= j && ce.y < j + VS) {
          grad -= keep(Vec::arange(static_cast<acc_t>(j), acc_t(1)) == Vec(static_cast<acc_t>(ce.y)), v_cew);
        }
        store_out<scalar_t, acc_t>(g + j, grad, n, stream);
      }
    }
  }
}

// T^2 KL(pt || ps) from pass 1's block sums. In block b the exps used maxes mt_b, ms_b (0 for a side
// with no live logit yet: its exps are 0), so with the row's maxes mt, ms: pt = et ft_b, ft_b =
// exp((mt_b - mt) / T) / zt, and log pt - log ps = (ut - us) + c_b + (lzs - lzt), c_b = ((mt_b - mt) -
// (ms_b - ms)) / T. Hence KL = sum_b ft_b (D_b + c_b Zt_b) + (sum pt)(lzs - lzt), Zt_b = the block's
// sum of et. Each side is taken against a max of its own, so an offset between student and teacher
// logits costs no precision. A block with no teacher mass adds nothing (and may hold D_b = 0 from
// masks only).
inline double forward_kl_from_blocks(const double* kl_d, const double* kl_z, const double* ms_at, const double* mt_at,
                                     int64_t nb, double ms, double mt, double zt, double lzs, double lzt, double invT,
                                     double T) {
  double sum_pd = 0, sum_p = 0;
  for (int64_t b = 0; b < nb; ++b) {
    if (kl_z[b] == 0) continue;
    const double ms_b = std::isfinite(ms_at[b]) ? ms_at[b] : 0.0;
    const double ft = std::exp((mt_at[b] - mt) * invT) / zt;
    const double c = ((mt_at[b] - mt) - (ms_b - ms)) * invT;
    sum_pd += ft * (kl_d[b] + c * kl_z[b]);
    sum_p += ft * kl_z[b];
  }
  return T * T * (sum_pd + sum_p * (lzs - lzt));
}

// The factor of a row-sum kind's gradient: d loss / d u_j = coef * (b_j - ps_j sum b), u = s / T, with
// b_j of the kind (JSD: ps (ls - lm); TVD: ps sign(ps - pt); skew KL: pt ps / m; skew reverse KL:
// ps (ls - lm - beta ps / m)).
template <int64_t KIND>
inline double row_sum_coef(double beta) {
  if constexpr (KIND == kJSD) return 1.0 - beta;
  if constexpr (KIND == kTVD) return 0.5;
  if constexpr (KIND == kSkewKL) return -(1.0 - beta);
  return 1.0;
}

// d(alpha * T^2 * D)/ds = alpha * T * dD/du with u = s / T; TVD is not times T^2: alpha / T.
template <int64_t KIND>
inline double soft_grad_factor(double alpha, double T) {
  return KIND == kTVD ? alpha / T : alpha * T;
}

template <typename scalar_t, typename acc_t, int64_t KIND>
void distill_rows(const DistillParams& p, const scalar_t* S, const scalar_t* Tt, const int64_t* Y, acc_t* out_loss,
                  scalar_t* G, int64_t r0, int64_t r1) {
  using Vec = Vectorized<acc_t>;
  constexpr int64_t VS = Vec::size();
  constexpr bool kSoft = kSoftKind<KIND>;
  constexpr bool kTeacher = KIND != kNoDistill;

  const int64_t V = p.cols;
  const acc_t T = static_cast<acc_t>(p.temperature);
  const acc_t invT = static_cast<acc_t>(1.0 / p.temperature);
  const acc_t alpha = KIND == kNoDistill ? acc_t(0) : static_cast<acc_t>(p.alpha);
  const acc_t beta = static_cast<acc_t>(p.beta);
  const bool ce = p.ce_on();
  const acc_t ce_w = ce ? static_cast<acc_t>(1.0 - (KIND == kNoDistill ? 0.0 : p.alpha)) : acc_t(0);
  // CE is at temperature 1; when the soft term is also at T = 1 it shares the student's sums.
  const bool ce_shares = kSoft && p.temperature == 1.0;
  const bool ce_stats = ce && !ce_shares;
  const bool need_s_stats = kSoft || ce;
  const bool write_grad = p.write_grad;
  // Non-temporal gradient stores when the gradient is far larger than the caches (kStreamBytes).
  const bool stream = write_grad && p.rows * V * int64_t(sizeof(scalar_t)) >= kStreamBytes;
  // d(alpha * T^2 * KL)/ds = alpha * T * d KL/du with u = s / T. Every gradient coefficient carries
  // grad_scale (a reduction's 1/count); the loss does not.
  const double gs = p.grad_scale;
  const acc_t gsoft = static_cast<acc_t>(soft_grad_factor<KIND>(double(alpha), p.temperature) * gs);
  const acc_t gmse = static_cast<acc_t>(2.0 * double(alpha) / double(V) * gs);
  const acc_t ce_wg = static_cast<acc_t>(double(ce_w) * gs);

  Scratch<acc_t> sc(V, kSoft, ce_stats, ce);
  acc_t* ES = sc.es.data();
  acc_t* ET = sc.et.data();
  acc_t* E1 = sc.e1.data();

  for (int64_t r = r0; r < r1; ++r) {
    const scalar_t* s = S + r * V;
    const scalar_t* t = kTeacher ? Tt + r * V : nullptr;
    scalar_t* g = write_grad ? G + r * V : nullptr;
    const int64_t y = p.has_labels ? Y[r] : -1;
    if (p.has_labels && y == p.ignore_index) {
      out_loss[r] = 0;
      if (g) std::fill(g, g + V, scalar_t(0));
      continue;
    }

    // ---- pass 1: statistics, one read of each input. Per block: the block max, then exps against
    // the running max (kept in scratch with the max they used); running sums are rescaled when the
    // max moves (online softmax at block granularity).
    double ms = neg_inf<double>(), mt = neg_inf<double>();
    double zs = 0, zt = 0, z1 = 0;
    // Reverse KL: A = sum e_s (u_s - ms/T), B = sum e_s (u_t - mt/T) give
    // KL(ps || pt) = (A - B)/zs - log zs + log zt without a pass over log-probabilities.
    double A = 0, B = 0;
    // NaN or +inf in a live logit (student, or the teacher of a soft kind) poisons the row: its
    // loss and gradient are NaN, as plain PyTorch's are, so a diverging run is never hidden. (A
    // NaN never wins a `>` against the running max, so without this check it would be skipped.)
    bool poisoned = false;
    if (need_s_stats) {
      for (int64_t b0 = 0, blk = 0; b0 < V && !poisoned; b0 += kBlock, ++blk) {
        const int64_t b1 = std::min(V, b0 + kBlock);
        Vec vms(neg_inf<acc_t>()), vmt(neg_inf<acc_t>());
        for (int64_t j = b0; j < b1; j += VS) {
          const int64_t n = std::min(VS, b1 - j);
          vms = at::vec::maximum(vms, load<scalar_t, acc_t>(s + j, n));
          if constexpr (kSoft) vmt = at::vec::maximum(vmt, load<scalar_t, acc_t>(t + j, n));
        }
        const double bms = hmax(vms);  // at::vec::maximum propagates NaN
        if (!(bms < std::numeric_limits<double>::infinity())) poisoned = true;
        if constexpr (kSoft) {
          if (!(hmax(vmt) < std::numeric_limits<double>::infinity())) poisoned = true;
        }
        if (poisoned) break;
        if (bms > ms) {
          if (zs > 0) {
            const double rs = std::exp((ms - bms) * invT);
            A = rs * (A + zs * (ms - bms) * invT);
            B = rs * B;
            zs *= rs;
          }
          if (z1 > 0) z1 *= std::exp(ms - bms);
          ms = bms;
        }
        if constexpr (kSoft) {
          const double bmt = hmax(vmt);
          if (bmt > mt) {
            if (zt > 0) zt *= std::exp((mt - bmt) * invT);
            if (KIND == kReverseKL && zs > 0 && std::isfinite(mt)) B += zs * (mt - bmt) * invT;
            mt = bmt;
          }
        }
        sc.ms_at[blk] = ms;
        sc.mt_at[blk] = mt;
        // A side that is masked in every element so far has no max to subtract yet: its exps are 0.
        const bool s_live = ms != neg_inf<double>();
        const bool t_live = kSoft && mt != neg_inf<double>();
        const Vec vms_b(static_cast<acc_t>(s_live ? ms : 0.0)), vmt_b(static_cast<acc_t>(t_live ? mt : 0.0));
        // us, ut are in log2 units ((x - max) log2 e / T): the exps are 2^u (vexp2), and the sums
        // formed from u (D, A, B) are turned back into natural units per block
        const Vec vinvT(static_cast<acc_t>(kLog2e / p.temperature)), vlog2e(static_cast<acc_t>(kLog2e)), zero(0);
        Vec vzs(0), vzt(0), vz1(0), vA(0), vB(0), vD(0);
        for (int64_t j = b0; j < b1; j += VS) {
          const int64_t n = std::min(VS, b1 - j);
          const Vec xs = load<scalar_t, acc_t>(s + j, n);
          if constexpr (kSoft) {
            const Vec us = (xs - vms_b) * vinvT;
            const Vec ut = (load<scalar_t, acc_t>(t + j, n) - vmt_b) * vinvT;
            const Vec es = s_live ? vexp2(us) : zero;
            const Vec et = t_live ? vexp2(ut) : zero;
            store_scratch(ES + j, es, n);
            store_scratch(ET + j, et, n);
            vzs += es;
            vzt += et;
            if (KIND == kReverseKL && s_live && t_live) {
              const Vec live = es > zero;
              vA += keep(live, es * us);
              vB += keep(live, es * ut);
            }
            if constexpr (KIND == kForwardKL) {
              // a tail's padding lanes are -inf on both sides: 0 * NaN, masked here; a masked logit
              // inside the block makes the sum NaN, and the block is summed again with masks below
              vD = n == VS ? at::vec::fmadd(et, ut - us, vD) : vD + keep(et > zero, et * (ut - us));
            }
          }
          if (!sc.e1.empty()) {
            const Vec e1 = s_live ? vexp2((xs - vms_b) * vlog2e) : zero;
            store_scratch(E1 + j, e1, n);
            vz1 += e1;
          }
        }
        const double bzt = hsum(vzt);
        if constexpr (KIND == kForwardKL) {
          double bd = hsum(vD);
          if (std::isnan(bd)) {
            vD = zero;
            for (int64_t j = b0; j < b1; j += VS) {
              const int64_t n = std::min(VS, b1 - j);
              const Vec us = (load<scalar_t, acc_t>(s + j, n) - vms_b) * vinvT;
              const Vec ut = (load<scalar_t, acc_t>(t + j, n) - vmt_b) * vinvT;
              const Vec et = load_scratch(ET + j, n);
              vD += keep(et > zero, et * (ut - us));
            }
            bd = hsum(vD);
          }
          sc.kl_d[blk] = bd * kLn2;
          sc.kl_z[blk] = bzt;
        }
        zs += hsum(vzs);
        zt += bzt;
        z1 += hsum(vz1);
        A += kLn2 * hsum(vA);
        B += kLn2 * hsum(vB);
      }
    }
    if (poisoned) {
      out_loss[r] = std::numeric_limits<acc_t>::quiet_NaN();
      if (g) std::fill(g, g + V, static_cast<scalar_t>(std::numeric_limits<acc_t>::quiet_NaN()));
      continue;
    }
    // read before pass 2: the gradient may be written over the student row (fused_distill_out)
    const double s_y = ce ? static_cast<double>(static_cast<acc_t>(s[y])) : 0.0;
    const double lzs = std::log(zs), lzt = std::log(zt);
    const double lz1 = ce_shares ? lzs : std::log(z1);
    const double f_rkl = KIND == kReverseKL ? (A - B) / zs - lzs + lzt : 0.0;

    // forward KL, both sides with a live logit: the loss from pass 1's block sums, pass 2 the gradient
    // alone (forward_kl_grad)
    const bool fast_kl = KIND == kForwardKL && std::isfinite(ms) && std::isfinite(mt);
    double distill = 0;
    if (fast_kl) {
      distill = forward_kl_from_blocks(sc.kl_d.data(), sc.kl_z.data(), sc.ms_at.data(), sc.mt_at.data(),
                                       int64_t(sc.kl_d.size()), ms, mt, zt, lzs, lzt, double(invT), double(T));
      if (g != nullptr) {
        CeGrad<acc_t> ceg;
        if (ce) ceg = {ce_wg, ce_shares ? nullptr : E1, z1, y};
        forward_kl_grad<scalar_t, acc_t>(g, V, ES, ET, sc.ms_at.data(), sc.mt_at.data(), ms, mt, zs, zt, double(invT),
                                         gsoft, ceg, stream);
      }
    }

    // ---- pass 2: loss and gradient. Probabilities are scratch exps times a per-block factor
    // exp((max at block - final max) / T) / z; log-probabilities come from the inputs.
    const Vec v_ms(static_cast<acc_t>(ms)), v_mt(static_cast<acc_t>(mt)), v_invT(invT);
    const Vec v_lzs(static_cast<acc_t>(lzs)), v_lzt(static_cast<acc_t>(lzt));
    const Vec v_beta(beta), v_1mbeta(acc_t(1) - beta), v_gsoft(gsoft), v_gmse(gmse), v_cew(ce_wg), zero(0);
    const Vec v_f(static_cast<acc_t>(f_rkl));
    const Vec v_gcoef(static_cast<acc_t>(double(gsoft) * row_sum_coef<KIND>(double(beta)))), one(1);
    Vec acc_a(0), acc_b(0);
    for (int64_t b0 = 0, blk = 0; b0 < V && !fast_kl; b0 += kBlock, ++blk) {
      const int64_t b1 = std::min(V, b0 + kBlock);
      const Vec fs(static_cast<acc_t>(std::exp((sc.ms_at[blk] - ms) * invT) / zs));
      const Vec ft(static_cast<acc_t>(std::exp((sc.mt_at[blk] - mt) * invT) / zt));
      const Vec f1(static_cast<acc_t>(std::exp(sc.ms_at[blk] - ms) / z1));
      for (int64_t j = b0; j < b1; j += VS) {
        const int64_t n = std::min(VS, b1 - j);
        const Vec xs = load<scalar_t, acc_t>(s + j, n);
        Vec grad(0);
        Vec ps(0);
        if constexpr (kSoft) {
          const Vec xt = load<scalar_t, acc_t>(t + j, n);
          const Vec ls = (xs - v_ms) * v_invT - v_lzs;
          const Vec lt = (xt - v_mt) * v_invT - v_lzt;
          ps = load_scratch(ES + j, n) * fs;
          const Vec pt = load_scratch(ET + j, n) * ft;
          const Vec ps_live = ps > zero, pt_live = pt > zero;
          if constexpr (KIND == kForwardKL) {
            acc_a += keep(pt_live, pt * (lt - ls));
            grad = v_gsoft * (ps - pt);
          } else if constexpr (KIND == kReverseKL) {
            const Vec d = ls - lt;
            acc_a += keep(ps_live, ps * d);
            grad = keep(ps_live, v_gsoft * ps * (d - v_f));
          } else if constexpr (KIND == kJSD) {
            // m can underflow to 0 while pt or ps is a denormal > 0; log(0) would turn their
            // negligible terms into inf. The reference uses log(1) = 0 there; so do we.
            const Vec m = v_beta * pt + v_1mbeta * ps;
            const Vec lm = keep(m > zero, m.log());
            acc_a += keep(pt_live, pt * (lt - lm));
            const Vec b = keep(ps_live, ps * (ls - lm));
            acc_b += b;
            grad = v_gsoft * v_1mbeta * b;  // the -ps * KL(ps||m) part is pass 3
          } else if constexpr (KIND == kTVD) {
            acc_a += (pt - ps).abs();
            // sign(ps - pt), 0 at ties (the subgradient autograd takes of |x| at 0)
            const Vec b = ps * (keep(ps > pt, one) - keep(ps < pt, one));
            acc_b += b;
            grad = v_gcoef * b;
          } else if constexpr (KIND == kSkewKL) {
            const Vec m = v_beta * pt + v_1mbeta * ps;  // log 0 where m is 0, as JSD
            const Vec m_live = m > zero;
            acc_a += keep(pt_live, pt * (lt - keep(m_live, m.log())));
            const Vec b = keep(m_live, pt * (ps / m));  // ps / m <= 1 / (1 - beta): no overflow
            acc_b += b;
            grad = v_gcoef * b;
          } else {  // skew reverse KL
            const Vec m = v_beta * ps + v_1mbeta * pt;
            const Vec m_live = m > zero;
            const Vec lm = keep(m_live, m.log());
            acc_a += keep(ps_live, ps * (ls - lm));
            const Vec b = keep(ps_live, ps * (ls - lm - v_beta * keep(m_live, ps / m)));
            acc_b += b;
            grad = v_gcoef * b;
          }
        } else if constexpr (KIND == kMSE) {
          const Vec xt = load<scalar_t, acc_t>(t + j, n);
          const Vec d = keep(xs != xt, xs - xt);  // both -inf: masked, not NaN
          acc_a += d * d;
          grad = v_gmse * d;
        }
        if (ce && write_grad) {
          const Vec p1 = ce_shares ? ps : load_scratch(E1 + j, n) * f1;
          grad += v_cew * p1;
          if (y >= j && y < j + VS) {
            grad -= keep(Vec::arange(static_cast<acc_t>(j), acc_t(1)) == Vec(static_cast<acc_t>(y)), v_cew);
          }
        }
        if (write_grad) {
          if constexpr (kRowSumGrad<KIND>) {
            store_scratch(ET + j, grad, n);  // kept in acc_t until pass 3: one rounding only
          } else {
            store_out<scalar_t, acc_t>(g + j, grad, n, stream);
          }
        }
      }
    }

    if (fast_kl) {
      // computed above
    } else if constexpr (KIND == kForwardKL || KIND == kReverseKL || KIND == kSkewKL || KIND == kSkewReverseKL) {
      distill = double(T) * T * hsum(acc_a);
    } else if constexpr (KIND == kTVD) {
      distill = 0.5 * double(hsum(acc_a));
    } else if constexpr (KIND == kJSD) {
      distill = double(T) * T * (beta * double(hsum(acc_a)) + (1.0 - beta) * double(hsum(acc_b)));
    } else if constexpr (KIND == kMSE) {
      distill = double(hsum(acc_a)) / double(V);
    }
    double row = double(alpha) * distill;
    if (ce) row += double(ce_w) * -(s_y - ms - lz1);
    out_loss[r] = static_cast<acc_t>(row);

    if constexpr (kRowSumGrad<KIND>) {
      if (write_grad) {
        const Vec v_fix(static_cast<acc_t>(double(gsoft) * row_sum_coef<KIND>(double(beta)) * hsum(acc_b)));
        for (int64_t b0 = 0, blk = 0; b0 < V; b0 += kBlock, ++blk) {
          const int64_t b1 = std::min(V, b0 + kBlock);
          const Vec fs(static_cast<acc_t>(std::exp((sc.ms_at[blk] - ms) * invT) / zs));
          for (int64_t j = b0; j < b1; j += VS) {
            const int64_t n = std::min(VS, b1 - j);
            const Vec ps = load_scratch(ES + j, n) * fs;
            store_out<scalar_t, acc_t>(g + j, load_scratch(ET + j, n) - v_fix * ps, n, stream);
          }
        }
      }
    }
  }
  if (stream) stream_fence();
}

// ---- Small-V path (V <= kSmallV: multiple-choice heads, V = 4). The row path above pays per row
// for vector reductions, partial loads and block bookkeeping, which dominate when a row is a few
// elements. Here a vector lane is a row: VS rows are transposed into V
// column vectors, the same formulas run lane-wise with no horizontal reductions, and the
// gradient is transposed back. Same semantics as distill_rows: -inf masks, ignored rows, NaN/+inf
// poisoning, CE at T = 1 sharing the soft statistics when T = 1.
constexpr int64_t kSmallV = 16;

template <typename scalar_t, typename acc_t, int64_t KIND>
void distill_rows_small(const DistillParams& p, const scalar_t* S, const scalar_t* Tt, const int64_t* Y,
                        acc_t* out_loss, scalar_t* G, int64_t r0, int64_t r1) {
  using Vec = Vectorized<acc_t>;
  constexpr int64_t VS = Vec::size();
  constexpr bool kSoft = kSoftKind<KIND>;
  constexpr bool kTeacher = KIND != kNoDistill;
  const int64_t V = p.cols;
  const acc_t invT = static_cast<acc_t>(1.0 / p.temperature);
  const acc_t alpha = KIND == kNoDistill ? acc_t(0) : static_cast<acc_t>(p.alpha);
  const bool ce = p.ce_on();
  const acc_t ce_w = ce ? static_cast<acc_t>(1.0 - (KIND == kNoDistill ? 0.0 : p.alpha)) : acc_t(0);
  const bool ce_shares = kSoft && p.temperature == 1.0;
  const acc_t T2 = static_cast<acc_t>(p.temperature * p.temperature);
  const Vec zero(0), inf(std::numeric_limits<acc_t>::infinity()), ninf(neg_inf<acc_t>());
  const double gs = p.grad_scale;  // gradient coefficients only, as in distill_rows
  const Vec v_invT(invT), v_gsoft(static_cast<acc_t>(soft_grad_factor<KIND>(double(alpha), p.temperature) * gs));
  const Vec v_gcoef(
      static_cast<acc_t>(soft_grad_factor<KIND>(double(alpha), p.temperature) * gs * row_sum_coef<KIND>(p.beta)));
  const Vec v_gmse(static_cast<acc_t>(2.0 * double(alpha) / double(V) * gs)), v_cew(ce_w);
  const Vec v_cewg(static_cast<acc_t>(double(ce_w) * gs));
  const Vec v_beta(static_cast<acc_t>(p.beta)), v_1mbeta(static_cast<acc_t>(1.0 - p.beta));
  const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();

  Vec xs[kSmallV], xt[kSmallV], us[kSmallV], ut[kSmallV], es[kSmallV], et[kSmallV], e1[kSmallV], gr[kSmallV];
  alignas(64) acc_t buf[VS];
  alignas(64) acc_t tile[kSmallV * VS];
  // A full group of VS rows is read column by column with one gather each (lane i of column j at
  // row i * V + j), from the input itself (float/double) or from the group converted to acc_t with
  // vector loads (bf16/fp16). Filling a buffer lane by lane and loading it instead stalls on store
  // forwarding and was the larger part of this path's time.
  using Idx = at::vec::int_same_size_t<acc_t>;
  constexpr bool kDirect = std::is_same_v<scalar_t, acc_t>;
  alignas(64) Idx lane_off[VS];
  for (int64_t i = 0; i < VS; ++i) lane_off[i] = static_cast<Idx>(i * V);
  const auto v_off = Vectorized<Idx>::loadu(lane_off);
  alignas(64) acc_t wide[2][kDirect ? 1 : kSmallV * VS];
  for (int64_t r = r0; r < r1; r += VS) {
    const int64_t n = std::min(VS, r1 - r);
    const auto column = [&](const scalar_t* X, int side, int64_t j) {
      if (n == VS) {
        if constexpr (kDirect)
          return at::vec::gather<sizeof(acc_t)>(X + r * V + j, v_off);
        else
          return at::vec::gather<sizeof(acc_t)>(wide[side] + j, v_off);
      }
      for (int64_t i = 0; i < VS; ++i) buf[i] = i < n ? static_cast<acc_t>(X[(r + i) * V + j]) : acc_t(0);
      return Vec::loadu(buf);
    };
    if constexpr (!kDirect) {
      if (n == VS) {
        for (int64_t k = 0; k < V * VS; k += VS) {
          load<scalar_t, acc_t>(S + r * V + k, VS).store(wide[0] + k);
          if constexpr (kTeacher) load<scalar_t, acc_t>(Tt + r * V + k, VS).store(wide[1] + k);
        }
      }
    }
    for (int64_t j = 0; j < V; ++j) {
      xs[j] = column(S, 0, j);
      if constexpr (kTeacher) xt[j] = column(Tt, 1, j);
    }
    // labels as acc_t lanes (exact for any V here); -1 never matches a column. Ignored rows as a
    // lane mask (all bits), applied to the loss and gradient at the end.
    Vec yv(-1), ignored(0);
    if (p.has_labels) {
      for (int64_t i = 0; i < VS; ++i)
        buf[i] = i < n ? static_cast<acc_t>(Y[r + i] == p.ignore_index ? -1 : Y[r + i]) : acc_t(-1);
      yv = Vec::loadu(buf);
      for (int64_t i = 0; i < VS; ++i) buf[i] = i < n && Y[r + i] == p.ignore_index ? acc_t(1) : acc_t(0);
      ignored = Vec::loadu(buf) != zero;
    }

    Vec ms = xs[0], mt = kSoft ? xt[0] : ninf;
    for (int64_t j = 1; j < V; ++j) {
      ms = at::vec::maximum(ms, xs[j]);  // propagates NaN
      if constexpr (kSoft) mt = at::vec::maximum(mt, xt[j]);
    }
    // NaN or +inf in a live student logit (mask lanes: all bits), as the row path judges it: only
    // where softmax statistics are formed (MSE alone stays elementwise, as F.mse_loss is)
    Vec bad = (kSoft || ce) ? (ms < inf) == zero : zero;
    if constexpr (kSoft) bad = bad | ((mt < inf) == zero);
    const Vec s_live = ms != ninf, t_live = mt != ninf;
    const Vec ms_b = keep(s_live, ms), mt_b = keep(t_live, mt);

    Vec loss(0);
    Vec lzs(0), lzt(0), lz1(0), zs(0), zt(0), z1(0), rz1(0);
    if (kSoft || ce) {
      for (int64_t j = 0; j < V; ++j) {
        if constexpr (kSoft) {
          us[j] = (xs[j] - ms_b) * v_invT;
          ut[j] = (xt[j] - mt_b) * v_invT;
          es[j] = keep(s_live, vexp(us[j]));
          et[j] = keep(t_live, vexp(ut[j]));
          zs += es[j];
          zt += et[j];
        }
        if (ce && !ce_shares) {
          e1[j] = keep(s_live, vexp(xs[j] - ms_b));
          z1 += e1[j];
        }
      }
      if constexpr (kSoft) {
        lzs = zs.log();
        lzt = zt.log();
      }
      lz1 = ce_shares ? lzs : z1.log();
      if (ce && !ce_shares) rz1 = z1.reciprocal();
    }

    if constexpr (kSoft) {
      // one reciprocal per group instead of a division per element (within an ulp of es / zs)
      const Vec rzs = zs.reciprocal(), rzt = zt.reciprocal();
      Vec a(0), b(0);
      for (int64_t j = 0; j < V; ++j) {
        const Vec ls = us[j] - lzs, lt = ut[j] - lzt;
        const Vec ps = es[j] * rzs, pt = et[j] * rzt;
        const Vec ps_live = ps > zero, pt_live = pt > zero;
        if constexpr (KIND == kForwardKL) {
          a += keep(pt_live, pt * (lt - ls));
          gr[j] = v_gsoft * (ps - pt);
        } else if constexpr (KIND == kReverseKL) {
          a += keep(ps_live, ps * (ls - lt));
        } else if constexpr (KIND == kJSD) {
          const Vec m = v_beta * pt + v_1mbeta * ps;
          const Vec lm = keep(m > zero, m.log());
          a += keep(pt_live, pt * (lt - lm));
          gr[j] = keep(ps_live, ps * (ls - lm));  // b_j, finished below
          b += gr[j];
        } else if constexpr (KIND == kTVD) {
          const Vec one(1);
          a += (pt - ps).abs();
          gr[j] = ps * (keep(ps > pt, one) - keep(ps < pt, one));
          b += gr[j];
        } else if constexpr (KIND == kSkewKL) {
          const Vec m = v_beta * pt + v_1mbeta * ps, m_live = m > zero;
          a += keep(pt_live, pt * (lt - keep(m_live, m.log())));
          gr[j] = keep(m_live, pt * (ps / m));
          b += gr[j];
        } else {  // skew reverse KL
          const Vec m = v_beta * ps + v_1mbeta * pt, m_live = m > zero;
          const Vec lm = keep(m_live, m.log());
          a += keep(ps_live, ps * (ls - lm));
          gr[j] = keep(ps_live, ps * (ls - lm - v_beta * keep(m_live, ps / m)));
          b += gr[j];
        }
        es[j] = ps;  // keep probabilities for the second loop and CE
      }
      for (int64_t j = 0; j < V; ++j) {
        const Vec ps = es[j];
        if constexpr (KIND == kReverseKL) {
          const Vec d = (us[j] - lzs) - (ut[j] - lzt);
          gr[j] = keep(ps > zero, v_gsoft * ps * (d - a));
        } else if constexpr (KIND == kJSD) {
          gr[j] = v_gsoft * v_1mbeta * (gr[j] - ps * b);
        } else if constexpr (kRowSumGrad<KIND>) {
          gr[j] = v_gcoef * (gr[j] - ps * b);
        }
      }
      if constexpr (KIND == kTVD) {
        loss = Vec(alpha * acc_t(0.5)) * a;
      } else {
        loss = Vec(alpha * T2) * (KIND == kJSD ? v_beta * a + v_1mbeta * b : a);
      }
    } else if constexpr (KIND == kMSE) {
      Vec a(0);
      for (int64_t j = 0; j < V; ++j) {
        const Vec d = keep(xs[j] != xt[j], xs[j] - xt[j]);  // both -inf: masked, not NaN
        a += d * d;
        gr[j] = v_gmse * d;
      }
      loss = Vec(alpha / static_cast<acc_t>(V)) * a;
    } else {
      for (int64_t j = 0; j < V; ++j) gr[j] = zero;
    }
    if (ce) {
      Vec sy(0);
      for (int64_t j = 0; j < V; ++j) {
        const Vec is_y = Vec(static_cast<acc_t>(j)) == yv;
        sy = Vec::blendv(sy, xs[j], is_y);
        const Vec p1 = ce_shares ? es[j] : e1[j] * rz1;
        gr[j] = gr[j] + v_cewg * p1 - keep(is_y, v_cewg);
      }
      loss = loss + v_cew * (ms_b + lz1 - sy);
    }

    // poisoned rows: NaN loss and gradient; ignored rows: 0 (before poisoning is looked at)
    const Vec v_nan(nan);
    loss = Vec::blendv(Vec::blendv(loss, v_nan, bad), zero, ignored);
    loss.store(out_loss + r, n);
    if (G != nullptr) {
      for (int64_t j = 0; j < V; ++j) Vec::blendv(Vec::blendv(gr[j], v_nan, bad), zero, ignored).store(tile + j * VS);
      scalar_t* g = G + r * V;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < V; ++j) g[i * V + j] = static_cast<scalar_t>(tile[j * VS + i]);
    }
  }
}

template <typename scalar_t, typename acc_t>
void launch(const DistillParams& p, const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels,
            at::Tensor& loss, at::Tensor& grad) {
  const scalar_t* S = student.const_data_ptr<scalar_t>();
  const scalar_t* Tt = teacher.defined() ? teacher.const_data_ptr<scalar_t>() : nullptr;
  const int64_t* Y = labels.defined() ? labels.const_data_ptr<int64_t>() : nullptr;
  acc_t* L = loss.mutable_data_ptr<acc_t>();
  scalar_t* G = p.write_grad ? grad.mutable_data_ptr<scalar_t>() : nullptr;
  // ~4K elements per task: small-V problems (multiple-choice heads, V = 4) still use every thread.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, p.cols));
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    const auto run = [&](auto kind) {
      constexpr int64_t K = decltype(kind)::value;
      if (p.cols <= kSmallV) return distill_rows_small<scalar_t, acc_t, K>(p, S, Tt, Y, L, G, r0, r1);
      return distill_rows<scalar_t, acc_t, K>(p, S, Tt, Y, L, G, r0, r1);
    };
    switch (p.kind) {
      case kNoDistill:
        return run(std::integral_constant<int64_t, kNoDistill>{});
      case kForwardKL:
        return run(std::integral_constant<int64_t, kForwardKL>{});
      case kReverseKL:
        return run(std::integral_constant<int64_t, kReverseKL>{});
      case kJSD:
        return run(std::integral_constant<int64_t, kJSD>{});
      case kMSE:
        return run(std::integral_constant<int64_t, kMSE>{});
      case kTVD:
        return run(std::integral_constant<int64_t, kTVD>{});
      case kSkewKL:
        return run(std::integral_constant<int64_t, kSkewKL>{});
      case kSkewReverseKL:
        return run(std::integral_constant<int64_t, kSkewReverseKL>{});
    }
  });
}

}  // namespace

void fused_distill_kernel(const DistillParams& p, const at::Tensor& student, const at::Tensor& teacher,
                          const at::Tensor& labels, at::Tensor& loss, at::Tensor& grad) {
  switch (student.scalar_type()) {
    case at::kFloat:
      return launch<float, float>(p, student, teacher, labels, loss, grad);
    case at::kDouble:
      return launch<double, double>(p, student, teacher, labels, loss, grad);
    case at::kBFloat16:
      return launch<c10::BFloat16, float>(p, student, teacher, labels, loss, grad);
    case at::kHalf:
      return launch<c10::Half, float>(p, student, teacher, labels, loss, grad);
    default:
      TORCH_CHECK_TYPE(false, "fused_distill: unsupported dtype ", student.scalar_type());
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace pylaundering::cpu
