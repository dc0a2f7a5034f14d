"""The student audit's secondary tests: agreement with a suspected teacher, and the excess over a control.

Both compare B with R, never B alone, so that what a clean student does on both sets cancels:

* Agreement (`agreement_tests`). Raw agreement with the teacher is not comparable between B and R when
  the teacher is contaminated: it is right on nearly all of B and only at its skill on R, so any clean
  student above chance agrees with it more on B (it is right more often where the teacher is right).
  The test therefore permutes B/R labels only *within* two strata, the items the teacher gets right and
  those it gets wrong (`stats.stratified_permutation_test`, the Cochran-Mantel-Haenszel design). The
  teacher's contamination changes how many B items fall in each stratum, not what a clean student does
  inside one: where the teacher is right, agreeing is being right; where it is wrong, agreeing is
  picking that very wrong answer, which only a student that learnt the teacher's B answers does more
  often on B. A contaminated teacher's right-on-B stratum also holds items it would have got wrong
  unaided, harder on average than its right-on-R items, which makes the test conservative for a clean
  student, never liberal. Testing only the teacher-wrong items would be valid too, but a contaminated
  teacher is wrong on a handful of B items: no power.
* Control (`control_tests`). The excess of the suspect over a control on B alone fires for any suspect
  stronger than its control (a pretrained suspect against a control trained from random weights, always).
  The test is a difference in differences: per item d = p(correct) of the suspect minus that of the
  control, and mean d on B against mean d on R (studentized permutation test, one-sided): a stronger but
  clean suspect has the same d on both sets. The paired bootstrap and exact McNemar of correctness on
  each set are reported as description, not tested.

Pure functions on `ItemScores` arrays (a simulation can call them: `calibrate`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..stats import cliffs_delta, mcnemar_exact, paired_bootstrap, stratified_permutation_test
from .evidence import ItemScores
from .verdict import compare

__all__ = ["agreement_tests", "control_tests"]

STRATA = {True: "teacher_right", False: "teacher_wrong"}


def agreement_tests(sb: ItemScores, sr: ItemScores, tb: ItemScores, tr: ItemScores, *, resamples: int,
                    seed: int = 1, clusters: tuple | None = None) -> dict[str, Any]:
    """Does the student pick the teacher's answer more often on B than on R, within the items the teacher
    gets right and within those it gets wrong (module docstring)? ``p_value`` is None (report only) when
    no stratum has items on both sets. ``clusters``: as in `verdict.compare`."""
    agree_b = (sb.prediction == tb.prediction).astype(np.float64)
    agree_r = (sr.prediction == tr.prediction).astype(np.float64)
    strata_b = np.where(tb.correct, STRATA[True], STRATA[False])
    strata_r = np.where(tr.correct, STRATA[True], STRATA[False])
    cb, cr = clusters if clusters is not None else (None, None)
    res = stratified_permutation_test(agree_b, agree_r, strata_b, strata_r, resamples=resamples, seed=seed,
                                      clusters_a=cb, clusters_b=cr)
    strata = {name: {"benchmark_items": s["na"], "reference_items": s["nb"], "agreement_benchmark": s["mean_a"],
                     "agreement_reference": s["mean_b"]} for name, s in res["strata"].items()}
    testable = any(s["na"] and s["nb"] for s in res["strata"].values())
    test = {"name": "teacher_agreement",
            "what": "student picks the teacher's answer, within items the teacher gets right / wrong",
            "benchmark_mean": float(agree_b.mean()), "reference_mean": float(agree_r.mean()),
            "difference": res["statistic"], "alternative": "benchmark > reference",
            "p_value": res["p_value"] if testable else None, "z": res["z"],
            "effect_size": {"cliffs_delta": cliffs_delta(agree_b, agree_r), "cohens_d": None},
            "test": "permutation within strata (teacher right, teacher wrong; Cochran-Mantel-Haenszel weights; "
                    "+1 corrected)", "strata": strata,
            "teacher_accuracy": {"benchmark": tb.accuracy, "reference": tr.accuracy}}
    if not testable:
        test["note"] = ("not testable: no stratum (teacher right, teacher wrong) has items on both sets, so B and R "
                        "cannot be compared without the teacher's accuracy getting in the way; reported only")
    return test


def control_tests(sb: ItemScores, sr: ItemScores, cb: ItemScores, cr: ItemScores, description: str, *,
                  resamples: int, seed: int = 2, clusters: tuple | None = None) -> dict[str, Any]:
    """Difference in differences of p(correct), suspect minus control, B vs R (module docstring)."""
    test = compare("control", sb.p_correct - cb.p_correct, sr.p_correct - cr.p_correct, seed=seed,
                   resamples=resamples, clusters=clusters,
                   what="p(correct) of the model minus the control's, same item (difference in differences)")
    correct_b = sb.correct.astype(np.float64) - cb.correct
    correct_r = sr.correct.astype(np.float64) - cr.correct
    test.update({
        "control": description, "control_accuracy": {"benchmark": cb.accuracy, "reference": cr.accuracy},
        "accuracy_excess": {"benchmark": float(correct_b.mean()), "reference": float(correct_r.mean()),
                            "difference_in_differences": float(correct_b.mean() - correct_r.mean())},
        "benchmark": {**paired_bootstrap(sb.correct, cb.correct, resamples=resamples, seed=seed + 1),
                      "mcnemar": mcnemar_exact(sb.correct.tolist(), cb.correct.tolist())},
        "reference": {**paired_bootstrap(sr.correct, cr.correct, resamples=resamples, seed=seed + 2),
                      "mcnemar": mcnemar_exact(sr.correct.tolist(), cr.correct.tolist())},
        "test": "studentized permutation (Welch t) of the per-item difference, benchmark vs reference, one-sided, "
                "+1 corrected; the paired bootstrap and McNemar per set describe, they are not tested"})
    return test
