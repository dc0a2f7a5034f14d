// Vector helpers shared by the CPU kernels (distill_kernel.cpp, sparse_kernel.cpp). Included inside
// each kernel's CPU_CAPABILITY namespace build, so every variant gets its own copy at its width.
#pragma once
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif
#include <limits>
#include <type_traits>

namespace pylaundering::cpu {
namespace CPU_CAPABILITY {
namespace vecu {

using at::vec::Vectorized;

template <typename T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// Loads n <= size() elements as acc_t; missing lanes are -inf, which every formula below
// treats as a masked logit (probability 0, no loss, no gradient), so tails need no scalar code.
template <typename scalar_t, typename acc_t>
inline Vectorized<acc_t> load(const scalar_t* p, int64_t n) {
  using Vec = Vectorized<acc_t>;
  constexpr int64_t VS = Vec::size();
  if (n == VS) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      return Vec::loadu(p);
    } else {
      Vec out;
      at::vec::load_to_float(p, out);
      return out;
    }
  }
  alignas(64) acc_t buf[VS];
  for (int64_t i = 0; i < VS; ++i) {
    buf[i] = i < n ? static_cast<acc_t>(p[i]) : neg_inf<acc_t>();
  }
  return Vec::loadu(buf);
}

template <typename scalar_t, typename acc_t>
inline void store(scalar_t* p, const Vectorized<acc_t>& v, int64_t n) {
  constexpr int64_t VS = Vectorized<acc_t>::size();
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (n == VS) {
      v.store(p);
    } else {
      v.store(p, n);
    }
  } else {
    alignas(64) acc_t buf[VS];
    v.store(buf);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(buf[i]);
  }
}

// store() for an output that is large and not read again soon (the [rows, V] gradient): full, aligned
// float vectors go around the cache (non-temporal stores), so the write costs no read of the old
// line and evicts nothing the next rows need. The writer calls stream_fence() when done.
template <typename scalar_t, typename acc_t>
inline void store_out(scalar_t* p, const Vectorized<acc_t>& v, int64_t n, bool stream) {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    constexpr int64_t VS = Vectorized<float>::size();
    if (stream && n == VS && (reinterpret_cast<uintptr_t>(p) % (VS * sizeof(float))) == 0) {
#if defined(CPU_CAPABILITY_AVX512)
      _mm512_stream_ps(p, __m512(v));
#else
      _mm256_stream_ps(p, __m256(v));
#endif
      return;
    }
  }
#endif
  store<scalar_t, acc_t>(p, v, n);
}

inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

// where(mask, a, 0): blendv picks its second argument in set lanes.
template <typename acc_t>
inline Vectorized<acc_t> keep(const Vectorized<acc_t>& mask, const Vectorized<acc_t>& a) {
  return Vectorized<acc_t>::blendv(Vectorized<acc_t>(0), a, mask);
}

template <typename acc_t>
inline acc_t hsum(const Vectorized<acc_t>& v) {
  return at::vec::vec_reduce_all<acc_t>([](Vectorized<acc_t>& a, Vectorized<acc_t>& b) { return a + b; }, v);
}

template <typename acc_t>
inline acc_t hmax(const Vectorized<acc_t>& v) {
  return at::vec::vec_reduce_all<acc_t>(
      [](Vectorized<acc_t>& a, Vectorized<acc_t>& b) { return at::vec::maximum(a, b); }, v);
}

template <typename acc_t>
inline Vectorized<acc_t> vexp(const Vectorized<acc_t>& x) {
  // exp_u20 is ATen's fast exp (a few ulp, exact 0 for -inf); our arguments are always <= 0.
  return x.exp_u20();
}

// 2^w (w <= 0; -inf for masked logits). A caller that scales its argument anyway ((x - max) / T)
// folds log2 e into that factor and saves exp's own multiply and half its range reduction: the
// rounding of w costs what the rounding of x / T cost before, no more.
template <typename acc_t>
inline Vectorized<acc_t> vexp2(const Vectorized<acc_t>& w) {
  return (w * Vectorized<acc_t>(acc_t(0.693147180559945309))).exp_u20();
}

#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
// c5 x^5 + c4 x^4 + ... + c0, Horner form.
inline Vectorized<float> horner5(const Vectorized<float>& x, float c5, float c4, float c3, float c2, float c1,
                                 float c0) {
  using V = Vectorized<float>;
  V p = at::vec::fmadd(x, V(c5), V(c4));
  for (const float c : {c3, c2, c1, c0}) p = at::vec::fmadd(x, p, V(c));
  return p;
}

