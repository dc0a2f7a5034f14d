#!/usr/bin/env bash
# Compile-checks the CUDA sources against the installed torch's headers; no GPU needed.
# Called from the repo root by `make cuda-check` as
#   NVCC=/path/to/nvcc PY=.venv/bin/python bash tools/cuda_check.sh
#   * every csrc/cuda/*.cu: a full nvcc compile for sm_80 and sm_90;
#   * every csrc/cuda/*.cpp: a syntax check with the host compiler ($CXX, default g++). These
#     files use c10/cuda headers, which a CPU-only torch wheel cannot compile as shipped: it
#     lacks the generated c10/cuda/impl/cuda_cmake_macros.h. A stand-in with the generated
#     file's one definition is put on the include path; the real build (CMakeLists.txt, only
#     when torch has CUDA) compiles them for real.
# Prints one line per file and exits 1 if any check fails. Objects and the stand-in header go
# to a temporary directory that is removed on exit, never into the repository.
set -euo pipefail

NVCC="${NVCC:-nvcc}"
PY="${PY:-python3}"
CXX="${CXX:-g++}"
ARCH_FLAGS=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90)

if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "cuda_check: nvcc not found ($NVCC)" >&2
  exit 1
fi

# torch's include dirs (torch/include and torch/include/torch/csrc/api/include).
if ! TORCH_INCLUDES="$("$PY" -c "from torch.utils.cpp_extension import include_paths; print(' '.join(include_paths()))" 2>/dev/null)"; then
  echo "cuda_check: cannot import torch with $PY" >&2
  exit 1
fi
INC_FLAGS=(-I csrc)
SYS_FLAGS=()
for dir in $TORCH_INCLUDES; do
  INC_FLAGS+=(-I "$dir")
  SYS_FLAGS+=(-isystem "$dir")
done

tmpdir="$(mktemp -d "${TMPDIR:-/tmp}/pyl_cuda_check.XXXXXX")"
trap 'rm -rf "$tmpdir"' EXIT

shopt -s nullglob
status=0

# One file at a time: nvcc is memory- and CPU-hungry and the build machines are small.
for src in csrc/cuda/*.cu; do
  obj="$tmpdir/$(basename "$src" .cu).o"
  start=$SECONDS
  if "$NVCC" -c -std=c++17 -O2 "${ARCH_FLAGS[@]}" -D_GLIBCXX_USE_CXX11_ABI=1 "${INC_FLAGS[@]}" \
      -o "$obj" "$src" >"$tmpdir/log" 2>&1; then
    echo "cuda_check: OK   $src (nvcc, $((SECONDS - start)) s)"
    # Warnings are worth seeing even when the file compiles.
    if [ -s "$tmpdir/log" ]; then sed 's/^/    /' "$tmpdir/log"; fi
  else
    echo "cuda_check: FAIL $src (nvcc)"
    sed 's/^/    /' "$tmpdir/log"
    status=1
  fi
done

cpp_sources=(csrc/cuda/*.cpp)
if [ ${#cpp_sources[@]} -gt 0 ]; then
  # The CUDA toolkit's include dir, as nvcc itself passes it (nvcc may be a wrapper script).
  cuda_inc=""
  for cand in $("$NVCC" -dryrun -c -x cu /dev/null 2>&1 | grep -o -- '-I[^" ]*' | sed 's/^-I//' | sort -u); do
    if [ -f "$cand/cuda_runtime_api.h" ]; then cuda_inc="$cand"; break; fi
  done
  if ! command -v "$CXX" >/dev/null 2>&1 || [ -z "$cuda_inc" ]; then
    echo "cuda_check: SKIP csrc/cuda/*.cpp (no host compiler $CXX or no CUDA include dir)"
  else
    mkdir -p "$tmpdir/stub/c10/cuda/impl"
    printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$tmpdir/stub/c10/cuda/impl/cuda_cmake_macros.h"
    for src in "${cpp_sources[@]}"; do
      start=$SECONDS
      if "$CXX" -fsyntax-only -std=c++17 -Wall -D_GLIBCXX_USE_CXX11_ABI=1 -I csrc -isystem "$tmpdir/stub" \
          "${SYS_FLAGS[@]}" -isystem "$cuda_inc" "$src" >"$tmpdir/log" 2>&1; then
        echo "cuda_check: OK   $src (syntax only, $((SECONDS - start)) s)"
        if [ -s "$tmpdir/log" ]; then sed 's/^/    /' "$tmpdir/log"; fi
      else
        echo "cuda_check: FAIL $src (syntax only)"
        sed 's/^/    /' "$tmpdir/log"
        status=1
      fi
    done
  fi
fi
exit $status
