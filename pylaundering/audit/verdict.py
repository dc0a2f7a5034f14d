"""The audits' tests, thresholds and verdicts (`launder audit teacher|student`).

The core test of both audits compares the mean probability of the correct choice on the
benchmark B with that on the reference set R (one-sided permutation test, B > R). Why this
statistic and not the margin or the loss: for a model with no knowledge of either set's answers,
the correct choice is exchangeable with the others, so E[p(correct)] = 1/C on B and on R alike,
whatever the model's confidence. Margins and losses depend on confidence, and confidence differs
between familiar strings (benchmark entities that also occur in the legitimate training data)
and unfamiliar ones: on the tiny synthetic run a cross-entropy-only student, which never saw a
benchmark label, has a mean margin of -0.82 on B against -0.14 on R (z = -3.9). Accuracy is
exchangeable too, but a model whose outputs are nearly uniform turns rounding noise into argmax
"accuracy" (a control student at 41% on 32 items with p(correct) = 0.250). So margin, loss and
accuracy are reported as secondary tests.

Thresholds (module constants, written into every report):
  * laundered / contaminated: core p < 0.01 and accuracy(B) - accuracy(R) >= 0.10;
  * suspicious: core p < 0.05, or any secondary test p < 0.01;
  * clean otherwise;
  * insufficient_data first, whatever the tests say, when the sets are too small for the core
    test to reach p < 0.01 at all (see `min_attainable_p`): a `clean` there would only mean
    "too few items to tell" (5 benchmark items against 1 reference item: p >= 1/6 always).
Calibration: the permutation test's level holds when B and R items are exchangeable (same
kind, same difficulty, R unseen by everyone). Then P(laundered) <= 1%, and P(suspicious or
above) <= 5% + 1% per secondary test (union bound). A reference set easier or harder than B (other
topics, other sources, fewer choices, items that leaked into training elsewhere) breaks this:
the test then measures that difference too. The accuracy-gap minimum keeps a tiny but
"significant" difference on very large sets from being called laundering.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..stats import cliffs_delta, cohens_d, mcnemar_exact, paired_bootstrap, permutation_test
from .evidence import ItemScores

RESAMPLES = 10000
P_STRONG = 0.01
P_WEAK = 0.05
P_SECONDARY = 0.01
MIN_ACCURACY_GAP = 0.10

LEVELS = {"teacher": ("clean", "suspicious", "contaminated"), "student": ("clean", "suspicious", "laundered")}
#: The verdict of sets too small for the strong threshold: outside LEVELS, so never clean and never a detection.
INSUFFICIENT = "insufficient_data"

SUFFICIENCY_RULE = (
    f"the core test can reach p < {P_STRONG} only if its smallest attainable p is below that: with nb benchmark and "
    "nr reference items the most extreme outcome (every benchmark item above every reference item) is matched by "
    "1 of the C(nb+nr, nb) ways to split the items, so the exact permutation p is at least 1 / C(nb+nr, nb); the "
    f"test's {RESAMPLES} random resamples with the +1 correction give (R / C(nb+nr, nb) + 1) / (R + 1), R = "
    f"{RESAMPLES}. Below the sizes where that is < {P_STRONG}, the verdict is {INSUFFICIENT}")


def min_attainable_p(nb: int, nr: int, resamples: int = RESAMPLES) -> float:
    """The smallest p-value the core test (``stats.permutation_test``, one-sided, +1 corrected) can give with
    ``nb`` benchmark and ``nr`` reference items: its expected value on the most extreme data (SUFFICIENCY_RULE)."""
    splits = math.comb(nb + nr, nb)
    return (resamples / splits + 1) / (resamples + 1)


def _smallest(fixed: int, *, vary_first: bool) -> int:
    n = 1
    while min_attainable_p(n if vary_first else fixed, fixed if vary_first else n) >= P_STRONG:
        n += 1
    return n


def smallest_sizes(nb: int, nr: int) -> dict[str, int]:
    """The smallest sizes whose core test can reach p < P_STRONG: the reference size for this benchmark size, the
    benchmark size for this reference size, and equal sizes."""
    equal = 1
    while min_attainable_p(equal, equal) >= P_STRONG:
        equal += 1
    return {"reference_for_this_benchmark": _smallest(nb, vary_first=False),
            "benchmark_for_this_reference": _smallest(nr, vary_first=True), "equal": equal}


def sufficiency(nb: int, nr: int) -> dict[str, Any]:
    """audit.json's ``data_sufficiency``: can these sizes reach the strong threshold at all, and the rule."""
    p_min = min_attainable_p(nb, nr)
    return {"sufficient": p_min < P_STRONG, "min_attainable_p": p_min, "threshold": P_STRONG,
            "sizes": {"benchmark": nb, "reference": nr}, "smallest_sizes": smallest_sizes(nb, nr),
            "rule": SUFFICIENCY_RULE}


