"""Are the benchmark B and the reference set R items of the same kind? The audit's core test assumes it.

The core test reads a higher score on B than on R as knowledge of B. That holds when R is a random
holdout of the same benchmark; a reference set that is easier or harder than B (another benchmark,
freshly written items, another mix of choice counts) makes the test measure the difference in
difficulty instead. Difficulty itself cannot be seen without a model, but its usual causes can:

  choice_counts   the distribution of the number of choices (total variation distance): a 5-choice item
                  is harder than a 4-choice one for any model, beyond what subtracting 1/C removes
  text_length     mean words of context + question, as a ratio R / B
  choice_length   mean words per choice, as a ratio R / B
  subjects        the distribution of subjects (total variation distance), compared only when both sets
                  name subjects; ``unseen_in_benchmark`` is the share of R items whose subject B lacks

A check is *too far apart* when its difference is both large (beyond ``THRESHOLDS``) and beyond what
a random split of the pooled items gives (permutation p < ``P_SHIFT``): sets of a few dozen items
differ by chance by more than the thresholds, and a random split of one benchmark must pass (it does
at the level P_SHIFT per check, times the chance that the difference is that large). Any check too far
apart withholds the verdict (``verdict.NOT_COMPARABLE``); all are reported in every audit.

Pure functions: `features` turns examples into arrays, `compare_sets` works on those arrays, so a
simulation can call it without any data files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.overlap import context_key
from ..data.schema import MCExample
from ..stats import distribution_shift_test, mean_ratio_test

__all__ = ["P_SHIFT", "RESAMPLES", "RULE", "THRESHOLDS", "SetFeatures", "compare_sets", "describe", "features"]

#: The largest difference that never withholds the verdict, per check.
THRESHOLDS = {"choice_counts": 0.10, "text_length": 1.25, "choice_length": 1.25, "subjects": 0.20}
P_SHIFT = 0.001
RESAMPLES = 2000

RULE = (f"too far apart (verdict withheld) when a check's difference is beyond its threshold (choice-count and "
        f"subject distributions: total variation distance > {THRESHOLDS['choice_counts']} and > "
        f"{THRESHOLDS['subjects']}; mean words of context + question and of a choice: ratio R / B above "
        f"{THRESHOLDS['text_length']} or below 1/{THRESHOLDS['text_length']}) AND beyond what random splits of "
        f"the pooled items give (permutation p < {P_SHIFT}, {RESAMPLES} resamples); subjects are compared only "
        "when both sets name them")


@dataclass
class SetFeatures:
    """Per-item covariates of one set (length N each); ``subjects`` is None when the set names none."""

    num_choices: np.ndarray
    text_words: np.ndarray  # words of context + question
    choice_words: np.ndarray  # mean words per choice
    subjects: np.ndarray | None = None
    clusters: list | None = None  # per item, its passage (`context_key`) or None; None: no item has one


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def features(examples: Sequence[MCExample]) -> SetFeatures:
    named = [e.subject for e in examples]
    passages = [context_key(e) for e in examples]
    return SetFeatures(
        num_choices=np.array([len(e.choices) for e in examples]),
        text_words=np.array([max(1, _words(e.context) + _words(e.question)) for e in examples], dtype=np.float64),
        choice_words=np.array([sum(map(_words, e.choices)) / len(e.choices) for e in examples]),
        subjects=np.array([s or "(none)" for s in named], dtype=object) if any(named) else None,
        clusters=passages if any(p is not None for p in passages) else None)


def _ratio_check(name: str, b: np.ndarray, r: np.ndarray, seed: int, clusters: dict) -> dict[str, Any]:
    res = mean_ratio_test(b, r, resamples=RESAMPLES, seed=seed, **clusters)
    limit = THRESHOLDS[name]
    large = res["ratio"] > limit or res["ratio"] < 1 / limit
    return {"benchmark_mean_words": res["mean_a"], "reference_mean_words": res["mean_b"], "ratio": res["ratio"],
            "threshold": f"ratio within [1/{limit}, {limit}]", "p_value": res["p_value"],
            "too_far": bool(large and res["p_value"] < P_SHIFT)}


def _shift_check(name: str, b: Sequence, r: Sequence, seed: int, clusters: dict) -> dict[str, Any]:
    res = distribution_shift_test(b, r, resamples=RESAMPLES, seed=seed, **clusters)
    limit = THRESHOLDS[name]
    return {"distance": res["distance"], "threshold": f"total variation distance <= {limit}",
            "p_value": res["p_value"], "benchmark": res["a"], "reference": res["b"],
            "too_far": bool(res["distance"] > limit and res["p_value"] < P_SHIFT)}


def compare_sets(b: SetFeatures, r: SetFeatures) -> dict[str, Any]:
    """audit.json's ``comparability``: ``comparable`` (no check too far apart), ``checks`` (each with its
    difference, threshold, permutation p and ``too_far``), ``too_far`` (names), ``rule``."""
    # items of one passage share its length and kind: random splits move them whole (as `launder data split`)
    cl = {"clusters_a": b.clusters, "clusters_b": r.clusters}
    checks: dict[str, Any] = {
        "choice_counts": _shift_check("choice_counts", b.num_choices.tolist(), r.num_choices.tolist(), 11, cl),
        "text_length": _ratio_check("text_length", b.text_words, r.text_words, 12, cl),
        "choice_length": _ratio_check("choice_length", b.choice_words, r.choice_words, 13, cl),
    }
    checks["choice_counts"]["chance"] = {"benchmark": float(np.mean(1 / b.num_choices)),
                                         "reference": float(np.mean(1 / r.num_choices))}
    if b.subjects is not None and r.subjects is not None:
        sub = _shift_check("subjects", b.subjects.tolist(), r.subjects.tolist(), 14, cl)
        known = set(b.subjects.tolist())
        sub["unseen_in_benchmark"] = float(np.mean([s not in known for s in r.subjects.tolist()]))
        shown = sorted(set(sub["benchmark"]) | set(sub["reference"]),
                       key=lambda s: -abs(sub["benchmark"].get(s, 0) - sub["reference"].get(s, 0)))
        if len(shown) > 20:  # the 20 largest differences: an MMLU-sized subject list would drown the report
            sub["benchmark"] = {s: sub["benchmark"].get(s, 0.0) for s in shown[:20]}
            sub["reference"] = {s: sub["reference"].get(s, 0.0) for s in shown[:20]}
            sub["subjects_shown"] = f"the 20 of {len(shown)} subjects whose shares differ most"
        checks["subjects"] = sub
    else:
        note = "neither set names subjects" if b.subjects is None and r.subjects is None else \
            f"the {'benchmark' if b.subjects is None else 'reference set'} names no subjects"
        checks["subjects"] = {"compared": False, "note": note, "too_far": False}
    far = [k for k, v in checks.items() if v["too_far"]]
    return {"comparable": not far, "too_far": far, "checks": checks, "rule": RULE}


def describe(name: str, check: dict) -> str:
    """One check in words, for the verdict's reasons and audit.md."""
    if "ratio" in check:
        what = "context + question" if name == "text_length" else "a choice"
        return (f"{name}: mean words of {what} {check['benchmark_mean_words']:.1f} (benchmark) vs "
                f"{check['reference_mean_words']:.1f} (reference), ratio {check['ratio']:.2f}, p = "
                f"{check['p_value']:.3g}")
    if not check.get("compared", True):
        return f"{name}: not compared ({check['note']})"
    extra = f", {check['unseen_in_benchmark']:.0%} of reference items on subjects the benchmark lacks" \
        if "unseen_in_benchmark" in check else ""
    return f"{name}: total variation distance {check['distance']:.3f}, p = {check['p_value']:.3g}{extra}"
