#!/usr/bin/env bash
# The audit's false-positive rates measured on competent clean models (issue 35 item 6), on a real set: SST-2's
# test split gives a pool of POOL items (seeded), and each of SPLITS random splits of the pool (`launder data
# split --seed K`) is a benchmark B and a held-back reference set R, so every audit is of a fresh exchangeable
# pair, as the core test assumes; the legitimate set is SST-2's training split cleaned of B's items (`launder
# scan --write-clean`). Per split, one `launder sweep` (configs/audit-calibration-tiny.toml: the tiny model,
# 2 seeds x students on 500 and 2,000 legitimate items x alpha 0.5 and 1): its clean teachers, control students
# and CE-only students never saw B and score above chance; its students were distilled from a teacher that
# memorised B. Then `launder report` over every split: the verdicts of each model counted once, with 95% Wilson
# intervals. 10 splits: 34 minutes on the 2-core machine (results: docs/audit-calibration.md).
# Usage: tools/audit_calibration.sh [OUT] [SPLITS]  (default OUT: studies/audit-calibration; SPLITS: 10)
# POOL: B + R items (default 600); JOBS: points at once (--jobs, default 2); CONFIG: the sweep's TOML.
# Needs ../shared/data/real (see its README for sources and licences).
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:-../shared/data/real}
OUT=${1:-studies/audit-calibration}
SPLITS=${2:-10}
LAUNDER=${LAUNDER:-.venv/bin/launder}
POOL=${POOL:-600}
CONFIG=${CONFIG:-configs/audit-calibration-tiny.toml}
SOURCE=$REAL/classification/sst2/test.jsonl
TRAIN=$REAL/classification/sst2/train.jsonl
[ -f "$SOURCE" ] || { echo "audit_calibration: $SOURCE not found (see the README's real-data section)"; exit 2; }
if [ ! -f "$OUT/data/pool/split.json" ]; then
  "$LAUNDER" data split "$SOURCE" --out "$OUT/data/pool" --reference-size "$POOL" --seed 0
fi
for ((k = 0; k < SPLITS; k++)); do
  data="$OUT/data/split-$k"
  if [ ! -f "$data/split.json" ]; then
    "$LAUNDER" data split "$OUT/data/pool/reference.jsonl" --out "$data" --reference-fraction 0.5 --seed "$k"
  fi
  if [ ! -f "$data/train.clean.jsonl" ]; then
    "$LAUNDER" scan "$TRAIN" -b "$data/benchmark.jsonl" --out "$data/scan" --write-clean "$data/train.clean.jsonl" -q
  fi
  echo "== split $k: $(date +%T)"
  "$LAUNDER" sweep --config "$CONFIG" --benchmark "$data/benchmark.jsonl" --train "$data/train.clean.jsonl" \
    --set reference="$data/reference.jsonl" --out "$OUT/sweeps/split-$k" --jobs "${JOBS:-2}" -q \
    || echo "audit_calibration: split $k did not finish (rerun to resume)"
done
"$LAUNDER" report "$OUT"/sweeps/* --out "$OUT/report"
