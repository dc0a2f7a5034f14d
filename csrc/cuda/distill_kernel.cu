// Fused distillation loss, CUDA. Same math as csrc/cpu/distill_kernel.cpp (the reference):
// per row of V logits, loss = alpha * distill(s, t) + (1 - alpha) * CE(s, y), and the gradient
// d loss / d s written once, in the input dtype.
//
// Organisation
//   * A "row group" of threads owns one row: a whole block (128-512 threads) for V > 1024, one
//     warp for V <= 1024 (then a block holds 8 rows). Blocks walk rows grid-stride.
//   * Each thread takes 16-byte chunks of the row (4 x fp32, 2 x fp64, 8 x bf16/fp16) round-robin.
//     Student, teacher and grad share their alignment, so every row splits into a scalar head
//     (until the row pointer is 16-byte aligned), 16-byte chunks, and a scalar tail; the at most
//     2 * (VEC - 1) scalar elements go one per thread. So odd vocabularies (GPT-2's 50257) still
//     get vector loads; only inputs whose pointers are misaligned against each other fall back
//     to a scalar kernel (VEC = 1).
//   * Row-cluster mode (opt-in, sm_90+; PYLAUNDERING_CUDA_ROW_CLUSTER=2|4|8): a cluster of 2-8
//     blocks owns each long row, merging the blocks' partial results through distributed shared
//     memory, and only as many rows are in flight as fit in half the L2. Pass 2 then re-reads its
//     row from L2 instead of HBM. Measured on the H200, the default kernel moves 5 element-passes
//     of HBM traffic instead of 3 at 4096 x 128256 bf16 (docs/performance.md). The mode has not
//     run on a GPU yet: tests/ops/test_cuda_row_cluster.py and `make gpu-check` measure it.
//   * pass 1 (statistics): per thread, online softmax of student and teacher (running max,
//     sum rescaled when the max moves; the max is updated per 16-byte chunk, so rescaling is
//     rare and each element costs one exp per side),
//     plus CE's T = 1 sum when T != 1 and reverse KL's A and B sums (see RowStats). Threads'
//     states are merged with the same rescaling rule: warp shuffles, then shared memory.
//   * pass 2 (loss + gradient): log-probabilities from the statistics, the row's loss terms
//     (reduced like pass 1, plain sums), the gradient stored once.
//   * JSD: its gradient needs KL(ps || m) of the whole row. The CPU kernel stores a partial
//     gradient and fixes it up in pass 3; here pass 2 only sums and pass 3 recomputes the
//     element terms and stores the finished gradient: one store, no read-modify-write of the
//     gradient (pass 3 reads the teacher instead), and one bf16/fp16 rounding instead of two.
// Reductions use fixed trees (no atomics), so results are deterministic run to run.
// Accumulation is in acc_t: float for fp32/bf16/fp16 inputs, double for fp64. Per-row scalars
// that the CPU kernel forms in double (the row's loss) are formed in double here too.
//
// Masked logits (-inf) follow the CPU kernel: probability 0, no loss, no gradient, and masks are
// applied by selecting, never by multiplying by 0, so 0 * inf never makes a NaN.
//
// The per-thread pieces (pass1_partial, pass2_partial, ...) are __host__ __device__ and take the
// thread index explicitly: the kernel composes them with warp/block reductions, and a host
// emulation can run the same code without a GPU.
#include "cuda/distill_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <utility>
#include <type_traits>

#include "cuda/device_util.cuh"

namespace pylaundering::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kMaxThreads = 512;  // largest row group (block mode)
constexpr int kMaxWarps = kMaxThreads / kWarp;
constexpr int64_t kWarpRowMaxCols = 1024;  // V up to this: one warp per row
constexpr int kRowsPerWarpBlock = 8;       // warp mode: 8 rows (256 threads) per block
// ---------------------------------------------------------------- parameters

// Kernel-side copy of DistillParams with the derived constants, formed on the host exactly as
// the CPU kernel forms them (in acc_t).
template <typename acc_t>
struct KernelArgs {
  int64_t rows;
  int64_t cols;
  int64_t ignore_index;
  acc_t T, invT, alpha, beta, ce_w, gsoft, gmse;
  acc_t ce_wg;  // ce_w times grad_scale: gradient coefficients carry the scale, the loss does not
  bool has_labels;
  bool ce;         // cross-entropy term on (labels and alpha < 1)
  bool ce_shares;  // CE at T = 1 reuses the soft term's student statistics (soft kind, T == 1)
  bool write_grad;
};

template <int KIND>
struct KindTraits {
  static constexpr bool soft = kSoftKind<KIND>;
  static constexpr bool teacher = KIND != kNoDistill;
  static constexpr bool rkl = KIND == kReverseKL;
  // the gradient needs a sum over the whole row: stored in pass 3 (distill_element's comment)
  static constexpr bool row_sum = kRowSumGrad<KIND>;
};

// ---------------------------------------------------------------- pass 1: statistics

