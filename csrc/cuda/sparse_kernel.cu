// Fused sparse-teacher distillation loss, CUDA. Semantics and gradient formulas:
// csrc/kernels/sparse_params.h; plain-PyTorch reference: pylaundering/ops/sparse.py
// (sparse_distill_rows); CPU kernel: csrc/cpu/sparse_kernel.cpp.
//
// Per row of V student logits s and its teacher's k kept entries (values v, distinct indices idx):
// loss = alpha * distill + (1 - alpha) * CE(s, y), and d loss / d s written once.
//
// Organisation (the loads, stores and reductions follow distill_kernel.cu)
//   * A "row group" owns one row: one warp for V <= 1024 (8 rows per block), else a whole block
//     of 128-512 threads. Groups walk rows grid-stride.
//   * Kept set: a bitmap of V bits per row group (bit j set <=> j is a kept index), in shared
//     memory, or in a global scratch slice per block when V is too large for shared memory
//     (sparse_distill_scratch_words). Zeroed once per kernel; a row sets its k bits with atomicOr
//     (whose old value also detects a repeated index) and clears them again when it is done.
//   * pass A (one read of the row + the k kept entries): online softmax statistics, each side
//     relative to its own running maximum: the NON-kept entries ("rest": max, sum at T, sum at
//     T = 1 when CE needs it), the kept entries (the same three), and the teacher's kept entries
//     (max and sum of exp(v / T - Lt), or of exp(v / T) without Lt; in double, as the CPU kernel,
//     since its kept total decides whether the teacher has a rest). The student's rest mass is
//     thus summed from the rest entries themselves, and from their own maximum, so it is exactly
//     0 at k = V and does not underflow when the rest lies far below the kept entries. NaN / +inf
//     logits, bad indices and the row's log-normaliser are counted for the poison rule.
//   * the k + 1 outcomes: log-probabilities, loss terms and g_o = d loss / d ls_o of the kept
//     entries are summed by the group (loss and G); every thread forms the rest outcome's itself.
//   * pass C (one read, one write): the gradient of every entry as if it were not kept,
//       alpha T q_j (g_rest / Q_rest - G) = alpha T r_j (g_rest - G Q_rest),  r_j = q_j / Q_rest
//     (r_j from the rest's own statistics, one exp) plus CE's (1 - alpha)(softmax(s)_j - [j = y]);
//     then the k kept entries are overwritten with their own formula alpha T (g_i - q_i G) + CE.
//     grad may be the student tensor itself (a gradient written in place): pass C stores the kept
//     entries' own logits back, so the kept pass still reads them, and the label's logit is read
//     before anything is stored.
// Reductions use fixed trees (no atomics on values), so results are deterministic run to run.
// Accumulation is in acc_t (float for fp32/bf16/fp16, double for fp64); the row's loss is formed
// in double. Masked logits (-inf) get probability 0; masks are applied by selecting, never by
// multiplying by 0, so 0 * inf never makes a NaN.
#include "cuda/sparse_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/device_util.cuh"