// exp_u20's degree-5 minimax polynomial for e^r, |r| <= ln 2 / 2 (relative error ~1e-7).
inline Vectorized<float> exp_poly(const Vectorized<float>& r) {
  return horner5(r, 0.00828929059f, 0.0418978221f, 0.166676521f, 0.499991506f, 0.999999701f, 1.f);
}

// The same polynomial in f = r / ln 2, |f| <= 1/2: 2^f (coefficient k times ln 2^k, rounded once).
inline Vectorized<float> exp2_poly(const Vectorized<float>& f) {
  return horner5(f, 0.0013263088185340166f, 0.009671487845480442f, 0.055507391691207886f, 0.24022242426872253f,
                 0.6931469440460205f, 1.f);
}

// The shared middle of the float exps below: n = round(x log2 e) and exp(r) for r = x - n ln 2, by
// Cody-Waite reduction with a two-part ln 2 (exp_u20 uses one: ~10 ulp at x = -20). The caller
// scales by 2^n.
inline Vectorized<float> exp_round(const Vectorized<float>& v) {
  return (v * Vectorized<float>(1.44269504088896341f)).round();
}

inline Vectorized<float> exp_reduced(const Vectorized<float>& v, const Vectorized<float>& n) {
  using V = Vectorized<float>;
  V r = at::vec::fmadd(n, V(-0.693145751953125f), v);
  r = at::vec::fmadd(n, V(-1.428606765330187045e-06f), r);
  return exp_poly(r);
}
#endif

#if defined(CPU_CAPABILITY_AVX512)
// exp for float at AVX-512, for our arguments (x <= 0; -inf for masked logits): 11 instructions
// against exp_u20's 19 (the kernel is bound by arithmetic, two exps per element). vscalefps gives
// 2^n and underflows gradually: exactly 0 below x = -150 (the clamp), so -inf gives 0 as the masks
// need. NaN propagates (max returns its second operand).
inline Vectorized<float> vexp(const Vectorized<float>& x) {
  const Vectorized<float> v = _mm512_max_ps(_mm512_set1_ps(-150.f), __m512(x));
  const Vectorized<float> n = exp_round(v);
  return _mm512_scalef_ps(__m512(exp_reduced(v, n)), __m512(n));
}

// 2^w in 9 instructions: w - round(w) is exact, so no multiply and no two-part reduction.
inline Vectorized<float> vexp2(const Vectorized<float>& w) {
  const Vectorized<float> v = _mm512_max_ps(_mm512_set1_ps(-160.f), __m512(w));
  const Vectorized<float> n = v.round();
  return _mm512_scalef_ps(__m512(exp2_poly(v - n)), __m512(n));
}
#elif defined(CPU_CAPABILITY_AVX2)
// The same for AVX2 (15 instructions against exp_u20's ~20), which has no vscalefps: 2^n is built in
// the exponent bits, valid down to n = -126, so below ln(FLT_MIN) the result is set to exactly 0
// (as exp_u20 does; -inf gives 0). NaN propagates (max returns its second operand).
inline Vectorized<float> exp_scale(const __m256& under, const Vectorized<float>& p, const Vectorized<float>& n) {
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(__m256(n)), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(__m256(p), _mm256_castsi256_ps(e)));
}

inline Vectorized<float> vexp(const Vectorized<float>& x) {
  const __m256 lo = _mm256_set1_ps(-87.3365478515625f);  // ln(FLT_MIN), rounded up
  const __m256 under = _mm256_cmp_ps(__m256(x), lo, _CMP_LT_OQ);
  const Vectorized<float> v = _mm256_max_ps(lo, __m256(x));
  const Vectorized<float> n = exp_round(v);
  return exp_scale(under, exp_reduced(v, n), n);
}

inline Vectorized<float> vexp2(const Vectorized<float>& w) {
  const __m256 lo = _mm256_set1_ps(-126.f);  // log2(FLT_MIN)
  const __m256 under = _mm256_cmp_ps(__m256(w), lo, _CMP_LT_OQ);
  const Vectorized<float> v = _mm256_max_ps(lo, __m256(w));
  const Vectorized<float> n = v.round();
  return exp_scale(under, exp2_poly(v - n), n);
}
#endif

template <typename acc_t>
inline Vectorized<acc_t> load_scratch(const acc_t* p, int64_t n) {
  using Vec = Vectorized<acc_t>;
  return n == Vec::size() ? Vec::loadu(p) : Vec::loadu(p, n);
}

template <typename acc_t>
inline void store_scratch(acc_t* p, const Vectorized<acc_t>& v, int64_t n) {
  n == Vectorized<acc_t>::size() ? v.store(p) : v.store(p, n);
}

}  // namespace vecu
}  // namespace CPU_CAPABILITY
}  // namespace pylaundering::cpu
