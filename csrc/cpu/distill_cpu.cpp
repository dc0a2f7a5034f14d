// CPU entry point: checks, then the kernel variant for this CPU's vector width.
#include "cpu/grad_buffer.h"
#include "distill_op.h"
#include "sparse_op.h"

#include <cstdint>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <string>

#include <c10/util/Exception.h>

namespace pylaundering {
namespace cpu {
#define PYL_DECLARE_VARIANT(NAME)                                                                                      \
  namespace NAME {                                                                                                     \
  void fused_distill_kernel(const DistillParams&, const at::Tensor&, const at::Tensor&, const at::Tensor&,             \
                            at::Tensor&, at::Tensor&);                                                                 \
  void fused_sparse_distill_kernel(const SparseDistillParams&, const at::Tensor&, const at::Tensor&,                   \
                                   const at::Tensor&, const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&); \
  }
PYL_DECLARE_VARIANT(DEFAULT)
#if defined(PYLAUNDERING_X86_VARIANTS)
PYL_DECLARE_VARIANT(AVX2)
PYL_DECLARE_VARIANT(AVX512)
#endif
#undef PYL_DECLARE_VARIANT
}  // namespace cpu

namespace {

using KernelFn = void (*)(const DistillParams&, const at::Tensor&, const at::Tensor&, const at::Tensor&, at::Tensor&,
                          at::Tensor&);
using SparseKernelFn = void (*)(const SparseDistillParams&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&);

struct Variant {
  const char* name;
  KernelFn fn;
  SparseKernelFn sparse;
};

// Chosen once from the CPU's features; PYLAUNDERING_CPU_CAPABILITY=default|avx2|avx512 caps it
// (as ATEN_CPU_CAPABILITY does for ATen), which is how the tests reach every variant.
Variant choose_variant() {
  Variant v{"DEFAULT", &cpu::DEFAULT::fused_distill_kernel, &cpu::DEFAULT::fused_sparse_distill_kernel};
#if defined(PYLAUNDERING_X86_VARIANTS)
  std::string cap;
  if (const char* env = std::getenv("PYLAUNDERING_CPU_CAPABILITY")) {
    for (const char* c = env; *c; ++c) cap += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    if (!cap.empty() && cap != "default" && cap != "avx2" && cap != "avx512") {
      TORCH_WARN("PYLAUNDERING_CPU_CAPABILITY=", env, " is not one of default, avx2, avx512; ignoring it");
      cap.clear();
    }
  }
  const bool allow512 = cap.empty() || cap == "avx512";
  const bool allow2 = allow512 || cap == "avx2";
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return {"AVX512", &cpu::AVX512::fused_distill_kernel, &cpu::AVX512::fused_sparse_distill_kernel};
  }
  if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {"AVX2", &cpu::AVX2::fused_distill_kernel, &cpu::AVX2::fused_sparse_distill_kernel};
  }
#endif
  return v;
}

const Variant& variant() {
  static const Variant v = choose_variant();
  return v;
}
}  // namespace

const char* cpu_kernel_variant() { return variant().name; }

std::tuple<at::Tensor, at::Tensor> fused_distill_cpu(const at::Tensor& student,
                                                     const std::optional<at::Tensor>& teacher,
                                                     const std::optional<at::Tensor>& labels, int64_t kind,
                                                     double alpha, double temperature, double beta,
                                                     int64_t ignore_index, bool compute_grad, double grad_scale) {
  DistillParams p = make_distill_params(student, teacher, labels, kind, alpha, temperature, beta, ignore_index,
                                        compute_grad, grad_scale);
  if (p.has_labels) check_labels_host(labels->const_data_ptr<int64_t>(), p);
  auto [loss, grad] = allocate_row_outputs(student, p.rows, p.cols, false);
  if (p.write_grad) grad = gradient_buffer(student, p.rows, p.cols);
  if (p.rows == 0) return {loss, grad};
  const at::Tensor t = p.kind != kNoDistill ? *teacher : at::Tensor();
  const at::Tensor y = p.has_labels ? *labels : at::Tensor();
  variant().fn(p, student, t, y, loss, grad);
  return {loss, grad};
}

