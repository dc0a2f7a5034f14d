#!/usr/bin/env bash
# `launder audit public` on real data (issue 35 item 4), after tools/real_grid.sh has run SST-2:
# the benchmark B is the SST-2 half the teachers were fine-tuned on; the reference is *another* benchmark of the
# same kind, Rotten Tomatoes (sentence-level movie-review polarity), its 300 held-back items with the few that
# share text with B removed (launder scan --write-clean) and its label names (neg, pos) written as SST-2's
# (negative, positive); the clean models are every clean arm of the SST-2 sweep (clean teachers, control and
# CE-only students of each seed: competent models of varied skill); the suspects are each seed's contaminated
# teacher (--kind teacher) and its KL alpha-1 student (the paper's setting) per seed.
# Caveat, stated in docs/real-data.md: SST-2 was cut from Rotten Tomatoes reviews, so the legitimate SST-2
# training split shares sentences with the reference; every model here (clean or suspect) trained on that same
# split, so it shifts them alike, which is what the calibration absorbs.
# Usage: tools/real_public_audit.sh [GRID_OUT] [OUT]   (defaults: studies/real-grid, GRID_OUT/public-audit)
set -euo pipefail
cd "$(dirname "$0")/.."
GRID=${1:-studies/real-grid}
OUT=${2:-$GRID/public-audit}
LAUNDER=${LAUNDER:-.venv/bin/launder}
PY=${PY:-.venv/bin/python}
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