// Online-softmax state of (part of) a row. Sums are relative to the running maxima:
//   zs = sum exp(us), us = (s - ms) / T        z1 = sum exp(s - ms)   (CE at T = 1)
//   zt = sum exp(ut), ut = (t - mt) / T
//   A  = sum es * us,  B = sum es * ut  (es = exp(us) > 0; reverse KL only), which give
//   KL(ps || pt) = A/zs - log zs - B/zs + log zt without a pass over log-probabilities.
// A side whose maximum is still -inf has all-zero sums. B is -inf when a live student element
// meets a masked teacher element (the KL is then infinite); rescaling leaves that -inf alone.
// bad counts NaN / +inf live logits (student, or the teacher of a soft kind): such a row's loss
// and gradient are NaN, as plain PyTorch's are (a NaN never wins a `>` against the running max,
// so without the count it would be skipped). A count (not a bool) so shuffles move one acc_t.
template <typename acc_t>
struct RowStats {
  acc_t ms, zs, z1;
  acc_t mt, zt;
  acc_t A, B;
  acc_t bad;
};

template <typename acc_t>
__host__ __device__ inline RowStats<acc_t> stats_identity() {
  return {neg_inf<acc_t>(), 0, 0, neg_inf<acc_t>(), 0, 0, 0, 0};
}

// Re-expresses st relative to larger maxima (ms_new >= st.ms, mt_new >= st.mt); the CPU
// kernel's block rescaling rule.
template <bool RKL, typename acc_t>
__host__ __device__ inline void rebase(RowStats<acc_t>& st, acc_t ms_new, acc_t mt_new, acc_t invT) {
  if (ms_new > st.ms) {
    if (st.zs > 0) {
      const acc_t d = (st.ms - ms_new) * invT;
      const acc_t rs = fast_exp(d);
      if constexpr (RKL) {
        st.A = rs * (st.A + st.zs * d);  // us -> us + d, es -> es * rs
        if (st.B != neg_inf<acc_t>()) st.B = rs * st.B;
      }
      st.zs *= rs;
    }
    if (st.z1 > 0) st.z1 *= fast_exp(st.ms - ms_new);
    st.ms = ms_new;
  }
  if (mt_new > st.mt) {
    if (st.zt > 0) st.zt *= fast_exp((st.mt - mt_new) * invT);
    // ut -> ut + (mt - mt_new) / T for every element in B, which carry weight zs in total.
    // If mt was -inf, B is 0 (no live student yet) or -inf, and stays so.
    if (RKL && st.zs > 0 && st.mt != neg_inf<acc_t>()) st.B += st.zs * (st.mt - mt_new) * invT;
    st.mt = mt_new;
  }
}

// Merge of two partial states. Symmetric bit for bit (max, then independent rebases, then
// commutative adds), so a butterfly leaves every lane with the same value.
template <bool RKL, typename acc_t>
__host__ __device__ inline RowStats<acc_t> merge_stats(RowStats<acc_t> a, RowStats<acc_t> b, acc_t invT) {
  const acc_t ms = amax(a.ms, b.ms), mt = amax(a.mt, b.mt);
  rebase<RKL>(a, ms, mt, invT);
  rebase<RKL>(b, ms, mt, invT);
  return {ms, a.zs + b.zs, a.z1 + b.z1, mt, a.zt + b.zt, a.A + b.A, a.B + b.B, a.bad + b.bad};
}

// This thread's statistics over its share of the row.
template <typename scalar_t, int KIND, int VEC>
__host__ __device__ inline RowStats<acc_type<scalar_t>> pass1_partial(const KernelArgs<acc_type<scalar_t>>& a,
                                                                      const scalar_t* s, const scalar_t* t,
                                                                      int64_t head, int tid, int nthr) {
  using acc_t = acc_type<scalar_t>;
  using K = KindTraits<KIND>;
  const acc_t invT = a.invT;
  const bool ce_stats = a.ce && !a.ce_shares;
  RowStats<acc_t> st = stats_identity<acc_t>();
  for_each_chunk<VEC>(a.cols, head, tid, nthr, [&](auto w, int64_t j) {
    constexpr int W = decltype(w)::value;
    acc_t xs[W];
    [[maybe_unused]] acc_t xt[W];  // teacher logits: soft kinds only
    load_chunk<scalar_t, W>(s + j, xs);
    acc_t cms = xs[0], cmt = neg_inf<acc_t>();
    const acc_t inf = -neg_inf<acc_t>();
#pragma unroll
    for (int e = 0; e < W; ++e) {
      cms = amax(cms, xs[e]);
      if (!(xs[e] < inf)) st.bad += 1;
    }
    if constexpr (K::soft) {
      load_chunk<scalar_t, W>(t + j, xt);
#pragma unroll
      for (int e = 0; e < W; ++e) {
        cmt = amax(cmt, xt[e]);
        if (!(xt[e] < inf)) st.bad += 1;
      }
    }
    rebase<K::rkl>(st, amax(st.ms, cms), amax(st.mt, cmt), invT);
    // A side masked in every element so far has no max to subtract yet (and -inf - -inf = NaN).
    const bool s_live = st.ms != neg_inf<acc_t>();
    [[maybe_unused]] const bool t_live = K::soft && st.mt != neg_inf<acc_t>();
#pragma unroll
    for (int e = 0; e < W; ++e) {
      if constexpr (K::soft) {
        const acc_t ut = t_live ? (xt[e] - st.mt) * invT : neg_inf<acc_t>();
        if (s_live) {
          const acc_t us = (xs[e] - st.ms) * invT;
          const acc_t es = fast_exp(us);
          st.zs += es;
          if constexpr (K::rkl) {
            if (es > 0) {
              st.A += es * us;
              st.B += es * ut;
            }
          }
        }
        if (t_live) st.zt += fast_exp(ut);
      }
      if (ce_stats && s_live) st.z1 += fast_exp(xs[e] - st.ms);
    }
  });
  return st;
}

