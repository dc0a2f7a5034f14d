// Device helpers shared by the CUDA kernels (distill_kernel.cu, sparse_kernel.cu): accumulation
// types, conversions, fast exp/log, 16-byte vector loads and stores walked over a row, and the
// warp / row-group all-reductions. Each .cu
// includes it into its own anonymous namespace (internal copies, as before the split).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pylaundering::cuda {
namespace {

constexpr int kWarp = 32;

constexpr int kVecBytes = 16;

// ---------------------------------------------------------------- scalar helpers

template <typename scalar_t>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename scalar_t>
using acc_type = typename AccType<scalar_t>::type;

template <typename acc_t>
__host__ __device__ inline acc_t neg_inf() {
  return static_cast<acc_t>(-INFINITY);
}

template <typename acc_t>
__host__ __device__ inline acc_t min_normal() {
  return sizeof(acc_t) == sizeof(float) ? static_cast<acc_t>(FLT_MIN) : static_cast<acc_t>(DBL_MIN);
}

// Comparison max; NaN and +inf are counted separately (RowStats::bad) and poison the row.
template <typename acc_t>
__host__ __device__ inline acc_t amax(acc_t a, acc_t b) {
  return a > b ? a : b;
}

__host__ __device__ inline float to_acc(float x) { return x; }
__host__ __device__ inline double to_acc(double x) { return x; }
__host__ __device__ inline float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }
__host__ __device__ inline float to_acc(__half x) { return __half2float(x); }

// Round-to-nearest-even, as c10::BFloat16 / c10::Half conversions do on the CPU.
template <typename scalar_t>
__host__ __device__ inline scalar_t from_acc(acc_type<scalar_t> x);
template <>
__host__ __device__ inline float from_acc<float>(float x) {
  return x;
}
template <>
__host__ __device__ inline double from_acc<double>(double x) {
  return x;
}
template <>
__host__ __device__ inline __nv_bfloat16 from_acc<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__host__ __device__ inline __half from_acc<__half>(float x) {
  return __float2half_rn(x);
}

// Per-element exp and log. The float path uses the SFU intrinsics, as the CPU kernel uses its
// fast exp_u20: __expf is a few ulp near 0, its error grows with |x| but large |x| means a
// negligible term; exp(-inf) = 0. Both flush denormals (results below FLT_MIN become 0, and
// __logf reads a denormal input as 0, giving -inf), which the JSD code guards against. Host
// builds (the emulation) use std::exp / std::log. The once-per-row logs are full precision.
__host__ __device__ inline float fast_exp(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return std::exp(x);
#endif
}
__host__ __device__ inline double fast_exp(double x) { return exp(x); }
__host__ __device__ inline float fast_log(float x) {
#ifdef __CUDA_ARCH__
  return __logf(x);
#else
  return std::log(x);
#endif
}
__host__ __device__ inline double fast_log(double x) { return log(x); }
__host__ __device__ inline float exact_log(float x) { return logf(x); }
__host__ __device__ inline double exact_log(double x) { return log(x); }

// ---------------------------------------------------------------- loads and stores

template <int W>
struct Width {
  static constexpr int value = W;
};

// W elements from p as acc_t. W > 1 means one 16-byte access (p must be 16-byte aligned).
template <typename scalar_t, int W>
__host__ __device__ inline void load_chunk(const scalar_t* p, acc_type<scalar_t> (&out)[W]) {
  if constexpr (W == 1) {
    out[0] = to_acc(p[0]);
  } else {
    static_assert(W * sizeof(scalar_t) == kVecBytes, "vector chunks are 16 bytes");
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    scalar_t v[W];
    memcpy(v, &raw, sizeof(raw));
#pragma unroll
    for (int e = 0; e < W; ++e) out[e] = to_acc(v[e]);
  }
}

template <typename scalar_t, int W>
__host__ __device__ inline void store_chunk(scalar_t* p, const acc_type<scalar_t> (&in)[W]) {
  if constexpr (W == 1) {
    p[0] = from_acc<scalar_t>(in[0]);
  } else {
    static_assert(W * sizeof(scalar_t) == kVecBytes, "vector chunks are 16 bytes");
    scalar_t v[W];
#pragma unroll
    for (int e = 0; e < W; ++e) v[e] = from_acc<scalar_t>(in[e]);
    uint4 raw;
    memcpy(&raw, v, sizeof(raw));
    *reinterpret_cast<uint4*>(p) = raw;
  }
}

// Calls body(Width<W>{}, j) for this thread's share of a row of V elements, where `head`
// (< VEC) elements come before the first 16-byte boundary. The scalar head and tail elements
// (at most 2 * (VEC - 1) <= 14, fewer than any row group's threads) go one per thread; the
// 16-byte chunks go round-robin. Every element is visited by exactly one thread.
template <int VEC, typename Body>
__host__ __device__ inline void for_each_chunk(int64_t V, int64_t head, int tid, int nthr, Body&& body) {
  if constexpr (VEC == 1) {
    for (int64_t j = tid; j < V; j += nthr) body(Width<1>{}, j);
  } else {
    head = head < V ? head : V;
    const int64_t nvec = (V - head) / VEC;
    const int64_t tail = head + nvec * VEC;
    const int64_t nscalar = head + (V - tail);
    if (tid < nscalar) body(Width<1>{}, tid < head ? int64_t(tid) : tail + (tid - head));
    for (int64_t c = tid; c < nvec; c += nthr) body(Width<VEC>{}, head + c * VEC);
  }
}

// Elements before the row's first 16-byte boundary.
template <typename scalar_t, int VEC>
__host__ __device__ inline int64_t row_head(const scalar_t* row) {
  if constexpr (VEC == 1) {
    return 0;
  } else {
    const auto mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) % kVecBytes);
    return ((kVecBytes - mis) % kVecBytes) / static_cast<int64_t>(sizeof(scalar_t));
  }
}

// ---------------------------------------------------------------- reductions over a row group
// (T is a kernel's statistics struct; its shfl_xor overload, next to it, is found by argument-dependent
// lookup when these are instantiated.)

// Butterfly: with a symmetric merge every lane ends with the same, order-fixed value.
template <typename T, typename Merge>
__device__ inline T warp_allreduce(T v, const Merge& merge) {
#pragma unroll
  for (int m = kWarp / 2; m > 0; m /= 2) v = merge(v, shfl_xor(v, m));
  return v;
}

// All-reduce over the row group: the warp (warp mode) or the block (block mode, blockDim.y == 1).
// smem holds kMaxWarps values; the trailing barrier lets the next reduction reuse it.
template <typename T, typename Merge>
__device__ inline T group_allreduce(T v, const Merge& merge, const T& identity, T* smem) {
  v = warp_allreduce(v, merge);
  if (blockDim.x == kWarp) return v;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int nwarps = blockDim.x / kWarp;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < nwarps ? smem[lane] : identity;
  __syncthreads();
  return warp_allreduce(v, merge);
}

}  // namespace
}  // namespace pylaundering::cuda