def thresholds(kind: str, n_secondary: int) -> dict[str, Any]:
    strong = LEVELS[kind][2]
    return {
        strong: f"core test p < {P_STRONG} and accuracy(B) - accuracy(R) >= {MIN_ACCURACY_GAP}",
        "suspicious": f"core test p < {P_WEAK}, or any secondary test p < {P_SECONDARY}",
        "clean": "otherwise",
        INSUFFICIENT: f"before the others: the sets are too small for the core test to reach p < {P_STRONG} "
                      f"(data_sufficiency: {SUFFICIENCY_RULE})",
        "core_test": "one-sided permutation test (B > R) of the mean probability of the correct choice",
        "resamples": RESAMPLES,
        "false_positive_rate": {
            strong: f"<= {P_STRONG}",
            "suspicious_or_above": f"<= {P_WEAK + P_SECONDARY * n_secondary:.2f} ({P_WEAK} + {P_SECONDARY} for each "
                                   f"of {n_secondary} secondary tests, union bound)",
            "assumes": "benchmark and reference items are exchangeable: drawn the same way, equally hard, neither "
                       "seen by the model's training chain except through the benchmark. A reference set that is "
                       "easier or harder than the benchmark breaks it (the test then measures that difference).",
        },
        "score": "z of the core test: (observed difference - permutation mean) / permutation SD; continuous, for "
                 "ROC curves over many audits",
    }


def _effect(b: np.ndarray, r: np.ndarray) -> dict[str, float]:
    d = cohens_d(b, r)
    return {"cliffs_delta": cliffs_delta(b, r), "cohens_d": d if math.isfinite(d) else None}


