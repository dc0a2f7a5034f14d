#!/usr/bin/env bash
# One-command GPU check (`make gpu-check`) for a machine with a CUDA GPU, a CUDA build of torch,
# nvcc, CMake, pybind11, scikit-build-core, pytest and hypothesis, and possibly no network:
#   1. builds pylaundering._C against the INSTALLED torch (no venv, nothing installed or upgraded:
#      a wheel is built without build isolation or dependencies and only its _C*.so is copied into
#      ./pylaundering/, where the source tree imports it), for this GPU's architecture only;
#   2. runs the op test suite with CUDA (tests/ops: the CUDA file, NaN/inf, and the CPU tests);
#      The CUDA kernel's opt-in row-cluster mode (tests/ops/test_cuda_row_cluster.py) is tested after
#      the rest, under its own time limit (a wrong cluster barrier would hang, not fail);
#   3. runs the ops benchmark on the GPU (fused vs eager vs torch.compile vs Liger, bandwidth, peak memory),
#      then, if its tests passed, the row-cluster mode against the default kernel (into gpu-check.log),
#      then the fused-linear and top-k benchmark (GPU_CHECK_LINEAR=0 skips it);
#   4. runs the pipeline on the GPU (tools/gpu_pipeline_check.sh: launder run, run --level token, bench phases
#      against the CPU, resume and determinism of training, a larger stand-in for the paper's recipe), into
#      $OUT/pipeline/ (GPU_CHECK_PIPELINE=0 skips it).
# The two halves fit one 10-minute call each: `make gpu-check-ops` (1-3) and `make gpu-check-pipeline` (4,
# building first only when pylaundering/_C is missing or has no CUDA kernels: GPU_CHECK_OPS=0); `make gpu-check`
# runs both.
# Everything goes to the folder $OUT names (default gpu-results/): gpu-check.log, build.log,
# pytest.log, junit.xml, bench-cuda.json, bench-cuda.txt, bench-cuda.png, bench-linear-cuda.json and .txt
# (9 files: a tool that returns at most 8 may leave out junit.xml). Exit status: 0 only if all passed.
# Environment: PYTHON (default python3), GPU_CHECK_OPS=0 to skip steps 2-3, GPU_CHECK_PIPELINE=0 to skip step 4,
# GPU_CHECK_BUILD (auto: build unless GPU_CHECK_OPS=0 finds a CUDA build already; 1: always), GPU_CHECK_TESTS
# (default tests/ops), GPU_CHECK_PYTEST_ARGS,
# GPU_CHECK_BENCH=0 to skip the benchmark, GPU_CHECK_CLUSTER=0 to skip the row-cluster tests and
# comparison, GPU_CHECK_LINEAR=0 to skip the fused-linear benchmark; GPU_CHECK_TEST_TIMEOUT (420 s),
# GPU_CHECK_CLUSTER_TEST_TIMEOUT and GPU_CHECK_CLUSTER_TIMEOUT (180 s each) bound those steps.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
RES="${OUT:-gpu-results}"
mkdir -p "$RES"
LOG="$RES/gpu-check.log"
: >"$LOG"
say() { echo "[gpu-check $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
status=0

say "python: $(command -v "$PY")"
if ! "$PY" - >>"$LOG" 2>&1 <<'PYEOF'
import sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if not torch.cuda.is_available() or torch.version.cuda is None:
    sys.exit("gpu-check needs a CUDA build of torch and a visible GPU")
p = torch.cuda.get_device_properties(0)
print("device", p.name, f"sm_{p.major}{p.minor}", p.multi_processor_count, "SMs", round(p.total_memory / 2**30), "GiB")
PYEOF
then
  say "FAILED: no usable CUDA torch (see $LOG)"; exit 1
fi
tail -n 2 "$LOG"
nvcc --version 2>/dev/null | tail -n 1 | tee -a "$LOG"

OPS="${GPU_CHECK_OPS:-1}"
built_with_cuda() { "$PY" -c "import sys, pylaundering.ops as o; sys.exit(o.backend('cuda').name != 'cuda')" 2>/dev/null; }
if [ "$OPS" = 0 ] && [ "${GPU_CHECK_BUILD:-auto}" = auto ] && built_with_cuda; then
  say "pylaundering/_C already has CUDA kernels: no build (GPU_CHECK_BUILD=1 forces one)"
else
ARCH="$("$PY" -c 'import torch; p = torch.cuda.get_device_capability(0); print(f"{p[0]}{p[1]}")')"
say "building for sm_$ARCH against the installed torch (log: $RES/build.log)"
WHEELS="$(mktemp -d)"
t0=$SECONDS
if CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=$ARCH ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
   "$PY" -m pip wheel . --no-build-isolation --no-deps --no-index -w "$WHEELS" -v >"$RES/build.log" 2>&1; then
  rm -f pylaundering/_C*.so
  "$PY" - "$WHEELS" <<'PYEOF'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/pylaundering-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith("pylaundering/_C") and n.endswith(".so"):
            z.extract(n, ".")
            print("extracted", n)
PYEOF
  say "build ok in $((SECONDS - t0)) s"
else
  say "FAILED: build (tail of $RES/build.log follows)"; tail -n 40 "$RES/build.log" | tee -a "$LOG"; exit 1
fi
rm -rf "$WHEELS"
fi
"$PY" -c "import pylaundering.ops as o; print('backend cuda:', o.backend('cuda')); print('backend cpu:', o.backend('cpu'))" 2>&1 | tee -a "$LOG"
# Seen on a GPU image: the module linked without libstdc++.so, i.e. with a private static copy;
# every C++ argument check then crashed the process instead of raising. Say so up front.
if command -v ldd >/dev/null && ! ldd pylaundering/_C*.so | grep -q "libstdc++"; then
  say "WARNING: pylaundering/_C does not link libstdc++.so dynamically (static runtime?): C++ errors may crash"
fi

if [ "$OPS" != 0 ]; then
say "op tests (log: $RES/pytest.log)"
t0=$SECONDS
# With pytest-xdist, tests run in worker processes: faster, and a crashing test is reported as a
# crashed worker instead of ending the whole run.
XDIST=""
if "$PY" -c "import xdist" 2>/dev/null; then XDIST="-n ${GPU_CHECK_WORKERS:-8}"; fi
# shellcheck disable=SC2086
# The row-cluster mode's tests run on their own afterwards, under a time limit: that mode has not run
# on a GPU before, and a wrong cluster barrier would hang instead of fail.
CLUSTER_TESTS=tests/ops/test_cuda_row_cluster.py
if timeout -k 10 "${GPU_CHECK_TEST_TIMEOUT:-420}" "$PY" -m pytest ${GPU_CHECK_TESTS:-tests/ops} --ignore="$CLUSTER_TESTS" -q \
     -p no:cacheprovider $XDIST --maxfail=50 -o addopts="" -rfE \
     --junitxml="$RES/junit.xml" ${GPU_CHECK_PYTEST_ARGS:-} >"$RES/pytest.log" 2>&1; then
  say "tests passed in $((SECONDS - t0)) s: $(tail -n 1 "$RES/pytest.log")"
else
  status=1
  say "FAILED: tests ($((SECONDS - t0)) s, exit 124 = timed out); tail of pytest.log:"
  tail -n 60 "$RES/pytest.log" | tee -a "$LOG"
fi
cluster_ok=0
if [ "${GPU_CHECK_CLUSTER:-1}" != "0" ]; then
  say "row-cluster mode tests (appended to $RES/pytest.log)"
  t0=$SECONDS
  echo "==== $CLUSTER_TESTS" >>"$RES/pytest.log"
  if timeout -k 10 "${GPU_CHECK_CLUSTER_TEST_TIMEOUT:-180}" "$PY" -m pytest "$CLUSTER_TESTS" -q -p no:cacheprovider $XDIST \
       --maxfail=20 -o addopts="" -rfE >>"$RES/pytest.log" 2>&1; then
    cluster_ok=1
    say "row-cluster tests passed in $((SECONDS - t0)) s: $(tail -n 1 "$RES/pytest.log")"
  else
    status=1
    say "FAILED: row-cluster tests ($((SECONDS - t0)) s, exit 124 = timed out); tail:"
    tail -n 40 "$RES/pytest.log" | tee -a "$LOG"
  fi
fi

if [ "${GPU_CHECK_BENCH:-1}" != "0" ]; then
  say "ops benchmark on the GPU"
  if "$PY" -m pylaundering.bench --device cuda --json "$RES/bench-cuda.json" --plot "$RES/bench-cuda.png" \
       >"$RES/bench-cuda.txt" 2>&1; then
    cat "$RES/bench-cuda.txt" | tee -a "$LOG"
  else
    status=1; say "FAILED: benchmark"; tail -n 30 "$RES/bench-cuda.txt" | tee -a "$LOG"
  fi
fi
if [ "$cluster_ok" = 1 ]; then
  # The kernel's opt-in row-cluster mode (csrc/cuda/distill_kernel.cu) against the default kernel,
  # in one process (the kernel reads the setting at every launch): the measurement that decides
  # whether it becomes the default for long rows. Into gpu-check.log.
  say "row-cluster mode vs the default kernel (fused op only)"
  if ! timeout -k 10 "${GPU_CHECK_CLUSTER_TIMEOUT:-180}" "$PY" - >>"$LOG" 2>&1 <<'PYEOF'
import os
import torch
from pylaundering.bench.ops import Case, run
from pylaundering.ops import _ext
cases = [Case(4096, 128256, torch.bfloat16), Case(4096, 128256, torch.bfloat16, backward=False),
         Case(4096, 32000, torch.float32)]
settings = [(None, None), ("2", None), ("4", None), ("8", None), ("4", "16"), ("4", "64"), ("2", "128")]
print(f"{'cluster':>8}{'rows':>6}  {'case':<36}{'plan':>12}{'fused ms':>10}{'% copy':>8}")
for size, rows in settings:
    for name, value in (("PYLAUNDERING_CUDA_ROW_CLUSTER", size), ("PYLAUNDERING_CUDA_CLUSTER_ROWS", rows)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    report = run("cuda", cases=cases, repeats=7, compile_ok=False)
    for c, case in zip(report["cases"], cases):
        plan = _ext.cuda_row_cluster_plan(case.rows, case.cols, case.dtype)
        f = c["results"]["fused"]
        print(f"{size or 'off':>8}{rows or 'auto':>6}  {c['case']:<36}{str(plan):>12}{f['median_ms']:>10.3f}"
              f"{100 * f['fraction_of_copy']:>7.0f}%", flush=True)
PYEOF
  then
    status=1; say "FAILED: row-cluster benchmark (see $LOG)"
  fi
  grep -A 30 "cluster  rows" "$LOG" | tail -n 22
fi
if [ "${GPU_CHECK_LINEAR:-1}" != "0" ]; then
  say "fused-linear and top-k benchmark on the GPU"
  if timeout "${GPU_CHECK_LINEAR_TIMEOUT:-180}" "$PY" -m pylaundering.bench linear --device cuda \
       --json "$RES/bench-linear-cuda.json" >"$RES/bench-linear-cuda.txt" 2>&1; then
    cat "$RES/bench-linear-cuda.txt" | tee -a "$LOG"
  else
    status=1; say "FAILED: linear benchmark"; tail -n 30 "$RES/bench-linear-cuda.txt" | tee -a "$LOG"
  fi
fi
fi  # GPU_CHECK_OPS
if [ "${GPU_CHECK_PIPELINE:-1}" != "0" ]; then
  say "pipeline on the GPU (tools/gpu_pipeline_check.sh; summary: $RES/pipeline/summary.txt)"
  t0=$SECONDS
  if PYTHON="$PY" OUT="$RES" bash tools/gpu_pipeline_check.sh; then
    say "pipeline passed in $((SECONDS - t0)) s"
  else
    status=1; say "FAILED: pipeline ($((SECONDS - t0)) s); see $RES/pipeline/summary.txt"
  fi
fi
say "done: $([ $status = 0 ] && echo PASSED || echo FAILED)"
exit $status