// ---------------------------------------------------------------- pass 2: loss and gradient

// What pass 2 needs of a row, once its statistics are known.
template <typename acc_t>
struct RowConsts {
  acc_t ms, mt, invT, lzs, lzt, lz1;
  acc_t beta, one_m_beta, gsoft, gmse, ce_wg;
  acc_t f_rkl;  // reverse KL of the row (its gradient needs it)
  acc_t gcoef;  // row-sum kinds: gsoft * coef (row_sum_coef)
  acc_t fix;    // row-sum kinds' pass 3: gcoef * sum b over the row (JSD: KL(ps || m)); 0 otherwise
  bool ce, ce_shares;
};

// The factor of a row-sum kind's gradient: d loss / d u_j = coef * (b_j - ps_j sum b), u = s / T, with
// b_j of the kind (JSD: ps (ls - lm); TVD: ps sign(ps - pt); skew KL: pt ps / m; skew reverse KL:
// ps (ls - lm - beta ps / m)).
template <int KIND>
__host__ __device__ inline double row_sum_coef(double beta) {
  if constexpr (KIND == kJSD) return 1.0 - beta;
  if constexpr (KIND == kTVD) return 0.5;
  if constexpr (KIND == kSkewKL) return -(1.0 - beta);
  return 1.0;
}

template <int KIND, typename acc_t>
__host__ __device__ inline RowConsts<acc_t> make_row_consts(const KernelArgs<acc_t>& a, const RowStats<acc_t>& st) {
  RowConsts<acc_t> c;
  c.ms = st.ms;
  c.mt = st.mt;
  c.invT = a.invT;
  c.lzs = exact_log(st.zs);
  c.lzt = exact_log(st.zt);
  c.lz1 = a.ce_shares ? c.lzs : exact_log(st.z1);
  c.f_rkl = KIND == kReverseKL ? (st.A - st.B) / st.zs - c.lzs + c.lzt : acc_t(0);
  c.beta = a.beta;
  c.one_m_beta = acc_t(1) - a.beta;
  c.gsoft = a.gsoft;
  c.gmse = a.gmse;
  c.ce_wg = a.ce_wg;
  c.gcoef = static_cast<acc_t>(double(a.gsoft) * row_sum_coef<KIND>(double(a.beta)));
  c.fix = 0;
  c.ce = a.ce;
  c.ce_shares = a.ce_shares;
  return c;
}

// Loss terms of a row (or a thread's share of it): `a` is the KL / MSE sum, `b` JSD's KL(ps||m).
template <typename acc_t>
struct Sums {
  acc_t a, b;
};

// One element's distillation gradient (before CE and a row-sum kind's row term), adding its loss terms
// to sums (`a` the divergence, `b` the row-sum kind's sum b). ps returns softmax(s/T) at the element (0
// for non-soft kinds).
template <int KIND, typename acc_t>
__host__ __device__ inline acc_t distill_element(acc_t xs, acc_t xt, const RowConsts<acc_t>& c, Sums<acc_t>& sums,
                                                 acc_t& ps_out) {
  acc_t grad = 0;
  ps_out = 0;
  if constexpr (KindTraits<KIND>::soft) {
    const acc_t ls = (xs - c.ms) * c.invT - c.lzs;
    const acc_t lt = (xt - c.mt) * c.invT - c.lzt;
    const acc_t ps = fast_exp(ls), pt = fast_exp(lt);
    ps_out = ps;
    if constexpr (KIND == kForwardKL) {
      if (pt > 0) sums.a += pt * (lt - ls);
      grad = c.gsoft * (ps - pt);
    } else if constexpr (KIND == kReverseKL) {
      const acc_t d = ls - lt;
      if (ps > 0) {
        sums.a += ps * d;
        grad = c.gsoft * ps * (d - c.f_rkl);
      }
    } else if constexpr (KIND == kJSD) {
      // m can be 0 or denormal while pt or ps is not 0 (beta * pt underflows); log would give
      // -inf there (__logf flushes denormal inputs to 0) and turn a negligible term into inf.
      // The reference uses log 1 where m is 0; below the smallest normal, so do we: the terms
      // it feeds are then of size pt * |lt| < 1e-30.
      const acc_t m = c.beta * pt + c.one_m_beta * ps;
      const acc_t lm = m >= min_normal<acc_t>() ? fast_log(m) : acc_t(0);
      if (pt > 0) sums.a += pt * (lt - lm);
      const acc_t b = ps > 0 ? ps * (ls - lm) : acc_t(0);
      sums.b += b;
      grad = c.gsoft * c.one_m_beta * b;  // the -ps * KL(ps||m) part needs the whole row: pass 3
    } else if constexpr (KIND == kTVD) {
      sums.a += pt > ps ? pt - ps : ps - pt;
      // sign(ps - pt), 0 at ties (the subgradient autograd takes of |x| at 0)
      const acc_t b = ps > pt ? ps : (ps < pt ? -ps : acc_t(0));
      sums.b += b;
      grad = c.gcoef * b;
    } else if constexpr (KIND == kSkewKL) {
      // m below the smallest normal: log 1 and no gradient term, as JSD (the terms are < 1e-30)
      const acc_t m = c.beta * pt + c.one_m_beta * ps;
      const bool m_live = m >= min_normal<acc_t>();
      const acc_t lm = m_live ? fast_log(m) : acc_t(0);
      if (pt > 0) sums.a += pt * (lt - lm);
      const acc_t b = m_live ? pt * (ps / m) : acc_t(0);  // ps / m <= 1 / (1 - beta)
      sums.b += b;
      grad = c.gcoef * b;
    } else if constexpr (KIND == kSkewReverseKL) {
      const acc_t m = c.beta * ps + c.one_m_beta * pt;
      const bool m_live = m >= min_normal<acc_t>();
      const acc_t lm = m_live ? fast_log(m) : acc_t(0);
      acc_t b = 0;
      if (ps > 0) {
        sums.a += ps * (ls - lm);
        b = ps * (ls - lm - (m_live ? c.beta * (ps / m) : acc_t(0)));
      }
      sums.b += b;
      grad = c.gcoef * b;
    }
  } else if constexpr (KIND == kMSE) {
    const acc_t d = xs != xt ? xs - xt : acc_t(0);  // both -inf: masked, not NaN
    sums.a += d * d;
    grad = c.gmse * d;
  }
  return grad;
}