namespace pylaundering::cuda {
namespace {

constexpr int kMaxThreads = 512;  // largest row group (block mode)
constexpr int kMaxWarps = kMaxThreads / kWarp;
constexpr int64_t kWarpRowMaxCols = 1024;  // V up to this: one warp per row
constexpr int kRowsPerWarpBlock = 8;       // warp mode: 8 rows (256 threads) per block
constexpr int kBitmapBits = 32;            // bits per bitmap word
// Upper bound on the kernel's static shared memory (its reduction scratch), kept free when the
// bitmap's dynamic shared memory is sized against the device's per-block limit.
constexpr int64_t kStaticSmemReserve = 4096;
constexpr int kGlobalBitmapBlocksPerSM = 2;  // global-bitmap mode: grid = min(rows, this * SMs)

// ---------------------------------------------------------------- scalar helpers

// Per-element exps of the V-sized passes use fast_exp (device_util.cuh: the SFU intrinsic in float);
// the per-row and per-outcome quantities (k + 1 of them) use the full-precision functions.
__device__ inline float exact_exp(float x) { return expf(x); }
__device__ inline double exact_exp(double x) { return exp(x); }
__device__ inline float exact_log1p(float x) { return log1pf(x); }
__device__ inline double exact_log1p(double x) { return log1p(x); }
__device__ inline double exact_expm1(double x) { return expm1(x); }

// log(e^a + e^b); -inf when both are -inf (never -inf - -inf).
template <typename acc_t>
__device__ inline acc_t log_add_exp(acc_t a, acc_t b) {
  const acc_t hi = a > b ? a : b, lo = a > b ? b : a;
  if (hi == neg_inf<acc_t>()) return hi;
  return hi + exact_log1p(exact_exp(lo - hi));
}

// ---------------------------------------------------------------- loads and stores

template <typename scalar_t, int VEC>
__device__ inline void fill_row(scalar_t* g, int64_t V, int64_t head, int tid, int nthr, acc_type<scalar_t> value) {
  for_each_chunk<VEC>(V, head, tid, nthr, [&](auto w, int64_t j) {
    constexpr int W = decltype(w)::value;
    acc_type<scalar_t> z[W];
#pragma unroll
    for (int e = 0; e < W; ++e) z[e] = value;
    store_chunk<scalar_t, W>(g + j, z);
  });
}

// Bits j .. j + W - 1 of the bitmap (bit e of the result: element j + e is kept). W <= 16, so
// the chunk spans at most two words; when it spans one, w1 == w0 and the high word is unused.
template <int W>
__device__ inline uint32_t kept_bits(const uint32_t* bits, int64_t j) {
  if constexpr (W == 1) {
    return (bits[j / kBitmapBits] >> (j % kBitmapBits)) & 1u;
  } else {
    static_assert(W <= 16, "a chunk spans at most two bitmap words");
    const int64_t w0 = j / kBitmapBits, w1 = (j + W - 1) / kBitmapBits;
    const uint64_t both = (uint64_t(bits[w1]) << 32) | bits[w0];
    return static_cast<uint32_t>(both >> (j % kBitmapBits)) & ((1u << W) - 1u);
  }
}

// ---------------------------------------------------------------- parameters

// Kernel-side copy of SparseDistillParams with the derived constants, formed on the host.
template <typename acc_t>
struct KernelArgs {
  int64_t rows, cols, k, ignore_index;
  int64_t bitmap_words;  // per row group
  acc_t T, invT;         // invT: the soft kinds' 1 / T; 1 for MSE, whose statistics only serve CE
  double invT_teacher;   // 1 / T for the teacher's values (formed in double)
  acc_t alpha, beta, one_m_beta, log_beta, log_one_m_beta;
  acc_t gsoft;  // alpha * T: d(alpha T^2 loss) / ds = alpha T d loss / du, u = s / T (TVD: alpha / T)
  acc_t gmse;   // alpha * 2 / k
  acc_t ce_w;   // 1 - alpha when CE is on, else 0
  double eps8;  // 8 eps of Lt's dtype: a kept total within 8 eps (1 + |Lt|) of 1 leaves no rest
  bool has_lognorm, has_labels, write_grad;
  bool distill;   // alpha != 0: the distillation term is formed at all
  bool ce;        // cross-entropy term on (labels and alpha < 1)
  bool ce_split;  // CE at T = 1 needs its own sums (T != 1 for a soft kind)
  bool restricted;
  bool global_bitmap;
};

template <int KIND>
struct KindTraits {
  static constexpr bool soft = kSoftKind<KIND>;
};

// ---------------------------------------------------------------- pass A: statistics

// Online softmax of a set of logits x: z = sum exp((x - m) * scale), z1 = sum exp(x - m) (CE's
// T = 1 sums), relative to the running maximum m; all-zero sums while m is -inf.
template <typename acc_t>
struct Soft {
  acc_t m, z, z1;
};

template <typename acc_t>
__device__ inline Soft<acc_t> soft_identity() {
  return {neg_inf<acc_t>(), 0, 0};
}

// Re-expresses a relative to a larger maximum M (a NaN M changes nothing; such a row is poisoned).
template <typename acc_t>
__device__ inline void rebase(Soft<acc_t>& a, acc_t M, acc_t scale) {
  if (M > a.m) {
    if (a.z > 0) a.z *= exact_exp((a.m - M) * scale);
    if (a.z1 > 0) a.z1 *= exact_exp(a.m - M);
    a.m = M;
  }
}

// Symmetric bit for bit (max, independent rebases, commutative adds), so a butterfly leaves
// every lane with the same value.
template <typename acc_t>
__device__ inline Soft<acc_t> merge(Soft<acc_t> a, Soft<acc_t> b, acc_t scale) {
  const acc_t M = amax(a.m, b.m);
  rebase(a, M, scale);
  rebase(b, M, scale);
  return {M, a.z + b.z, a.z1 + b.z1};
}

// One more logit (rebase first, then add relative to the new maximum).
template <typename acc_t>
__device__ inline void soft_add(Soft<acc_t>& a, acc_t x, acc_t scale, bool with_z1) {
  rebase(a, amax(a.m, x), scale);
  if (a.m != neg_inf<acc_t>()) {
    a.z += fast_exp((x - a.m) * scale);
    if (with_z1) a.z1 += fast_exp(x - a.m);
  }
}

// A row's statistics: the student's rest (non-kept) and kept entries, and the teacher's kept
// entries (teach: in double, already divided by T, so scale 1). bad counts NaN / +inf student
// logits and teacher values (soft kinds); badin counts indices out of range or repeated.
template <typename acc_t>
struct RowStats {
  Soft<acc_t> rest, kept;
  Soft<double> teach;
  acc_t bad, badin;
};

template <typename acc_t>
__device__ inline RowStats<acc_t> stats_identity() {
  return {soft_identity<acc_t>(), soft_identity<acc_t>(), soft_identity<double>(), 0, 0};
}

// ---------------------------------------------------------------- the k + 1 outcomes

// Per-row constants once the statistics are known.
template <typename acc_t>
struct RowConsts {
  acc_t m;                         // the student's row max
  acc_t lz;                        // log sum exp((s - m) / T) over the row
  acc_t lz1;                       // log sum exp(s - m) (CE at T = 1)
  acc_t rest_m;                    // the rest's max (-inf: no live rest entry)
  acc_t lz_rest;                   // log sum exp((s - rest_m) / T) over the rest
  acc_t ls_off, lz_off;            // ls_i = (s_i - ls_off) / T - lz_off (restricted: renormalised over the kept)
  double lt_off;                   // lt_i = v_i / T - Lt - lt_off (without Lt: Lt = 0, lt_off = log sum over kept)
  double ln;                       // the row's Lt (0 without one)
  acc_t ls_rest, lt_rest, q_rest;  // the rest outcome: student and teacher log-probabilities
};

// The teacher's log-probability of kept entry i, formed in double (as the kept total).
template <typename acc_t>
__device__ inline acc_t teacher_lt(const KernelArgs<acc_t>& a, const RowConsts<acc_t>& c, acc_t v) {
  return static_cast<acc_t>(double(v) * a.invT_teacher - c.ln - c.lt_off);
}

// Loss term of one outcome and g_o = d loss / d ls_o. An outcome of zero probability contributes
// 0 to the sum it weights (selected, not multiplied by 0).
template <int KIND, typename acc_t>
__device__ inline void outcome(const KernelArgs<acc_t>& a, acc_t ls, acc_t lt, acc_t& term, acc_t& g) {
  if constexpr (KIND == kForwardKL) {
    const acc_t p = exact_exp(lt);
    term = p > 0 ? p * (lt - ls) : acc_t(0);
    g = -p;
  } else if constexpr (KIND == kReverseKL) {
    const acc_t q = exact_exp(ls);
    term = q > 0 ? q * (ls - lt) : acc_t(0);
    g = q > 0 ? q * (ls - lt + acc_t(1)) : acc_t(0);
  } else if constexpr (KIND == kJSD) {
    const acc_t p = exact_exp(lt), q = exact_exp(ls);
    // log m in log space (as the reference's logaddexp): m underflows long before its log does
    const acc_t lm = log_add_exp(lt + a.log_beta, ls + a.log_one_m_beta);
    const acc_t tp = p > 0 ? p * (lt - lm) : acc_t(0);
    const acc_t tq = q > 0 ? q * (ls - lm) : acc_t(0);
    term = a.beta * tp + a.one_m_beta * tq;
    g = a.one_m_beta * tq;
  } else if constexpr (KIND == kTVD) {
    const acc_t p = exact_exp(lt), q = exact_exp(ls);
    term = acc_t(0.5) * (p > q ? p - q : q - p);
    g = q > p ? acc_t(0.5) * q : (q < p ? acc_t(-0.5) * q : acc_t(0));  // subgradient 0 at ties
  } else if constexpr (KIND == kSkewKL) {
    // m = beta p + (1 - beta) q in log space; at skew 0 m = q (log_beta would be -inf)
    const acc_t p = exact_exp(lt);
    const acc_t lm = a.beta > 0 ? log_add_exp(lt + a.log_beta, ls + a.log_one_m_beta) : ls;
    term = p > 0 ? p * (lt - lm) : acc_t(0);
    g = p > 0 ? -a.one_m_beta * p * exact_exp(ls - lm) : acc_t(0);
  } else if constexpr (KIND == kSkewReverseKL) {
    const acc_t q = exact_exp(ls);
    const acc_t lm = a.beta > 0 ? log_add_exp(ls + a.log_beta, lt + a.log_one_m_beta) : lt;
    term = q > 0 ? q * (ls - lm) : acc_t(0);
    g = q > 0 ? q * (ls - lm + acc_t(1) - a.beta * exact_exp(ls - lm)) : acc_t(0);
  } else {
    term = 0;
    g = 0;
  }
}

// MSE's difference; two -inf are a mask, not NaN (as the dense op and the CPU kernel).
template <typename acc_t>
__device__ inline acc_t mse_diff(acc_t x, acc_t v) {
  return x != v ? x - v : acc_t(0);
}

template <typename acc_t>
struct Sums {
  acc_t loss, g;
};

// ---------------------------------------------------------------- reductions (device)

template <typename acc_t>
__device__ inline Soft<acc_t> shfl_xor(const Soft<acc_t>& v, int m) {
  constexpr unsigned kAll = 0xffffffffu;
  return {__shfl_xor_sync(kAll, v.m, m), __shfl_xor_sync(kAll, v.z, m), __shfl_xor_sync(kAll, v.z1, m)};
}

template <typename acc_t>
__device__ inline RowStats<acc_t> shfl_xor(const RowStats<acc_t>& v, int m) {
  constexpr unsigned kAll = 0xffffffffu;
  return {shfl_xor(v.rest, m), shfl_xor(v.kept, m), shfl_xor(v.teach, m), __shfl_xor_sync(kAll, v.bad, m),
          __shfl_xor_sync(kAll, v.badin, m)};
}

template <typename acc_t>
__device__ inline Sums<acc_t> shfl_xor(const Sums<acc_t>& v, int m) {
  constexpr unsigned kAll = 0xffffffffu;
  return {__shfl_xor_sync(kAll, v.loss, m), __shfl_xor_sync(kAll, v.g, m)};
}

// Barrier of the row group, with memory ordering for shared and global memory among its threads.
// Warp mode must not use __syncthreads: the block's warps have different rows (and row counts).
__device__ inline void group_sync() {
  if (blockDim.x == kWarp) {
    __syncwarp();
  } else {
    __syncthreads();
  }
}

// ---------------------------------------------------------------- the kernel

// blockDim = (row group size, rows per block): (32, 8) in warp mode, (128..512, 1) in block mode.
// Dynamic shared memory: blockDim.y bitmaps of a.bitmap_words words, unless a.global_bitmap (then
// block b uses scratch[b * bitmap_words, (b + 1) * bitmap_words)). S and G rows share their
// misalignment (checked on the host). S and G may be the same memory (no __restrict__ on them).
template <typename scalar_t, int KIND, int VEC>
__global__ void __launch_bounds__(kMaxThreads)
    sparse_distill_kernel(const KernelArgs<acc_type<scalar_t>> a, const scalar_t* S, const scalar_t* __restrict__ Vals,
                          const int64_t* __restrict__ I, const acc_type<scalar_t>* __restrict__ LN,
                          const int64_t* __restrict__ Y, acc_type<scalar_t>* __restrict__ L, scalar_t* G,
                          uint32_t* __restrict__ scratch, int32_t* __restrict__ bad_input) {
  using acc_t = acc_type<scalar_t>;
  using K = KindTraits<KIND>;
  extern __shared__ uint32_t smem_bitmap[];
  __shared__ RowStats<acc_t> smem_stats[kMaxWarps];
  __shared__ Sums<acc_t> smem_sums[kMaxWarps];

  const int tid = threadIdx.x, nthr = blockDim.x;
  const int64_t V = a.cols, k = a.k, W = a.bitmap_words;
  const acc_t ninf = neg_inf<acc_t>(), inf = -ninf, nan = static_cast<acc_t>(NAN), invT = a.invT;
  const bool need_z = K::soft || a.ce;  // the student's softmax statistics are used

  uint32_t* bits = a.global_bitmap ? scratch + int64_t(blockIdx.x) * W : smem_bitmap + int64_t(threadIdx.y) * W;
  for (int64_t w = tid; w < W; w += nthr) bits[w] = 0;
  group_sync();

  const auto merge_stats = [invT](const RowStats<acc_t>& x, const RowStats<acc_t>& y) {
    return RowStats<acc_t>{merge(x.rest, y.rest, invT), merge(x.kept, y.kept, invT), merge(x.teach, y.teach, 1.0),
                           x.bad + y.bad, x.badin + y.badin};
  };
  const auto add_sums = [](const Sums<acc_t>& x, const Sums<acc_t>& y) {
    return Sums<acc_t>{x.loss + y.loss, x.g + y.g};
  };

  // Every thread of a row group has the same row, so all branches below are uniform per group
  // (the barriers need that).
  for (int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < a.rows;
       row += int64_t(gridDim.x) * blockDim.y) {
    const scalar_t* s = S + row * V;
    const scalar_t* v = Vals + row * k;
    const int64_t* idx = I + row * k;
    scalar_t* g = a.write_grad ? G + row * V : nullptr;
    const int64_t head = row_head<scalar_t, VEC>(s);
    const int64_t y = a.has_labels ? Y[row] : int64_t(-1);
    const bool ignored = a.has_labels && y == a.ignore_index;
    const bool label_bad = a.has_labels && !ignored && (y < 0 || y >= V);
    const acc_t ln = a.has_lognorm ? LN[row] : acc_t(0);
    const double ln_d = ln;
    // CE's logit at the label, read before any thread stores into this row (grad may alias s)
    const acc_t s_label = (tid == 0 && a.ce && !ignored && !label_bad) ? to_acc(s[y]) : acc_t(0);

    // ---- the kept set; every row's indices are checked, ignored rows' too (as on the CPU)
    RowStats<acc_t> st = stats_identity<acc_t>();
    for (int64_t i = tid; i < k; i += nthr) {
      const int64_t j = idx[i];
      if (j < 0 || j >= V) {
        st.badin += 1;
      } else {
        const uint32_t bit = 1u << (j % kBitmapBits);
        if (atomicOr(&bits[j / kBitmapBits], bit) & bit) st.badin += 1;  // set already: repeated
      }
    }
    group_sync();

    // ---- pass A: statistics of the rest, the kept entries and the teacher
    if (!ignored) {
      for_each_chunk<VEC>(V, head, tid, nthr, [&](auto w, int64_t j) {
        constexpr int CW = decltype(w)::value;
        acc_t xs[CW];
        load_chunk<scalar_t, CW>(s + j, xs);
        const uint32_t kept = kept_bits<CW>(bits, j);
        acc_t cm = ninf;
#pragma unroll
        for (int e = 0; e < CW; ++e) {
          if (!(xs[e] < inf)) st.bad += 1;  // NaN or +inf, kept or not
          if (!((kept >> e) & 1u)) cm = amax(cm, xs[e]);
        }
        if (need_z) {
          rebase(st.rest, amax(st.rest.m, cm), invT);
          if (st.rest.m != ninf) {
#pragma unroll
            for (int e = 0; e < CW; ++e) {
              if (!((kept >> e) & 1u)) {
                st.rest.z += fast_exp((xs[e] - st.rest.m) * invT);
                if (a.ce_split) st.rest.z1 += fast_exp(xs[e] - st.rest.m);
              }
            }
          }
        }
      });
      for (int64_t i = tid; i < k; i += nthr) {
        const int64_t j = idx[i];
        if (j < 0 || j >= V) continue;  // counted in badin: the row is poisoned
        if (need_z) soft_add(st.kept, to_acc(s[j]), invT, a.ce_split);
        if constexpr (K::soft) {
          const acc_t vv = to_acc(v[i]);
          if (!(vv < inf)) st.bad += 1;
          const double t = double(vv) * a.invT_teacher - ln_d;
          rebase(st.teach, amax(st.teach.m, t), 1.0);
          if (st.teach.m != -double(INFINITY)) st.teach.z += exact_exp(t - st.teach.m);
        }
      }
    }
    st = group_allreduce(st, merge_stats, stats_identity<acc_t>(), smem_stats);
    if (bad_input != nullptr && tid == 0 && (st.badin > 0 || label_bad)) *bad_input = 1;

    const auto finish_row = [&]() {  // clear this row's bits before the next row sets its own
      group_sync();
      for (int64_t i = tid; i < k; i += nthr) {
        const int64_t j = idx[i];
        if (j >= 0 && j < V) bits[j / kBitmapBits] = 0;  // every set bit of the word is this row's
      }
      group_sync();
    };

    if (ignored) {  // loss 0, gradient 0
      if (tid == 0) L[row] = 0;
      if (g != nullptr) fill_row<scalar_t, VEC>(g, V, head, tid, nthr, acc_t(0));
      finish_row();
      continue;
    }
    // NaN / +inf logits, a non-finite log-normaliser, a bad index (or, while a graph is captured
    // and nothing was checked, a bad label that CE would read): NaN loss and gradient.
    const bool ln_bad = K::soft && a.has_lognorm && !(ln > ninf && ln < inf);
    if (st.bad > 0 || st.badin > 0 || (label_bad && a.ce) || ln_bad) {
      if (tid == 0) L[row] = nan;
      if (g != nullptr) fill_row<scalar_t, VEC>(g, V, head, tid, nthr, nan);
      finish_row();
      continue;
    }

    // ---- per-row constants (every thread forms the same values from the all-reduced stats)
    RowConsts<acc_t> c;
    c.m = amax(st.rest.m, st.kept.m);
    c.rest_m = st.rest.m;
    c.ln = ln_d;
    {
      const bool rest_live = st.rest.m != ninf, kept_live = st.kept.m != ninf;
      const acc_t zr = rest_live ? st.rest.z * exact_exp((st.rest.m - c.m) * invT) : acc_t(0);
      const acc_t zk = kept_live ? st.kept.z * exact_exp((st.kept.m - c.m) * invT) : acc_t(0);
      c.lz = exact_log(zr + zk);
      if (a.ce_split) {
        const acc_t z1r = rest_live ? st.rest.z1 * exact_exp(st.rest.m - c.m) : acc_t(0);
        const acc_t z1k = kept_live ? st.kept.z1 * exact_exp(st.kept.m - c.m) : acc_t(0);
        c.lz1 = exact_log(z1r + z1k);
      } else {
        c.lz1 = c.lz;
      }
      c.lz_rest = exact_log(st.rest.z);  // -inf when the rest is empty or all masked
      // log Q_rest from the rest's own maximum: no underflow, exactly -inf at k = V
      c.ls_rest = rest_live ? (st.rest.m - c.m) * invT + c.lz_rest - c.lz : ninf;
      if (a.restricted) {  // reverse KL without Lt: the student renormalised over the kept entries
        c.ls_off = st.kept.m;
        c.lz_off = exact_log(st.kept.z);
        c.ls_rest = ninf;
      } else {
        c.ls_off = c.m;
        c.lz_off = c.lz;
      }
      c.q_rest = exact_exp(c.ls_rest);
      // teacher: t_i = v_i / T - Lt (or v_i / T); LK = log sum exp(t_i) over the kept entries
      const double dninf = -double(INFINITY);
      const double LK = st.teach.m != dninf ? st.teach.m + exact_log(st.teach.z) : dninf;
      if (a.has_lognorm) {
        c.lt_off = 0;
        // the rest holds 1 - exp(LK): empty within the stored Lt's rounding (an ulp of Lt is an
        // error of eps |Lt| in LK), and always at k = V, where no class is left for a rest
        const double tiny = a.eps8 * (1.0 + fabs(ln_d));
        c.lt_rest = (k < V && LK < -tiny) ? static_cast<acc_t>(exact_log(-exact_expm1(LK))) : ninf;
      } else {
        c.lt_off = LK;
        c.lt_rest = ninf;
      }
    }

    // ---- the k + 1 outcomes: loss and G = sum g_o
    Sums<acc_t> sums{0, 0};
    if (a.distill) {
      for (int64_t i = tid; i < k; i += nthr) {
        const acc_t x = to_acc(s[idx[i]]), vv = to_acc(v[i]);
        if constexpr (K::soft) {
          const acc_t ls = (x - c.ls_off) * invT - c.lz_off;
          const acc_t lt = teacher_lt(a, c, vv);
          acc_t term, go;
          outcome<KIND>(a, ls, lt, term, go);
          sums.loss += term;
          sums.g += go;
        } else {
          const acc_t d = mse_diff(x, vv);
          sums.loss += d * d;
        }
      }
    }
    sums = group_allreduce(sums, add_sums, Sums<acc_t>{0, 0}, smem_sums);
    acc_t term_rest = 0, g_rest = 0;
    if (K::soft && a.distill) outcome<KIND>(a, c.ls_rest, c.lt_rest, term_rest, g_rest);
    const acc_t G_sum = sums.g + g_rest;

    if (tid == 0) {
      const double T = a.T;
      double row_loss = 0;
      if (a.distill) {
        const double soft_scale = KIND == kTVD ? 1.0 : T * T;
        const double distill =
            K::soft ? soft_scale * (double(sums.loss) + double(term_rest)) : double(sums.loss) / double(k);
        row_loss = double(a.alpha) * distill;
      }
      if (a.ce) row_loss += double(a.ce_w) * -(double(s_label) - double(c.m) - double(c.lz1));
      L[row] = static_cast<acc_t>(row_loss);
    }

    if (g != nullptr) {
      // ---- the entries not kept: alpha T r_j (g_rest - G Q_rest) + CE; the kept ones get their own
      // logit back (Q_rest = 0: the rest outcome carries g_rest only; G * 0 could be inf * 0)
      const acc_t k_rest = c.q_rest > 0 ? g_rest - G_sum * c.q_rest : g_rest;
      const bool rest_grad = K::soft && a.distill && !a.restricted && c.rest_m != ninf;
      const acc_t gk = a.gsoft * k_rest;
      for_each_chunk<VEC>(V, head, tid, nthr, [&](auto w, int64_t j) {
        constexpr int CW = decltype(w)::value;
        acc_t xs[CW], gr[CW];
        load_chunk<scalar_t, CW>(s + j, xs);
        const uint32_t kept = kept_bits<CW>(bits, j);
#pragma unroll
        for (int e = 0; e < CW; ++e) {
          gr[e] = 0;
          if (rest_grad && xs[e] != ninf) gr[e] = gk * fast_exp((xs[e] - c.rest_m) * invT - c.lz_rest);
          if (a.ce) {
            gr[e] += a.ce_w * fast_exp((xs[e] - c.m) - c.lz1);
            if (j + e == y) gr[e] -= a.ce_w;
          }
          if ((kept >> e) & 1u) gr[e] = xs[e];  // exact round trip; replaced below
        }
        store_chunk<scalar_t, CW>(g + j, gr);
      });
      group_sync();  // the kept entries' values below replace those just stored (and read s there)
      // ---- the kept entries: alpha T (g_i - q_i G) (MSE: alpha 2 (s - v) / k) + CE
      for (int64_t i = tid; i < k; i += nthr) {
        const int64_t j = idx[i];
        const acc_t x = to_acc(s[j]), vv = to_acc(v[i]);
        acc_t gr = 0;
        if (a.distill) {
          if constexpr (K::soft) {
            const acc_t ls = (x - c.ls_off) * invT - c.lz_off;
            const acc_t lt = teacher_lt(a, c, vv);
            acc_t term, go;
            outcome<KIND>(a, ls, lt, term, go);
            const acc_t q = exact_exp(ls);
            gr = q > 0 ? a.gsoft * (go - q * G_sum) : a.gsoft * go;
          } else {
            gr = a.gmse * mse_diff(x, vv);
          }
        }
        if (a.ce) {
          gr += a.ce_w * exact_exp((x - c.m) - c.lz1);
          if (j == y) gr -= a.ce_w;
        }
        g[j] = from_acc<scalar_t>(gr);
      }
    }
    finish_row();
  }
}

// ---------------------------------------------------------------- host side

template <typename acc_t>
KernelArgs<acc_t> make_kernel_args(const SparseDistillParams& p, int64_t bitmap_words, bool global_bitmap) {
  KernelArgs<acc_t> a;
  a.rows = p.rows;
  a.cols = p.cols;
  a.k = p.k;
  a.ignore_index = p.ignore_index;
  a.bitmap_words = bitmap_words;
  const bool soft = is_soft_kind(p.kind);
  a.T = static_cast<acc_t>(p.temperature);
  a.invT = soft ? acc_t(1) / a.T : acc_t(1);
  a.invT_teacher = 1.0 / p.temperature;
  a.alpha = static_cast<acc_t>(p.alpha);
  a.beta = static_cast<acc_t>(p.beta);
  a.one_m_beta = static_cast<acc_t>(1.0 - p.beta);
  a.log_beta = static_cast<acc_t>(std::log(p.beta));
  a.log_one_m_beta = static_cast<acc_t>(std::log1p(-p.beta));
  a.gsoft = p.kind == kTVD ? a.alpha / a.T : a.alpha * a.T;
  a.gmse = static_cast<acc_t>(p.alpha * 2.0 / double(p.k));
  a.ce = p.ce_on();
  a.ce_w = a.ce ? static_cast<acc_t>(1.0 - p.alpha) : acc_t(0);
  a.eps8 = 8.0 * (sizeof(acc_t) == sizeof(float) ? double(FLT_EPSILON) : DBL_EPSILON);
  a.has_lognorm = p.has_lognorm;
  a.has_labels = p.has_labels;
  a.write_grad = p.write_grad;
  a.distill = p.alpha != 0.0;
  a.ce_split = a.ce && a.invT != acc_t(1);
  a.restricted = p.restricted();
  a.global_bitmap = global_bitmap;
  return a;
}

int64_t bitmap_words_per_row(int64_t cols) { return (cols + kBitmapBits - 1) / kBitmapBits; }

// Where the bitmaps live: shared memory when one fits next to the static reduction scratch (always
// in warp mode: 8 * 32 words), else a global slice per block for a grid of `blocks` blocks.
struct BitmapPlan {
  bool global = false;
  int64_t blocks = 0;  // global mode only
};

cudaError_t plan_bitmap(const SparseDistillParams& p, BitmapPlan* plan) {
  *plan = BitmapPlan{};
  if (p.cols <= kWarpRowMaxCols) return cudaSuccess;
  int dev = 0, optin = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err != cudaSuccess) return err;
  if (bitmap_words_per_row(p.cols) * int64_t(sizeof(uint32_t)) + kStaticSmemReserve <= int64_t(optin)) {
    return cudaSuccess;
  }
  err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  plan->global = true;
  const int64_t cap = int64_t(sms > 0 ? sms : 1) * kGlobalBitmapBlocksPerSM;
  plan->blocks = p.rows < cap ? p.rows : cap;
  return cudaSuccess;
}

template <typename scalar_t, int KIND, int VEC>
cudaError_t launch_kernel(const SparseDistillParams& p, const BitmapPlan& plan, const scalar_t* s, const scalar_t* v,
                          const int64_t* idx, const void* ln, const int64_t* y, void* loss, scalar_t* g,
                          uint32_t* scratch, int32_t* bad_input, cudaStream_t stream) {
  using acc_t = acc_type<scalar_t>;
  static_assert(sizeof(RowStats<acc_t>) * kMaxWarps + sizeof(Sums<acc_t>) * kMaxWarps <= kStaticSmemReserve,
                "the reduction scratch must fit the reserve left next to the bitmap");
  const int64_t words = bitmap_words_per_row(p.cols);
  const KernelArgs<acc_t> a = make_kernel_args<acc_t>(p, words, plan.global);
  dim3 block;
  int64_t blocks;
  if (p.cols <= kWarpRowMaxCols) {
    block = dim3(kWarp, kRowsPerWarpBlock);
    blocks = (p.rows + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock;
  } else {
    const int64_t chunks = p.cols / VEC;
    block = dim3(chunks <= 1024 ? 128 : chunks <= 4096 ? 256 : kMaxThreads, 1);
    blocks = plan.global ? plan.blocks : p.rows;
  }
  const dim3 grid(static_cast<unsigned>(blocks < INT_MAX ? blocks : INT_MAX));  // the rest: grid-stride
  const size_t smem = plan.global ? 0 : size_t(block.y) * size_t(words) * sizeof(uint32_t);
  auto* kernel = &sparse_distill_kernel<scalar_t, KIND, VEC>;
  if (smem + kStaticSmemReserve > 48 * 1024) {  // beyond the default limit: opt in (V > ~380K)
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, block, smem, stream>>>(a, s, v, idx, static_cast<const acc_t*>(ln), y, static_cast<acc_t*>(loss), g,
                                        scratch, bad_input);
  return cudaGetLastError();
}

template <typename scalar_t, int VEC>
cudaError_t launch_kind(const SparseDistillParams& p, const BitmapPlan& plan, const scalar_t* s, const scalar_t* v,
                        const int64_t* idx, const void* ln, const int64_t* y, void* loss, scalar_t* g,
                        uint32_t* scratch, int32_t* bad_input, cudaStream_t stream) {
  switch (p.kind) {
    case kForwardKL:
      return launch_kernel<scalar_t, kForwardKL, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
    case kReverseKL:
      return launch_kernel<scalar_t, kReverseKL, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
    case kJSD:
      return launch_kernel<scalar_t, kJSD, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
    case kMSE:
      return launch_kernel<scalar_t, kMSE, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
    case kTVD:
      return launch_kernel<scalar_t, kTVD, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
    case kSkewKL:
      return launch_kernel<scalar_t, kSkewKL, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
    case kSkewReverseKL:
      return launch_kernel<scalar_t, kSkewReverseKL, VEC>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input,
                                                          stream);
    default:
      return cudaErrorInvalidValue;  // rejected by make_sparse_params
  }
}

template <typename scalar_t>
cudaError_t launch_typed(const SparseDistillParams& p, const BitmapPlan& plan, const void* student, const void* values,
                         const int64_t* idx, const void* ln, const int64_t* y, void* loss, void* grad,
                         uint32_t* scratch, int32_t* bad_input, cudaStream_t stream) {
  constexpr int kVec = kVecBytes / sizeof(scalar_t);
  const auto* s = static_cast<const scalar_t*>(student);
  const auto* v = static_cast<const scalar_t*>(values);
  auto* g = p.write_grad ? static_cast<scalar_t*>(grad) : nullptr;
  // Vector chunks need student and grad rows to reach a 16-byte boundary together (same address
  // mod 16; a fresh grad has 0, a sliced student may not). Values are read per entry, unaligned.
  const auto mis = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % kVecBytes; };
  const bool same_alignment = (g == nullptr || mis(g) == mis(s)) && mis(s) % sizeof(scalar_t) == 0;
  if (same_alignment) {
    return launch_kind<scalar_t, kVec>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
  }
  return launch_kind<scalar_t, 1>(p, plan, s, v, idx, ln, y, loss, g, scratch, bad_input, stream);
}

}  // namespace

