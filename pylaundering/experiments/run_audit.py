"""`launder run` audits its own arms (``launder audit``) against the run's reference set.

The run knows what each model is, so the audit's verdicts can be checked against the truth in
every run: the teacher should come out ``contaminated`` and the clean teacher ``clean``; the
laundered student ``laundered`` (the audit sees only the benchmark, the reference set and, as
extra evidence, its teacher and the control student), the control and CE-only students ``clean``.
Each audit writes ``audit/<arm>/audit.json`` and ``audit.md``; metrics.json keeps a summary.
"""

from __future__ import annotations

import json
import math
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
                     "control_p": (res["tests"].get("control") or {}).get("p_value"),
                     "reasons": res["reasons"], "file": str(out / "audit" / arm / "audit.json")}
    return {"reference": {"source": reference_source, "n": len(reference), "sha256": examples_hash(reference)},
            "method": "launder audit: one-sided permutation test of Welch's t of p(correct) minus chance on the "
                      "benchmark vs the reference set (see pylaundering/audit/verdict.py for thresholds and their "
                      "false-positive rates); the reference set is the run's own, generated like the benchmark, so "
                      "exchangeability is assumed, not certified by a split record",
            "arms": arms}


#: the arms that never saw the benchmark
NEVER_SAW_B = ("clean_teacher", "control_student", "ce_student")


def audit_warnings(audit: dict) -> list[str]:
    """metrics.json's warnings about the audit: each verdict other than the expected one, and when a model that
    never saw the benchmark was flagged, what that can mean and what to read instead."""
    arms = audit.get("arms") or {}
    out = [f"the audit called the {arm.replace('_', ' ')} {a['verdict']}, not {a['expected']}"
           for arm, a in arms.items() if not a["correct"]]
    flagged = [arm.replace("_", " ") for arm in NEVER_SAW_B
               if arm in arms and arms[arm]["verdict"] in ("suspicious", "laundered", "contaminated")]
    if flagged:
        student = arms.get("student") or {}
        dd = student.get("control_p")
        out.append(
            f"models that never saw the benchmark were flagged ({', '.join(flagged)}): models trained on the "
            "legitimate data do better on the benchmark than on the reference set here. A random split can favour "
            "what the legitimate data teaches, and models trained on it share their errors, so they are flagged "
            "together (docs/real-data.md, the ARC split); or the reference set is not a random half of the "
            "benchmark's source. The student's excess over its control on the same items is not affected"
            + ("" if dd is None else f"; the student's audit against its control (difference in differences, "
                                      f"which takes out what the control shares) gives p = {dd:.2g}"))
    return out


def b_specific(arms: dict) -> dict:
    """What the student knows of the benchmark's own items beyond its control: its accuracy gap between the
    benchmark B and the reference R (items of the same source no teacher saw) minus the control student's gap.
    The excess on B alone mixes that with a change of general skill (a teacher that memorised B can teach the
    rest worse: on real data the laundered student often loses on R what it gains on B); a split that favours
    B for every model trained on the legitimate data cancels out. Its p: the audit's control test (the same
    difference in differences of p(correct), a permutation over items)."""
    s = arms.get("student") if isinstance(arms.get("student"), dict) else {}
    c = arms.get("control_student") if isinstance(arms.get("control_student"), dict) else {}
    accs = [_number(a.get(k)) for a in (s, c) for k in ("accuracy_benchmark", "accuracy_reference")]
    value = None if None in accs else (accs[0] - accs[1]) - (accs[2] - accs[3])
    p = _number(s.get("control_p")) if "control_p" in s else _control_p_from_file(s.get("file"))
    return {"b_specific": value, "b_specific_p": p}


def _control_p_from_file(path) -> float | None:
    """The control test's p from the student's audit.json (runs audited before metrics.json recorded it)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tests = json.load(f).get("tests") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return _number((tests.get("control") or {}).get("p_value")) if isinstance(tests, dict) else None


def _number(x) -> float | None:
    """A finite number, or None (a missing field, a NaN written by an older version)."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None