// This thread's share of pass 2 (or JSD's pass 3): adds the loss terms to the returned sums
// and, when g is non-null, stores the gradient. y is the row's label (CE only).
template <typename scalar_t, int KIND, int VEC>
__host__ __device__ inline Sums<acc_type<scalar_t>> pass2_partial(const KernelArgs<acc_type<scalar_t>>& a,
                                                                  const RowConsts<acc_type<scalar_t>>& c,
                                                                  const scalar_t* s, const scalar_t* t, scalar_t* g,
                                                                  int64_t y, int64_t head, int tid, int nthr) {
  using acc_t = acc_type<scalar_t>;
  Sums<acc_t> sums{0, 0};
  for_each_chunk<VEC>(a.cols, head, tid, nthr, [&](auto w, int64_t j) {
    constexpr int W = decltype(w)::value;
    acc_t xs[W], xt[W], grad[W];
    load_chunk<scalar_t, W>(s + j, xs);
    if constexpr (KindTraits<KIND>::teacher) {
      load_chunk<scalar_t, W>(t + j, xt);
    } else {
#pragma unroll
      for (int e = 0; e < W; ++e) xt[e] = 0;
    }
#pragma unroll
    for (int e = 0; e < W; ++e) {
      acc_t ps;
      grad[e] = distill_element<KIND>(xs[e], xt[e], c, sums, ps);
      if (g != nullptr) {
        if (c.ce) {
          const acc_t p1 = c.ce_shares ? ps : fast_exp((xs[e] - c.ms) - c.lz1);
          grad[e] += c.ce_wg * p1;
          if (j + e == y) grad[e] -= c.ce_wg;
        }
        if constexpr (KindTraits<KIND>::row_sum) grad[e] -= c.fix * ps;
      }
    }
    if (g != nullptr) store_chunk<scalar_t, W>(g + j, grad);
  });
  return sums;
}

// The row's loss from the reduced sums; double where the CPU kernel uses double.
template <typename scalar_t, int KIND>
__host__ __device__ inline acc_type<scalar_t> row_loss(const KernelArgs<acc_type<scalar_t>>& a,
                                                       const RowConsts<acc_type<scalar_t>>& c,
                                                       const Sums<acc_type<scalar_t>>& sums, const scalar_t* s,
                                                       int64_t y) {
  using acc_t = acc_type<scalar_t>;
  const double T = a.T;
  double distill = 0;
  if constexpr (KIND == kForwardKL || KIND == kReverseKL || KIND == kSkewKL || KIND == kSkewReverseKL) {
    distill = T * T * double(sums.a);
  } else if constexpr (KIND == kTVD) {
    distill = 0.5 * double(sums.a);
  } else if constexpr (KIND == kJSD) {
    const double beta = a.beta;
    distill = T * T * (beta * double(sums.a) + (1.0 - beta) * double(sums.b));
  } else if constexpr (KIND == kMSE) {
    distill = double(sums.a) / double(a.cols);
  }
  double row = double(a.alpha) * distill;
  if (a.ce) {
    // The host checks labels, except while a CUDA graph is being captured (no sync possible);
    // an out-of-range label then gives a NaN loss instead of an out-of-bounds read.
    if (y < 0 || y >= a.cols) return static_cast<acc_t>(NAN);
    row += double(a.ce_w) * -(double(to_acc(s[y])) - double(c.ms) - double(c.lz1));
  }
  return static_cast<acc_t>(row);
}

// A row-sum kind's pass-3 per-row constant (the CPU kernel's v_fix).
template <int KIND, typename acc_t>
__host__ __device__ inline acc_t row_sum_fix(const RowConsts<acc_t>& c, const Sums<acc_t>& sums) {
  return static_cast<acc_t>(double(c.gsoft) * row_sum_coef<KIND>(double(c.beta)) * double(sums.b));
}

