"""The audits' tests, thresholds and verdicts (`launder audit teacher|student`).

The core test of both audits compares, item by item, the probability of the correct choice minus
chance, p(correct) - 1/C, on the benchmark B with that on the reference set R (one-sided permutation
test, B > R, of Welch's t). Why this statistic and not the margin or the loss: for a model with no
knowledge of an item's answer, the correct choice is exchangeable with the others, so E[p(correct)] =
1/C on that item, whatever the model's confidence; subtracting 1/C makes that 0 on every item, so a
reference set with another mix of choice counts does not look "easier" to a model that knows nothing
(uncentred, 30% five-choice items in R gave such a model p = 0.016 at 1,000 items a side). Margins and
losses depend on confidence, and confidence differs between familiar strings (benchmark entities that
also occur in the legitimate training data) and unfamiliar ones: on the tiny synthetic run a
cross-entropy-only student, which never saw a benchmark label, has a mean margin of -0.82 on B against
-0.14 on R (z = -3.9). Accuracy is exchangeable too, but a model whose outputs are nearly uniform turns
rounding noise into argmax "accuracy" (a control student at 41% on 32 items with p(correct) = 0.250).
So margin, loss and accuracy (minus chance) are secondary tests. Welch's t rather than the raw mean
difference: the permutation test of a raw difference is not level when B and R differ in size and in
variance (a small B of a confident model against a large R), the studentized one is, asymptotically
(Janssen 1997; Chung and Romano 2013), and exact under exchangeability either way.

Thresholds (module constants, written into every report):
  * laundered / contaminated: core p < 0.01 and accuracy gap >= 0.10, where the gap is accuracy minus
    chance on B minus the same on R (the raw accuracy difference when both sets have the same choices);
  * suspicious: core p < 0.05, or any secondary test p < 0.01;
  * clean otherwise;
  * withheld, before those, whatever the tests say (never clean, never a detection):
    insufficient_data when the sets are too small for the core test to reach p < 0.01 at all (see
    `min_attainable_p`: 5 benchmark items against 1 reference item give p >= 1/6 always), then
    not_comparable when B and R differ in choice counts, lengths or subjects by more than chance and
    the thresholds allow (`comparability`): the core test would measure that difference.
Calibration: every test is a permutation test whose level holds when B and R items are exchangeable
(same kind, same difficulty, R unseen by everyone): then P(laundered) <= 1% and P(suspicious or above)
<= 5% + 1% per secondary test (union bound). The secondary tests compare B with R too (`secondary`):
a contaminated teacher or a weak control does not make a clean student fire. Exchangeability is
*certified* when B and R are a recorded random split (`reference.verify_split`: `launder data split`'s
split.json, hashes matching), *assumed* otherwise; `comparability` checks what can be checked of it.
A reference set harder than B in ways those checks cannot see still breaks it. The accuracy-gap
minimum keeps a tiny but "significant" difference on very large sets from being called laundering.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..stats import cliffs_delta, cohens_d, permutation_test
from .comparability import RULE, describe
from .evidence import ItemScores

RESAMPLES = 10000
P_STRONG = 0.01
P_WEAK = 0.05
P_SECONDARY = 0.01
MIN_ACCURACY_GAP = 0.10

LEVELS = {"teacher": ("clean", "suspicious", "contaminated"), "student": ("clean", "suspicious", "laundered")}
#: The verdict of sets too small for the strong threshold: outside LEVELS, so never clean and never a detection.
INSUFFICIENT = "insufficient_data"
#: The verdict of a reference set too unlike the benchmark to trust the comparison (`comparability`): as above.
NOT_COMPARABLE = "not_comparable"
WITHHELD = (INSUFFICIENT, NOT_COMPARABLE)

SUFFICIENCY_RULE = (
    f"the core test can reach p < {P_STRONG} only if its smallest attainable p is below that: with nb benchmark and "
    "nr reference items the most extreme outcome (every benchmark item above every reference item) is matched by "
    "1 of the C(nb+nr, nb) ways to split the items, so the exact permutation p is at least 1 / C(nb+nr, nb); the "
    f"test's {RESAMPLES} random resamples with the +1 correction give (R / C(nb+nr, nb) + 1) / (R + 1), R = "
    f"{RESAMPLES}. Below the sizes where that is < {P_STRONG}, the verdict is {INSUFFICIENT}. The questions on one "
    "passage are re-split together, so they count as one item here")


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
        strong: f"core test p < {P_STRONG} and accuracy gap (accuracy minus chance, benchmark minus reference) >= "
                f"{MIN_ACCURACY_GAP}",
        "suspicious": f"core test p < {P_WEAK}, or any secondary test p < {P_SECONDARY}",
        "clean": "otherwise",
        INSUFFICIENT: f"before the others: the sets are too small for the core test to reach p < {P_STRONG} "
                      f"(data_sufficiency: {SUFFICIENCY_RULE})",
        NOT_COMPARABLE: f"before the others, after {INSUFFICIENT}: the reference set is not comparable with the "
                        f"benchmark (comparability: {RULE})",
        "core_test": "one-sided permutation test (B > R) of Welch's t of the probability of the correct choice "
                     "minus chance (1 / number of choices), per item",
        "resamples": RESAMPLES,
        "false_positive_rate": {
            strong: f"<= {P_STRONG}",
            "suspicious_or_above": f"<= {P_WEAK + P_SECONDARY * n_secondary:.2f} ({P_WEAK} + {P_SECONDARY} for each "
                                   f"of {n_secondary} secondary tests, union bound)",
            "assumes": "benchmark and reference items are exchangeable: drawn the same way, equally hard, neither "
                       "seen by the model's training chain except through the benchmark (certified by a recorded "
                       "random split, see exchangeability; otherwise assumed). A reference set easier or harder "
                       "than the benchmark breaks it (the test then measures that difference); the comparability "
                       "checks withhold the verdict where the difference shows in choice counts, lengths or "
                       "subjects.",
        },
        "score": "z of the core test: (observed t - permutation mean) / permutation SD; continuous, for ROC curves "
                 "over many audits",
    }


def _effect(b: np.ndarray, r: np.ndarray) -> dict[str, float]:
    d = cohens_d(b, r)
    return {"cliffs_delta": cliffs_delta(b, r), "cohens_d": d if math.isfinite(d) else None}


def compare(name: str, b, r, *, alternative: str = "greater", seed: int = 0, what: str = "",
            resamples: int = RESAMPLES, clusters: tuple | None = None) -> dict[str, Any]:
    """One B-vs-R studentized permutation test with means and effect sizes; ``clusters``: (B's, R's) passage
    labels per item (None: items on their own), re-split whole (`stats.permutation_test`)."""
    b = np.asarray(b, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    cb, cr = clusters if clusters is not None else (None, None)
    res = permutation_test(b, r, resamples=resamples, seed=seed, alternative=alternative, studentize=True,
                           clusters_a=cb, clusters_b=cr)
    by = " by passage" if res["units"]["a"] + res["units"]["b"] < b.size + r.size else ""
    return {"name": name, "what": what, "benchmark_mean": float(b.mean()), "reference_mean": float(r.mean()),
            "difference": res["statistic"], "t": res["t"], "alternative": "benchmark " + {
                "greater": ">", "less": "<"}.get(alternative, "!=") + " reference", "p_value": res["p_value"],
            "z": res["z"], "effect_size": _effect(b, r), "units": res["units"],
            "test": f"permutation{by} of Welch's t (unpaired, studentized, +1 corrected)"}


def core_tests(kind: str, sb: ItemScores, sr: ItemScores, *, resamples: int = RESAMPLES,
               clusters: tuple | None = None) -> dict[str, dict]:
    kw = dict(resamples=resamples, clusters=clusters)
    tests = {
        "p_correct": compare("p_correct", sb.p_correct - sb.chance, sr.p_correct - sr.chance, **kw,
                             what="probability of the correct choice minus chance, 1/C (core test)"),
        "accuracy": compare("accuracy", sb.correct - sb.chance, sr.correct - sr.chance, **kw,
                            what="correct (argmax is the label) minus chance, 1/C"),
        "margin": compare("margin", sb.margin, sr.margin, **kw,
                          what="logit of the correct choice minus the best other choice"),
    }
    if kind == "teacher":
        tests["loss"] = compare("loss", sb.loss, sr.loss, alternative="less", **kw,
                                what="cross-entropy of the correct choice (lower on B = memorised)")
    return tests


def accuracy_gap(sb: ItemScores, sr: ItemScores) -> float:
    """Accuracy minus chance on B, minus the same on R: the raw accuracy difference when both sets have the
    same choice counts, and not a difference in chance when they do not."""
    return (sb.accuracy - float(sb.chance.mean())) - (sr.accuracy - float(sr.chance.mean()))


def decide(kind: str, tests: dict[str, dict], sb: ItemScores, sr: ItemScores, *,
           sizes: tuple[int, int] | None = None, comparability: dict | None = None) -> dict[str, Any]:
    """The verdict (module docstring); ``sizes`` (benchmark, reference items) adds the data-sufficiency check,
    ``comparability`` (`comparability.compare_sets`) the comparability check."""
    clean, weak, strong = LEVELS[kind]
    core = tests["p_correct"]
    gap = accuracy_gap(sb, sr)
    secondary = {k: v["p_value"] for k, v in tests.items() if k != "p_correct"}
    fired = sorted(k for k, p in secondary.items() if p is not None and p < P_SECONDARY)
    found = f"the tests found: core p = {core['p_value']:.4g}, accuracy gap {gap:+.3f}"
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
                       f"items for these {sizes[1]} reference items, or {least['equal']} of each ({found})")
    elif comparability is not None and not comparability["comparable"]:
        verdict = NOT_COMPARABLE
        far = "; ".join(describe(k, comparability["checks"][k]) for k in comparability["too_far"])
        reasons.append(f"reference set not comparable with the benchmark ({far}): the core test would measure that "
                       f"difference, not knowledge of the benchmark; use a random split of one benchmark (launder "
                       f"data split) ({found})")
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
           "raw_accuracy_gap": sb.accuracy - sr.accuracy, "thresholds": thresholds(kind, len(secondary))}
    if enough is not None:
        out["data_sufficiency"] = enough
    if comparability is not None:
        out["comparability"] = comparability
    return out


def level_at_least(kind: str, verdict: str, level: str) -> bool:
    """Is ``verdict`` at or above ``level``? A withheld verdict (insufficient_data, not_comparable) is below every
    level: no finding, not a detection."""
    order = LEVELS[kind]
    if level not in order[1:]:
        raise ValueError(f"--fail-on must be one of {', '.join(order[1:])} for a {kind} audit, got {level!r}")
    if verdict in WITHHELD:
        return False
    return order.index(verdict) >= order.index(level)
