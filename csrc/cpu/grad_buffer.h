// The [rows, V] gradient buffers of the CPU ops (dense and sparse): see grad_buffer.cpp.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pylaundering {

// An uninitialised [rows, cols] tensor with student's dtype, for the gradient.
at::Tensor gradient_buffer(const at::Tensor& student, int64_t rows, int64_t cols);

// Unmaps the idle cached buffer, if any; returns the bytes released.
int64_t release_cached_gradient();

// Bytes held by the idle cached buffer (0 when none).
int64_t cached_gradient_bytes();

}  // namespace pylaundering