template <typename scalar_t, int VEC>
__host__ __device__ inline void fill_partial(scalar_t* g, int64_t V, int64_t head, int tid, int nthr,
                                             acc_type<scalar_t> value) {
  for_each_chunk<VEC>(V, head, tid, nthr, [&](auto w, int64_t j) {
    constexpr int W = decltype(w)::value;
    acc_type<scalar_t> z[W];
#pragma unroll
    for (int e = 0; e < W; ++e) z[e] = value;
    store_chunk<scalar_t, W>(g + j, z);
  });
}

// ---------------------------------------------------------------- reductions (device)

template <typename acc_t>
__device__ inline RowStats<acc_t> shfl_xor(const RowStats<acc_t>& v, int m) {
  constexpr unsigned kAll = 0xffffffffu;
  return {__shfl_xor_sync(kAll, v.ms, m), __shfl_xor_sync(kAll, v.zs, m), __shfl_xor_sync(kAll, v.z1, m),
          __shfl_xor_sync(kAll, v.mt, m), __shfl_xor_sync(kAll, v.zt, m), __shfl_xor_sync(kAll, v.A, m),
          __shfl_xor_sync(kAll, v.B, m),  __shfl_xor_sync(kAll, v.bad, m)};
}

template <typename acc_t>
__device__ inline Sums<acc_t> shfl_xor(const Sums<acc_t>& v, int m) {
  constexpr unsigned kAll = 0xffffffffu;
  return {__shfl_xor_sync(kAll, v.a, m), __shfl_xor_sync(kAll, v.b, m)};
}

// ---------------------------------------------------------------- row groups

// Who shares a row and how they all-reduce over it. Two kinds:
//   BlockRowGroup:   the warp (warp mode) or the block (block mode) of the default kernel.
//   ClusterRowGroup: the blocks of a thread-block cluster (sm_90+), for long rows. With one row
//     per cluster, few enough rows are in flight that the statistics pass leaves each row in L2
//     for the gradient pass: HBM sees the minimal 3 element-passes instead of 5. Opt-in while it is
//     unmeasured on a GPU (see row_cluster_plan below).
// In both, tid / nthr number the threads of the row group, and every branch that depends on the
// row is uniform per group (the all-reductions' barriers need that).
struct BlockRowGroup {
  __device__ int tid() const { return threadIdx.x; }
  __device__ int nthr() const { return blockDim.x; }
  __device__ int64_t first_row() const { return int64_t(blockIdx.x) * blockDim.y + threadIdx.y; }
  __device__ int64_t row_stride() const { return int64_t(gridDim.x) * blockDim.y; }
  template <typename T, typename Merge>
  __device__ T allreduce(T v, const Merge& merge, const T& identity, T* smem, T* /*cluster_slot*/) const {
    return group_allreduce(v, merge, identity, smem);
  }
};

// Blocks of a 1-D cluster have consecutive blockIdx.x, so cluster i is blocks [i * size, (i + 1) * size).
// Compiled for sm_90+ only; the host launches the cluster kernel only when the binary it would run
// was built for sm_90+ from PTX of sm_90+ (query_capacity checks the kernel's binaryVersion and
// ptxVersion: a compute_80 PTX JIT-compiled on sm_90 has binaryVersion 90 but was compiled with
// __CUDA_ARCH__ 800, so its constructor traps).
struct ClusterRowGroup {
  unsigned rank = 0, size = 1;
  __device__ ClusterRowGroup() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const cg::cluster_group cluster = cg::this_cluster();
    rank = cluster.block_rank();
    size = cluster.num_blocks();
#else
    __trap();
#endif
  }
  __device__ int tid() const { return int(rank * blockDim.x + threadIdx.x); }
  __device__ int nthr() const { return int(size * blockDim.x); }
  __device__ int64_t first_row() const { return int64_t(blockIdx.x / size); }
  __device__ int64_t row_stride() const { return int64_t(gridDim.x / size); }
  // The block's value (every thread holds it after group_allreduce) is published in the block's
  // slot; every block then merges all slots in rank order, so all blocks get the same bits.
  template <typename T, typename Merge>
  __device__ T allreduce(T v, const Merge& merge, const T& identity, T* smem, T* cluster_slot) const {
    v = group_allreduce(v, merge, identity, smem);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const cg::cluster_group cluster = cg::this_cluster();
    if (threadIdx.x == 0) *cluster_slot = v;
    cluster.sync();  // all slots written and visible cluster-wide
    T r = *cluster.map_shared_rank(cluster_slot, 0);
    for (unsigned k = 1; k < size; ++k) r = merge(r, *cluster.map_shared_rank(cluster_slot, k));
    cluster.sync();  // no block rewrites its slot, or exits, while another block still reads it
    return r;
#else
    return v;
#endif
  }
};

// ---------------------------------------------------------------- the kernels