cudaError_t sparse_distill_scratch_words(const SparseDistillParams& p, int64_t* words) {
  *words = 0;
  if (p.rows == 0) return cudaSuccess;
  BitmapPlan plan;
  const cudaError_t err = plan_bitmap(p, &plan);
  if (err == cudaSuccess && plan.global) *words = plan.blocks * bitmap_words_per_row(p.cols);
  return err;
}

cudaError_t launch_fused_sparse_distill(const SparseDistillParams& p, const void* student, const void* values,
                                        const int64_t* indices, const void* log_normalizer, const int64_t* labels,
                                        void* loss, void* grad, uint32_t* scratch, int64_t scratch_words,
                                        int32_t* bad_input, int dtype_code, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  BitmapPlan plan;
  const cudaError_t err = plan_bitmap(p, &plan);
  if (err != cudaSuccess) return err;
  if (plan.global && (scratch == nullptr || scratch_words < plan.blocks * bitmap_words_per_row(p.cols))) {
    return cudaErrorInvalidValue;  // sized by sparse_distill_scratch_words for another device or p
  }
  const void* ln = p.has_lognorm ? log_normalizer : nullptr;
  const int64_t* y = p.has_labels ? labels : nullptr;
  switch (dtype_code) {
    case kDtypeFloat:
      return launch_typed<float>(p, plan, student, values, indices, ln, y, loss, grad, scratch, bad_input, stream);
    case kDtypeDouble:
      return launch_typed<double>(p, plan, student, values, indices, ln, y, loss, grad, scratch, bad_input, stream);
    case kDtypeBFloat16:
      return launch_typed<__nv_bfloat16>(p, plan, student, values, indices, ln, y, loss, grad, scratch, bad_input,
                                         stream);
    case kDtypeHalf:
      return launch_typed<__half>(p, plan, student, values, indices, ln, y, loss, grad, scratch, bad_input, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace pylaundering::cuda
