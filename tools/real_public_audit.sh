#!/usr/bin/env bash
# `launder audit public` on real data (issue 35 item 4): a benchmark B, *another* benchmark of the same kind as
# the reference, the clean models of a study as the calibration (competent or not, of varied skill), and the
# study's teachers (--kind teacher) and laundered students as suspects.
#
# SET=sst2 (default), after tools/real_grid.sh has run SST-2: B is the SST-2 half the teachers were fine-tuned on;
# the reference is Rotten Tomatoes (sentence-level movie-review polarity), its 300 held-back items with the few
# that share text with B removed (launder scan --write-clean) and its label names (neg, pos) written as SST-2's
# (negative, positive); the clean models are every clean arm of the SST-2 sweep (clean teachers, control and
# CE-only students of each seed); the suspects are each seed's contaminated teacher and its KL alpha-1 student.
# Caveat, stated in docs/real-data.md: SST-2 was cut from Rotten Tomatoes reviews, so the legitimate SST-2
# training split shares sentences with the reference; every model here (clean or suspect) trained on that same
# split, so it shifts them alike, which is what the calibration absorbs.
#
# SET=arc, after tools/real_study.sh has run the ARC-Challenge pairs: B is the ARC-Challenge half the teachers
# memorised; the reference is OpenBookQA's test split (500 four-choice science questions, minus any that share
# text with B); the clean models are the clean arms of every ARC run (legitimate data ARC-Easy, CommonsenseQA or
# OpenBookQA: a run trained on OpenBookQA is left out of the calibration, it saw the reference); the suspects are
# every run's teacher and student.
# Usage: [SET=sst2|arc] tools/real_public_audit.sh [STUDY_OUT] [OUT]
#   (defaults: sst2: studies/real-grid, arc: studies/real; OUT: STUDY_OUT/public-audit[-arc])
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${SET:-sst2}
LAUNDER=${LAUNDER:-.venv/bin/launder}
PY=${PY:-.venv/bin/python}
REAL=${REAL:-../shared/data/real}
if [ "$SET" = arc ]; then
  STUDY=${1:-studies/real}
  OUT=${2:-$STUDY/public-audit-arc}
  B=$STUDY/data/arc-challenge+arc-easy/benchmark.jsonl
  OBQA=$REAL/multiple_choice/openbookqa_test.jsonl
  runs=()
  for r in "$STUDY"/runs/arc-challenge+*-seed*; do [ -f "$r/metrics.json" ] && runs+=("$r"); done
  [ -f "$B" ] && [ -f "$OBQA" ] && [ ${#runs[@]} -gt 0 ] || { echo "real_public_audit: run tools/real_study.sh (ARC pairs) first"; exit 2; }
  mkdir -p "$OUT"
  "$LAUNDER" scan "$OBQA" -b "$B" --write-clean "$OUT/reference.jsonl" --out "$OUT/scan" -q
  clean=(); teachers=(); students=()
  for r in "${runs[@]}"; do
    teachers+=("$r/teacher/model"); students+=("$r/student/model")
    [[ "$r" == *openbookqa* ]] || clean+=(--clean-from "$r")
  done
  "$LAUNDER" audit public "${teachers[@]}" --kind teacher -b "$B" -r "$OUT/reference.jsonl" "${clean[@]}" \
    --out "$OUT/teachers" -q
  "$LAUNDER" audit public "${students[@]}" -b "$B" -r "$OUT/reference.jsonl" "${clean[@]}" --out "$OUT/students" -q
  echo "reports: $OUT/teachers/audit.md $OUT/students/audit.md"
  exit 0
fi
GRID=${1:-studies/real-grid}
OUT=${2:-$GRID/public-audit}
B=$GRID/data/sst2/benchmark.jsonl
RT=$GRID/data/rotten_tomatoes/reference.jsonl
SWEEP=$GRID/sweeps/sst2
[ -f "$B" ] && [ -f "$RT" ] && [ -f "$SWEEP/sweep.json" ] || { echo "real_public_audit: run tools/real_grid.sh first"; exit 2; }
mkdir -p "$OUT"
"$LAUNDER" scan "$RT" -b "$B" --write-clean "$OUT/rt.clean.jsonl" --out "$OUT/scan" -q
"$PY" - "$OUT/rt.clean.jsonl" "$OUT/reference.jsonl" <<'EOF'
import json, sys
names = {"neg": "negative", "pos": "positive"}
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as dst:
    for line in src:
        row = json.loads(line)
        row["choices"] = [names[c] for c in row["choices"]]
        dst.write(json.dumps(row) + "\n")
EOF
teachers=("$SWEEP"/shared/teacher-*/model)
students=()
for p in "$SWEEP"/points/loss=kl-alpha=1.0-seed=*; do students+=("$p/student/model"); done
"$LAUNDER" audit public "${teachers[@]}" --kind teacher -b "$B" -r "$OUT/reference.jsonl" --clean-from "$SWEEP" \
  --out "$OUT/teachers" -q
"$LAUNDER" audit public "${students[@]}" -b "$B" -r "$OUT/reference.jsonl" --clean-from "$SWEEP" --out "$OUT/students" -q
echo "reports: $OUT/teachers/audit.md $OUT/students/audit.md"