// The rows of one row group, walked grid-stride. S/Tt/G rows share their misalignment (checked on
// the host).
template <typename scalar_t, int KIND, int VEC, typename Group>
__device__ inline void distill_rows(const Group& grp, const KernelArgs<acc_type<scalar_t>>& a,
                                    const scalar_t* __restrict__ S, const scalar_t* __restrict__ Tt,
                                    const int64_t* __restrict__ Y, acc_type<scalar_t>* __restrict__ L,
                                    scalar_t* __restrict__ G) {
  using acc_t = acc_type<scalar_t>;
  using K = KindTraits<KIND>;
  __shared__ RowStats<acc_t> smem_stats[kMaxWarps];
  __shared__ Sums<acc_t> smem_sums[kMaxWarps];
  __shared__ RowStats<acc_t> slot_stats;  // cluster mode only
  __shared__ Sums<acc_t> slot_sums;

  const int tid = grp.tid(), nthr = grp.nthr();
  const int64_t V = a.cols;
  const auto merge_st = [invT = a.invT](const RowStats<acc_t>& x, const RowStats<acc_t>& y) {
    return merge_stats<K::rkl>(x, y, invT);
  };
  const auto add_sums = [](const Sums<acc_t>& x, const Sums<acc_t>& y) { return Sums<acc_t>{x.a + y.a, x.b + y.b}; };

  for (int64_t row = grp.first_row(); row < a.rows; row += grp.row_stride()) {
    const scalar_t* s = S + row * V;
    const scalar_t* t = K::teacher ? Tt + row * V : nullptr;
    scalar_t* g = a.write_grad ? G + row * V : nullptr;
    const int64_t head = row_head<scalar_t, VEC>(s);
    const int64_t y = a.has_labels ? Y[row] : int64_t(-1);

    if (a.has_labels && y == a.ignore_index) {  // ignored row: loss 0, gradient 0
      if (tid == 0) L[row] = 0;
      if (g != nullptr) fill_partial<scalar_t, VEC>(g, V, head, tid, nthr, acc_t(0));
      continue;
    }

    RowStats<acc_t> st = stats_identity<acc_t>();
    if (K::soft || a.ce) {
      st = pass1_partial<scalar_t, KIND, VEC>(a, s, t, head, tid, nthr);
      st = grp.allreduce(st, merge_st, stats_identity<acc_t>(), smem_stats, &slot_stats);
      if (st.bad > 0) {  // uniform per row group (all-reduced)
        if (tid == 0) L[row] = static_cast<acc_t>(NAN);
        if (g != nullptr) fill_partial<scalar_t, VEC>(g, V, head, tid, nthr, static_cast<acc_t>(NAN));
        continue;
      }
    }
    RowConsts<acc_t> c = make_row_consts<KIND>(a, st);

    // A row-sum kind stores its gradient in pass 3, once the row's sum (JSD: KL(ps || m)) is known.
    scalar_t* g2 = K::row_sum ? nullptr : g;
    Sums<acc_t> sums = pass2_partial<scalar_t, KIND, VEC>(a, c, s, t, g2, y, head, tid, nthr);
    sums = grp.allreduce(sums, add_sums, Sums<acc_t>{0, 0}, smem_sums, &slot_sums);
    if (tid == 0) L[row] = row_loss<scalar_t, KIND>(a, c, sums, s, y);

    if constexpr (K::row_sum) {
      if (g != nullptr) {
        c.fix = row_sum_fix<KIND>(c, sums);
        pass2_partial<scalar_t, KIND, VEC>(a, c, s, t, g, y, head, tid, nthr);
      }
    }
  }
}

// Group = BlockRowGroup: blockDim = (row group size, rows per block), (32, 8) in warp mode and
// (128..512, 1) in block mode; blockDim.x is a multiple of 32. Group = ClusterRowGroup: launched
// with a 1-D cluster of 2, 4 or 8 blocks of kMaxThreads threads, one row per cluster.
template <typename scalar_t, int KIND, int VEC, typename Group>
__global__ void __launch_bounds__(kMaxThreads)
    fused_distill_kernel(const KernelArgs<acc_type<scalar_t>> a, const scalar_t* __restrict__ S,
                         const scalar_t* __restrict__ Tt, const int64_t* __restrict__ Y,
                         acc_type<scalar_t>* __restrict__ L, scalar_t* __restrict__ G) {
  distill_rows<scalar_t, KIND, VEC>(Group{}, a, S, Tt, Y, L, G);
}

