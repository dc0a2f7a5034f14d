// The CUDA launchers' dtype code of a tensor (cuda::DistillDtype), for the .cpp entry points only
// (it needs ATen, which the .cu files do not include).
#pragma once
#include "cuda/distill_cuda.h"

#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

namespace pylaundering::cuda {

inline int dtype_code(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat:
      return kDtypeFloat;
    case at::kDouble:
      return kDtypeDouble;
    case at::kBFloat16:
      return kDtypeBFloat16;
    case at::kHalf:
      return kDtypeHalf;
    default:
      break;
  }
  TORCH_CHECK_TYPE(false, op, ": unsupported dtype ", t);
  return -1;
}

}  // namespace pylaundering::cuda
