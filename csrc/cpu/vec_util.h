// Vector helpers shared by the CPU kernels (distill_kernel.cpp, sparse_kernel.cpp). Included inside
// each kernel's CPU_CAPABILITY namespace build, so every variant gets its own copy at its width.
#pragma once
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
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