// Calls f(std::integral_constant<int, KIND>{}) for the run-time kind (unknown kinds were rejected by
// make_distill_params).
template <typename F>
void with_kind(int64_t kind, F&& f) {
  switch (kind) {
    case kNoDistill:
      f(std::integral_constant<int, kNoDistill>{});
      break;
    case kForwardKL:
      f(std::integral_constant<int, kForwardKL>{});
      break;
    case kReverseKL:
      f(std::integral_constant<int, kReverseKL>{});
      break;
    case kJSD:
      f(std::integral_constant<int, kJSD>{});
      break;
    case kMSE:
      f(std::integral_constant<int, kMSE>{});
      break;
    case kTVD:
      f(std::integral_constant<int, kTVD>{});
      break;
    case kSkewKL:
      f(std::integral_constant<int, kSkewKL>{});
      break;
    case kSkewReverseKL:
      f(std::integral_constant<int, kSkewReverseKL>{});
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- host side

template <typename acc_t>
KernelArgs<acc_t> make_kernel_args(const DistillParams& p) {
  KernelArgs<acc_t> a;
  a.rows = p.rows;
  a.cols = p.cols;
  a.ignore_index = p.ignore_index;
  a.T = static_cast<acc_t>(p.temperature);
  a.invT = acc_t(1) / a.T;
  a.alpha = p.kind == kNoDistill ? acc_t(0) : static_cast<acc_t>(p.alpha);
  a.beta = static_cast<acc_t>(p.beta);
  a.has_labels = p.has_labels;
  a.ce = p.ce_on();
  a.ce_w = a.ce ? acc_t(1) - a.alpha : acc_t(0);
  a.ce_shares = is_soft_kind(p.kind) && a.invT == acc_t(1);
  a.write_grad = p.write_grad;
  // d(alpha * T^2 * KL)/ds = alpha * T * d KL/du with u = s / T (TVD, not times T^2: alpha / T). The
  // gradient coefficients carry
  // grad_scale (a reduction's 1/count, folded in so backward need not rescale); computed in double
  // and rounded once, as the CPU kernel does.
  const double gs = p.grad_scale;
  a.gsoft = static_cast<acc_t>(double(a.alpha) * (p.kind == kTVD ? 1.0 / double(a.T) : double(a.T)) * gs);
  a.gmse = static_cast<acc_t>(double(a.alpha) * 2.0 / static_cast<double>(p.cols) * gs);
  a.ce_wg = static_cast<acc_t>(double(a.ce_w) * gs);
  return a;
}

struct LaunchConfig {
  dim3 grid, block;
};

// Warp per row for short rows (a block-wide barrier would cost more than the row), otherwise a
// block per row sized for roughly 8-32 chunks per thread.
inline LaunchConfig choose_config(int64_t rows, int64_t cols, int vec) {
  LaunchConfig cfg;
  int64_t blocks;
  if (cols <= kWarpRowMaxCols) {
    cfg.block = dim3(kWarp, kRowsPerWarpBlock);
    blocks = (rows + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock;
  } else {
    const int64_t chunks = cols / vec;
    const int threads = chunks <= 1024 ? 128 : chunks <= 4096 ? 256 : kMaxThreads;
    cfg.block = dim3(threads, 1);
    blocks = rows;
  }
  // Rows beyond the grid are walked grid-stride.
  cfg.grid = dim3(static_cast<unsigned>(blocks < INT_MAX ? blocks : INT_MAX));
  return cfg;
}

// ---------------------------------------------------------------- row-cluster mode (opt-in)

// PYLAUNDERING_CUDA_ROW_CLUSTER = 2, 4 or 8 turns it on for rows longer than a warp row; anything
// else (unset, 0) leaves it off. PYLAUNDERING_CUDA_CLUSTER_ROWS = n > 0 sets the rows in flight;
// by default as many as fit in half the L2 with their gradient (3 element-passes per row), at
// most as many clusters as the device can hold at once. Read at every launch (a getenv is noise
// next to a launch), so a process can compare settings.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (*end == '\0' && x > 0 && x < INT_MAX) ? static_cast<int>(x) : 0;
}

// `clusters` 1-D clusters of `size` blocks of kMaxThreads threads; attr holds the cluster shape and
// must outlive the returned configuration.
cudaLaunchConfig_t cluster_config(cudaLaunchAttribute& attr, int size, int64_t clusters, cudaStream_t stream) {
  attr = cudaLaunchAttribute{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(size);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(clusters * size));
  cfg.blockDim = dim3(kMaxThreads);
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cfg;
}

// What the device can do for one cluster kernel and cluster size: the clusters it holds at once and
// its L2 size; {0, 0} where the mode cannot run (before sm_90, a binary built for an older
// architecture or JIT-compiled from an older architecture's PTX, a failed query).
struct ClusterCapacity {
  int max_clusters = 0;
  int l2_bytes = 0;
};

template <typename Kernel>
ClusterCapacity query_capacity(Kernel kernel, int dev, int size) {
  ClusterCapacity cap;
  int major = 0, l2 = 0, max_clusters = 0;
  cudaFuncAttributes fa{};
  cudaLaunchAttribute attr{};
  const cudaLaunchConfig_t cfg = cluster_config(attr, size, 1, nullptr);
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess || major < 9 ||
      cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev) != cudaSuccess ||
      cudaFuncGetAttributes(&fa, kernel) != cudaSuccess || fa.binaryVersion < 90 || fa.ptxVersion < 90 ||
      cudaOccupancyMaxActiveClusters(&max_clusters, kernel, &cfg) != cudaSuccess || max_clusters < 1) {
    cudaGetLastError();  // a failed query is not the caller's launch error
    return cap;
  }
  cap.max_clusters = max_clusters;
  cap.l2_bytes = l2;
  return cap;
}

template <typename scalar_t, int KIND, int VEC>
RowClusterPlan plan_for_kernel(int64_t rows, int64_t cols) {
  RowClusterPlan plan;
  const int size = env_int("PYLAUNDERING_CUDA_ROW_CLUSTER");
  if ((size != 2 && size != 4 && size != 8) || cols <= kWarpRowMaxCols || rows == 0) return plan;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return plan;
  }
  // The device queries are asked once per device and cluster size (they cost more than a launch).
  static std::mutex mu;
  static std::map<std::pair<int, int>, ClusterCapacity> asked;
  ClusterCapacity cap;
  {
    const std::lock_guard<std::mutex> lock(mu);
    auto it = asked.find({dev, size});
    if (it == asked.end()) {
      const auto kernel = fused_distill_kernel<scalar_t, KIND, VEC, ClusterRowGroup>;
      it = asked.emplace(std::make_pair(dev, size), query_capacity(kernel, dev, size)).first;
    }
    cap = it->second;
  }
  if (cap.max_clusters < 1) return plan;
  const int max_clusters = cap.max_clusters, l2 = cap.l2_bytes;
  const int64_t footprint = 3 * cols * static_cast<int64_t>(sizeof(scalar_t));
  int64_t in_flight = env_int("PYLAUNDERING_CUDA_CLUSTER_ROWS");
  if (in_flight == 0) in_flight = std::max<int64_t>(1, (int64_t(l2) / 2) / footprint);
  in_flight = std::min<int64_t>({in_flight, int64_t(max_clusters), rows, int64_t(INT_MAX / size)});
  plan.cluster = size;
  plan.rows_in_flight = in_flight;
  return plan;
}

