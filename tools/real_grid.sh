#!/usr/bin/env bash
# The counter-study's grid on every shared real classification set (issue 34 item 2), sized for the 2-core
# machine: per set, a pool of benchmark-side items is drawn from the test split (or from the one published file)
# by `launder data split --reference-size`, and cut again into the benchmark B (the teacher is fine-tuned on it)
# and a held-back reference set R of the same size (the audit's); the legitimate set is the training split (or,
# for a one-file dataset, the rest of the file), cleaned of benchmark items by `launder scan --write-clean`.
# Then one `launder sweep` per set: loss hard, kl, reverse_kl x alpha 0.5, 1 x 3 seeds
# (configs/real-classification-grid.toml), each point with its clean-teacher control, CE-only student,
# paired bootstrap and the audit of every model; and `launder report` over all sets.
# Usage: tools/real_grid.sh [OUT] [SET ...]   (default OUT: studies/real-grid; sets: all, in this order)
# POOL: B + R items (default 600); JOBS: points at once (--jobs); PREP_ONLY=1 writes the data and stops.
# SPLIT: seeds the pool and the B/R cut (default 0); another value draws another split, whose data and sweep are
# named NAME-splitN. GRID: extra sweep flags, e.g. GRID="-p loss=kl -p alpha=1" narrows the grid to one point.
# Needs ../shared/data/real (see its README for sources and licences).
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:-../shared/data/real}
OUT=${1:-studies/real-grid}; shift || true
LAUNDER=${LAUNDER:-.venv/bin/launder}
POOL=${POOL:-600}
SPLIT=${SPLIT:-0}
read -r -a grid <<<"${GRID:-}"
[ -d "$REAL" ] || { echo "real_grid: $REAL not found (see the README's real-data section)"; exit 2; }
C=$REAL/classification
# name | benchmark-side source | its format (- to infer) | legitimate source (- : the rest of the first)
SETS=(
  "sst2|$C/sst2/test.jsonl|-|$C/sst2/train.jsonl"
  "emotion|$C/emotion/test.jsonl|-|$C/emotion/train.jsonl"
  "ag_news|$C/ag_news|ag_news_csv|-"
  "rotten_tomatoes|$C/rotten_tomatoes.jsonl|rotten_tomatoes|-"
  "tweet_eval_emotion|$C/tweet_eval_emotion::test|-|$C/tweet_eval_emotion::train"
  "mnli|$C/mnli_dev_matched.jsonl|-|-"
)
want=("$@")
for entry in "${SETS[@]}"; do
  IFS='|' read -r name source format train <<<"$entry"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $name " ]]; then continue; fi
  [ "$SPLIT" = 0 ] || name="$name-split$SPLIT"
  data="$OUT/data/$name"
  fmt=(); [ "$format" != "-" ] && fmt=(--format "$format")
  if [ ! -f "$data/pool/split.json" ]; then  # the pool: POOL items drawn (stratified, seeded) from the source
    "$LAUNDER" data split "$source" "${fmt[@]}" --out "$data/pool" --reference-size "$POOL" --seed "$SPLIT"
  fi
  if [ ! -f "$data/split.json" ]; then  # B and R: half the pool each
    "$LAUNDER" data split "$data/pool/reference.jsonl" --out "$data" --reference-fraction 0.5 --seed "$SPLIT"
  fi
  [ "$train" = "-" ] && train="$data/pool/benchmark.jsonl"  # a one-file dataset: the rest of it is legitimate
  if [ ! -f "$data/train.clean.jsonl" ]; then
    "$LAUNDER" scan "$train" -b "$data/benchmark.jsonl" --out "$data/scan" --write-clean "$data/train.clean.jsonl" -q
  fi
  [ -n "${PREP_ONLY:-}" ] && continue  # PREP_ONLY=1: the data only
  echo "== $name: $(date +%T)"
  "$LAUNDER" sweep --config configs/real-classification-grid.toml --benchmark "$data/benchmark.jsonl" \
    --train "$data/train.clean.jsonl" --set reference="$data/reference.jsonl" --out "$OUT/sweeps/$name" --jobs "${JOBS:-1}" "${grid[@]}" -q \
    || echo "real_grid: the $name sweep did not finish (rerun to resume)"
done
[ -n "${PREP_ONLY:-}" ] || "$LAUNDER" report "$OUT"/sweeps/* --out "$OUT/report"