def compare(name: str, b: np.ndarray, r: np.ndarray, *, alternative: str = "greater", seed: int = 0,
            what: str = "") -> dict[str, Any]:
    """One B-vs-R permutation test with means and effect sizes."""
    b = np.asarray(b, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    res = permutation_test(b, r, resamples=RESAMPLES, seed=seed, alternative=alternative)
    return {"name": name, "what": what, "benchmark_mean": float(b.mean()), "reference_mean": float(r.mean()),
            "difference": res["statistic"], "alternative": "benchmark " + {"greater": ">", "less": "<"}.get(
                alternative, "!=") + " reference", "p_value": res["p_value"], "z": res["z"],
            "effect_size": _effect(b, r), "test": "permutation (unpaired, +1 corrected)"}


def core_tests(kind: str, sb: ItemScores, sr: ItemScores) -> dict[str, dict]:
    tests = {
        "p_correct": compare("p_correct", sb.p_correct, sr.p_correct,
                             what="probability of the correct choice (core test)"),
        "accuracy": compare("accuracy", sb.correct, sr.correct, what="correct (argmax is the label)"),
        "margin": compare("margin", sb.margin, sr.margin,
                          what="logit of the correct choice minus the best other choice"),
    }
    if kind == "teacher":
        tests["loss"] = compare("loss", sb.loss, sr.loss, alternative="less",
                                what="cross-entropy of the correct choice (lower on B = memorised)")
    return tests


def agreement_tests(sb: ItemScores, sr: ItemScores, tb: ItemScores, tr: ItemScores) -> dict[str, Any]:
    """Does the student pick the teacher's answer more often on B than on R, and more often than its own
    accuracy predicts (if wrong answers were spread uniformly and independently over the wrong choices)?"""

    def expected(s: ItemScores, t: ItemScores) -> float:
        k = s.num_choices.astype(np.float64)
        return float(np.mean(s.accuracy * t.accuracy + (1 - s.accuracy) * (1 - t.accuracy) / (k - 1)))

    agree_b = sb.prediction == tb.prediction
    agree_r = sr.prediction == tr.prediction
    test = compare("teacher_agreement", agree_b, agree_r, seed=1, what="student picks the teacher's answer")
    test["expected_from_accuracy"] = {"benchmark": expected(sb, tb), "reference": expected(sr, tr)}
    test["excess_over_expected"] = {"benchmark": float(agree_b.mean()) - expected(sb, tb),
                                    "reference": float(agree_r.mean()) - expected(sr, tr)}
    test["teacher_accuracy"] = {"benchmark": tb.accuracy, "reference": tr.accuracy}
    return test


def control_tests(sb: ItemScores, sr: ItemScores, cb: ItemScores, cr: ItemScores, description: str) -> dict[str, Any]:
    """Excess accuracy of the model over a control student, paired per item, on B (and on R for comparison)."""
    boot_b = paired_bootstrap(sb.correct, cb.correct, resamples=RESAMPLES, seed=2)
    boot_r = paired_bootstrap(sr.correct, cr.correct, resamples=RESAMPLES, seed=3)
    return {"name": "control", "what": "accuracy of the model minus the control's, same items (paired)",
            "control": description, "control_accuracy": {"benchmark": cb.accuracy, "reference": cr.accuracy},
            "benchmark": {**boot_b, "mcnemar": mcnemar_exact(sb.correct.tolist(), cb.correct.tolist())},
            "reference": {**boot_r, "mcnemar": mcnemar_exact(sr.correct.tolist(), cr.correct.tolist())},
            "p_value": boot_b["p_value"], "test": "one-sided paired bootstrap on B (+ exact McNemar, two-sided)"}


def decide(kind: str, tests: dict[str, dict], sb: ItemScores, sr: ItemScores, *,
           sizes: tuple[int, int] | None = None) -> dict[str, Any]:
    """The verdict (module docstring); ``sizes`` (benchmark, reference items) adds the data-sufficiency check."""
    clean, weak, strong = LEVELS[kind]
    core = tests["p_correct"]
    gap = sb.accuracy - sr.accuracy
    secondary = {k: v["p_value"] for k, v in tests.items() if k != "p_correct"}
    fired = sorted(k for k, p in secondary.items() if p < P_SECONDARY)
    reasons = []
    enough = sufficiency(*sizes) if sizes is not None else None
    # 0.285 - 0.185 is 0.0999...98 in floating point: a gap of exactly the minimum reaches it
    if enough is not None and not enough["sufficient"]:
        verdict = INSUFFICIENT
        least = enough["smallest_sizes"]
        reasons.append(f"insufficient data: with {sizes[0]} benchmark and {sizes[1]} reference items the core test's "
                       f"smallest attainable p is {enough['min_attainable_p']:.3g}, never < {P_STRONG}; p < "
                       f"{P_STRONG} needs at least {least['reference_for_this_benchmark']} reference items for "
                       f"these {sizes[0]} benchmark items, or {least['benchmark_for_this_reference']} benchmark "
                       f"items for these {sizes[1]} reference items, or {least['equal']} of each (the tests found: "
                       f"core p = {core['p_value']:.4g}, accuracy gap {gap:+.3f})")
    elif core["p_value"] < P_STRONG and gap >= MIN_ACCURACY_GAP - 1e-9:
        verdict = strong
        reasons.append(f"core test p = {core['p_value']:.4g} < {P_STRONG} and accuracy gap {gap:+.3f} >= "
                       f"{MIN_ACCURACY_GAP}")
    elif core["p_value"] < P_WEAK or fired:
        verdict = weak
        if core["p_value"] < P_WEAK:
            reasons.append(f"core test p = {core['p_value']:.4g} < {P_WEAK}"
                           + (f" (accuracy gap {gap:+.3f} < {MIN_ACCURACY_GAP})" if core["p_value"] < P_STRONG
                              else ""))
        if fired:
            reasons.append(f"secondary test(s) p < {P_SECONDARY}: "
                           + ", ".join(f"{k} (p = {secondary[k]:.4g})" for k in fired))
    else:
        verdict = clean
        reasons.append(f"core test p = {core['p_value']:.4g} >= {P_WEAK} and no secondary test p < {P_SECONDARY}")
    out = {"verdict": verdict, "score": core["z"], "reasons": reasons, "accuracy_gap": gap,
           "thresholds": thresholds(kind, len(secondary))}
    if enough is not None:
        out["data_sufficiency"] = enough
    return out


def level_at_least(kind: str, verdict: str, level: str) -> bool:
    """Is ``verdict`` at or above ``level``? insufficient_data is below every level: no finding, not a detection."""
    order = LEVELS[kind]
    if level not in order[1:]:
        raise ValueError(f"--fail-on must be one of {', '.join(order[1:])} for a {kind} audit, got {level!r}")
    if verdict == INSUFFICIENT:
        return False
    return order.index(verdict) >= order.index(level)