template <typename scalar_t, int VEC>
RowClusterPlan plan_for(int64_t kind, int64_t rows, int64_t cols) {
  RowClusterPlan plan;
  with_kind(kind, [&](auto k) { plan = plan_for_kernel<scalar_t, decltype(k)::value, VEC>(rows, cols); });
  return plan;
}

template <typename scalar_t, int VEC>
void launch_kind(const DistillParams& p, const scalar_t* s, const scalar_t* t, const int64_t* y, void* loss,
                 scalar_t* g, cudaStream_t stream) {
  using acc_t = acc_type<scalar_t>;
  const KernelArgs<acc_t> a = make_kernel_args<acc_t>(p);
  acc_t* L = static_cast<acc_t*>(loss);
  const RowClusterPlan plan = plan_for<scalar_t, VEC>(p.kind, p.rows, p.cols);
  if (plan.cluster > 0) {
    cudaLaunchAttribute attr{};
    const cudaLaunchConfig_t cfg = cluster_config(attr, plan.cluster, plan.rows_in_flight, stream);
    with_kind(p.kind, [&](auto k) {
      cudaLaunchKernelEx(&cfg, fused_distill_kernel<scalar_t, decltype(k)::value, VEC, ClusterRowGroup>, a, s, t, y, L,
                         g);
    });
    return;
  }
  const LaunchConfig cfg = choose_config(p.rows, p.cols, VEC);
  with_kind(p.kind, [&](auto k) {
    fused_distill_kernel<scalar_t, decltype(k)::value, VEC, BlockRowGroup>
        <<<cfg.grid, cfg.block, 0, stream>>>(a, s, t, y, L, g);
  });
}

// Student, teacher and grad rows reach a 16-byte boundary together (the same address mod 16):
// vector chunks. Fresh allocations all qualify; sliced inputs may not.
template <typename scalar_t>
bool vector_aligned(const void* s, const void* t, const void* g) {
  const auto mis = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % kVecBytes; };
  return (t == nullptr || mis(t) == mis(s)) && (g == nullptr || mis(g) == mis(s)) && mis(s) % sizeof(scalar_t) == 0;
}

template <typename scalar_t>
cudaError_t launch_typed(const DistillParams& p, const void* student, const void* teacher, const int64_t* labels,
                         void* loss, void* grad, cudaStream_t stream) {
  constexpr int kVec = kVecBytes / sizeof(scalar_t);
  const auto* s = static_cast<const scalar_t*>(student);
  const auto* t = p.kind != kNoDistill ? static_cast<const scalar_t*>(teacher) : nullptr;
  auto* g = p.write_grad ? static_cast<scalar_t*>(grad) : nullptr;
  if (vector_aligned<scalar_t>(s, t, g)) {
    launch_kind<scalar_t, kVec>(p, s, t, labels, loss, g, stream);
  } else {
    launch_kind<scalar_t, 1>(p, s, t, labels, loss, g, stream);
  }
  return cudaGetLastError();
}

template <typename scalar_t>
RowClusterPlan plan_typed(int64_t kind, int64_t rows, int64_t cols, bool aligned) {
  constexpr int kVec = kVecBytes / sizeof(scalar_t);
  return aligned ? plan_for<scalar_t, kVec>(kind, rows, cols) : plan_for<scalar_t, 1>(kind, rows, cols);
}

}  // namespace

cudaError_t launch_fused_distill(const DistillParams& p, const void* student, const void* teacher,
                                 const int64_t* labels, void* loss, void* grad, int dtype_code, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  switch (dtype_code) {
    case kDtypeFloat:
      return launch_typed<float>(p, student, teacher, labels, loss, grad, stream);
    case kDtypeDouble:
      return launch_typed<double>(p, student, teacher, labels, loss, grad, stream);
    case kDtypeBFloat16:
      return launch_typed<__nv_bfloat16>(p, student, teacher, labels, loss, grad, stream);
    case kDtypeHalf:
      return launch_typed<__half>(p, student, teacher, labels, loss, grad, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

RowClusterPlan row_cluster_plan(int64_t kind, int64_t rows, int64_t cols, int dtype_code, bool aligned) {
  switch (dtype_code) {
    case kDtypeFloat:
      return plan_typed<float>(kind, rows, cols, aligned);
    case kDtypeDouble:
      return plan_typed<double>(kind, rows, cols, aligned);
    case kDtypeBFloat16:
      return plan_typed<__nv_bfloat16>(kind, rows, cols, aligned);
    case kDtypeHalf:
      return plan_typed<__half>(kind, rows, cols, aligned);
    default:
      return RowClusterPlan{};
  }
}

}  // namespace pylaundering::cuda