namespace {
// grad_out of the _out ops: the gradient's shape and dtype; it may be the student tensor itself
// (the kernels read each student element before writing the gradient's element at that index).
void check_grad_out(const char* op, const at::Tensor& student, const at::Tensor& grad_out) {
  TORCH_CHECK_VALUE(grad_out.sizes() == student.sizes(), op, ": grad_out shape ", grad_out.sizes(),
                    " must equal the student's ", student.sizes());
  TORCH_CHECK_TYPE(grad_out.scalar_type() == student.scalar_type(), op, ": grad_out dtype ", grad_out.scalar_type(),
                   " must equal the student's ", student.scalar_type());
  TORCH_CHECK_VALUE(grad_out.device() == student.device(), op, ": grad_out is on ", grad_out.device(),
                    " but student is on ", student.device());
  TORCH_CHECK_VALUE(grad_out.is_contiguous(), op, ": grad_out must be contiguous");
  const bool same = grad_out.data_ptr() == student.data_ptr();
  TORCH_CHECK_VALUE(same || !grad_out.is_alias_of(student), op,
                    ": grad_out must be the student tensor itself or not overlap it");
}
}  // namespace

at::Tensor fused_distill_out_cpu(const at::Tensor& student, const std::optional<at::Tensor>& teacher,
                                 const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                 double temperature, double beta, int64_t ignore_index, at::Tensor& grad_out,
                                 double grad_scale) {
  DistillParams p =
      make_distill_params(student, teacher, labels, kind, alpha, temperature, beta, ignore_index, false, grad_scale);
  check_grad_out("fused_distill_out", student, grad_out);
  if (p.has_labels) check_labels_host(labels->const_data_ptr<int64_t>(), p);
  auto [loss, unused] = allocate_distill_outputs(student, p);  // the loss only: write_grad is still off
  p.write_grad = true;
  if (p.rows == 0) return loss;
  const at::Tensor t = p.kind != kNoDistill ? *teacher : at::Tensor();
  const at::Tensor y = p.has_labels ? *labels : at::Tensor();
  variant().fn(p, student, t, y, loss, grad_out);
  return loss;
}

at::Tensor fused_sparse_distill_out_cpu(const at::Tensor& student, const at::Tensor& values, const at::Tensor& indices,
                                        const std::optional<at::Tensor>& log_normalizer,
                                        const std::optional<at::Tensor>& labels, int64_t kind, double alpha,
                                        double temperature, double beta, int64_t ignore_index, at::Tensor& grad_out,
                                        double grad_scale) {
  SparseDistillParams p = make_sparse_params(student, values, indices, log_normalizer, labels, kind, alpha, temperature,
                                             beta, ignore_index, false, grad_scale);
  check_grad_out("fused_sparse_distill_out", student, grad_out);
  check_sparse_indices_host(indices.const_data_ptr<int64_t>(), p);
  if (p.has_labels) check_sparse_labels_host(labels->const_data_ptr<int64_t>(), p);
  auto [loss, unused] = allocate_sparse_outputs(student, p);
  p.write_grad = true;
  if (p.rows == 0) return loss;
  const at::Tensor z = p.has_lognorm ? *log_normalizer : at::Tensor();
  const at::Tensor y = p.has_labels ? *labels : at::Tensor();
  variant().sparse(p, student, values, indices, z, y, loss, grad_out);
  return loss;
}

std::tuple<at::Tensor, at::Tensor> fused_sparse_distill_cpu(
    const at::Tensor& student, const at::Tensor& values, const at::Tensor& indices,
    const std::optional<at::Tensor>& log_normalizer, const std::optional<at::Tensor>& labels, int64_t kind,
    double alpha, double temperature, double beta, int64_t ignore_index, bool compute_grad, double grad_scale) {
  SparseDistillParams p = make_sparse_params(student, values, indices, log_normalizer, labels, kind, alpha, temperature,
                                             beta, ignore_index, compute_grad, grad_scale);
  check_sparse_indices_host(indices.const_data_ptr<int64_t>(), p);
  if (p.has_labels) check_sparse_labels_host(labels->const_data_ptr<int64_t>(), p);
  auto [loss, grad] = allocate_row_outputs(student, p.rows, p.cols, false);
  if (p.write_grad) grad = gradient_buffer(student, p.rows, p.cols);
  if (p.rows == 0) return {loss, grad};
  const at::Tensor z = p.has_lognorm ? *log_normalizer : at::Tensor();
  const at::Tensor y = p.has_labels ? *labels : at::Tensor();
  variant().sparse(p, student, values, indices, z, y, loss, grad);
  return {loss, grad};
}

}  // namespace pylaundering
