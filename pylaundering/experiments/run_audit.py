"""`launder run` audits its own arms (``launder audit``) against the run's reference set.

The run knows what each model is, so the audit's verdicts can be checked against the truth in
every run: the teacher should come out ``contaminated`` and the clean teacher ``clean``; the
laundered student ``laundered`` (the audit sees only the benchmark, the reference set and, as
extra evidence, its teacher and the control student), the control and CE-only students ``clean``.
Each audit writes ``audit/<arm>/audit.json`` and ``audit.md``; metrics.json keeps a summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.schema import MCExample, examples_hash

#: arm -> (audit kind, the verdict a correct audit gives, extra evidence: (teacher arm, control arm))
EXPECTED = {
    "teacher": ("teacher", "contaminated", (None, None)),
    "clean_teacher": ("teacher", "clean", (None, None)),
    "student": ("student", "laundered", ("teacher", "control_student")),
    "control_student": ("student", "clean", ("clean_teacher", None)),
    "ce_student": ("student", "clean", (None, None)),
}


def audit_arms(models: dict[str, str], bench: Sequence[MCExample], reference: Sequence[MCExample],
               reference_source: str, out: Path, *, max_length: int | None, quiet: bool, device=None) -> dict:
    """Audits every arm in ``models`` (arm -> model folder) on ``device`` (the run's Runtime; None: the CPU);
    returns metrics.json's ``audit``."""
    from ..audit import audit_student, audit_teacher

    arms = {}
    for arm, (kind, expected, (teacher_arm, control_arm)) in EXPECTED.items():
        if arm not in models:
            continue
        kw = dict(out_dir=out / "audit" / arm, max_length=max_length, quiet=quiet, reference_source=reference_source,
                  label=arm.replace("_", " "), device=device)
        if kind == "teacher":
            res = audit_teacher(models[arm], bench, reference, **kw)
        else:
            res = audit_student(models[arm], bench, reference, teacher=models.get(teacher_arm),
                                control=models.get(control_arm), **kw)
        core = res["tests"]["p_correct"]
        arms[arm] = {"kind": kind, "verdict": res["verdict"], "expected": expected,
                     "correct": res["verdict"] == expected, "score": res["score"], "core_p": core["p_value"],
                     "accuracy_benchmark": res["evidence"]["benchmark"]["accuracy"],
                     "accuracy_reference": res["evidence"]["reference"]["accuracy"],
                     "comparable": res["comparability"]["comparable"],
                     "reasons": res["reasons"], "file": str(out / "audit" / arm / "audit.json")}
    return {"reference": {"source": reference_source, "n": len(reference), "sha256": examples_hash(reference)},
            "method": "launder audit: one-sided permutation test of Welch's t of p(correct) minus chance on the "
                      "benchmark vs the reference set (see pylaundering/audit/verdict.py for thresholds and their "
                      "false-positive rates); the reference set is the run's own, generated like the benchmark, so "
                      "exchangeability is assumed, not certified by a split record",
            "arms": arms}
