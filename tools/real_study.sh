#!/usr/bin/env bash
# The real-data study (issue 34) at the size the 2-core reference machine runs in about an hour:
# for each pair, the benchmark's test split is cut by `launder data split` into the benchmark B (the
# teacher is fine-tuned on it) and a held-back reference set R (for the audit); the legitimate set is
# the dataset's own training split (classification, the counter-study's protocol) or another
# benchmark of the same kind (multiple choice, the paper's protocol), cleaned of benchmark items by
# `launder scan --write-clean`, and subsampled by `launder run --data-size`. Every step is a public
# command; each run's report.md says what was read, truncated, skipped and which label convention
# was used. The ARC-Challenge pairs cut the same source with the same seed, so they share one B and R and
# differ only in the legitimate set (ARC-Easy, CommonsenseQA's training split, OpenBookQA's test split).
# SEED also seeds the split; a pair whose data folder exists keeps its split (later seeds reuse seed 0's).
# RACE (long passages: the teacher reads 4 x up to 512 tokens per question) is the long-context case, sized for
# a GPU: it runs only when named, e.g. DEVICE=cuda tools/real_study.sh studies/real race+arc-easy. Not on 2 CPU
# cores, even cut to 100 questions (POOL=200): 5.5 minutes per teacher epoch there (docs/real-data.md).
# POOL: draw that many items (whole passages) from the benchmark source before cutting it in half (data and runs
# named -poolN), e.g. POOL=1000 DEVICE=cuda tools/real_study.sh studies/real race+arc-easy.
# Usage: tools/real_study.sh [OUT] [PAIR ...]   (default OUT: studies/real; pairs: all but RACE)
# Needs ../shared/data/real (see its README for sources and licences).
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:-../shared/data/real}
OUT=${1:-studies/real}; shift || true
LAUNDER=${LAUNDER:-.venv/bin/launder}
DATA_SIZE=${DATA_SIZE:-2000}
SEED=${SEED:-0}
DEVICE=${DEVICE:-auto}
POOL=${POOL:-}
[ -d "$REAL" ] || { echo "real_study: $REAL not found (see the README's real-data section)"; exit 2; }

# name | benchmark source (its test split) | legitimate source | task
PAIRS=(
  "emotion|$REAL/classification/emotion/test.jsonl|$REAL/classification/emotion/train.jsonl|classification"
  "sst2|$REAL/classification/sst2/test.jsonl|$REAL/classification/sst2/train.jsonl|classification"
  "arc-challenge+arc-easy|$REAL/multiple_choice/arc_challenge_test.jsonl|$REAL/multiple_choice/arc_easy_test.jsonl|multiple_choice"
  "arc-challenge+commonsense-qa|$REAL/multiple_choice/arc_challenge_test.jsonl|$REAL/multiple_choice/commonsense_qa/train_rand_split.jsonl|multiple_choice"
  "arc-challenge+openbookqa|$REAL/multiple_choice/arc_challenge_test.jsonl|$REAL/multiple_choice/openbookqa_test.jsonl|multiple_choice"
  # named only (GPU-sized): RACE dev cut by passage (data split keeps a passage's questions on one side)
  "race+arc-easy|$REAL/multiple_choice/race/dev.jsonl|$REAL/multiple_choice/arc_easy_test.jsonl|multiple_choice"
)
want=("$@")
for pair in "${PAIRS[@]}"; do
  IFS='|' read -r name bench train task <<<"$pair"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $name " ]]; then continue; fi
  if [ ${#want[@]} -eq 0 ] && [[ $name == race+* ]]; then continue; fi
  data="$OUT/data/$name${POOL:+-pool$POOL}"; run="$OUT/runs/$name${POOL:+-pool$POOL}-seed$SEED"
  if [ -n "$POOL" ]; then  # the pool: POOL items drawn (seeded) from the source; B and R are its halves
    if [ ! -f "$data/pool/split.json" ]; then
      "$LAUNDER" data split "$bench" --out "$data/pool" --reference-size "$POOL" --seed "$SEED"
    fi
    bench="$data/pool/reference.jsonl"
  fi
  if [ ! -f "$data/split.json" ]; then
    "$LAUNDER" data split "$bench" --out "$data" --reference-fraction 0.5 --seed "$SEED"
  fi
  if [ ! -f "$data/train.clean.jsonl" ]; then
    # files, not split folders: scan reads every file of a folder
    "$LAUNDER" scan "$train" -b "$data/benchmark.jsonl" --out "$data/scan" \
      --write-clean "$data/train.clean.jsonl" -q
  fi
  echo "== $name: $(date +%T)"
  size=(--data-size "$DATA_SIZE")  # a legitimate set smaller than that (OpenBookQA: 500) is used whole
  [ "$(wc -l <"$data/train.clean.jsonl")" -gt "$DATA_SIZE" ] || size=()
  "$LAUNDER" run --benchmark "$data/benchmark.jsonl" --reference "$data/reference.jsonl" \
    --train "$data/train.clean.jsonl" "${size[@]}" --task "$task" --seed "$SEED" \
    --device "$DEVICE" --out "$run" --resume -q
done
"$LAUNDER" report "$OUT"/runs/* --out "$OUT/report"
