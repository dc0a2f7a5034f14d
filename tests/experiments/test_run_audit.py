"""The run's warnings about its own audit: a flagged model that never saw the benchmark is explained."""

from __future__ import annotations

from pylaundering.experiments.run_audit import audit_warnings


def _arm(verdict, expected, control_p=None):
    return {"verdict": verdict, "expected": expected, "correct": verdict == expected, "control_p": control_p}


def test_a_flagged_model_that_never_saw_b_gets_a_cause_and_the_student_test_that_removes_it():
    """The ARC split: the clean teacher and control student flagged because the split suits what the legitimate
    data teaches; the report must say so and point at the student's difference in differences."""
    audit = {"arms": {"teacher": _arm("contaminated", "contaminated"),
                      "clean_teacher": _arm("suspicious", "clean"),
                      "student": _arm("suspicious", "laundered", control_p=0.0021),
                      "control_student": _arm("suspicious", "clean"),
                      "ce_student": _arm("clean", "clean")}}
    warnings = audit_warnings(audit)
    assert "the audit called the clean teacher suspicious, not clean" in warnings
    assert "the audit called the student suspicious, not laundered" in warnings
    why = [w for w in warnings if "never saw the benchmark" in w]
    assert len(why) == 1
    assert "(clean teacher, control student)" in why[0] and "p = 0.0021" in why[0]
    from pylaundering.experiments.study_report import warning_kind

    kind = warning_kind(why[0])  # a study report names the kind, not one point's numbers
    assert kind.startswith("the audit flagged models that never saw the benchmark") and "N" not in kind


def test_no_cause_line_when_only_the_suspects_are_misjudged():
    audit = {"arms": {"teacher": _arm("contaminated", "contaminated"), "clean_teacher": _arm("clean", "clean"),
                      "student": _arm("clean", "laundered", control_p=0.3),
                      "ce_student": _arm("clean", "clean")}}
    assert audit_warnings(audit) == ["the audit called the student clean, not laundered"]
    assert audit_warnings({"arms": {}, "skipped": "--no-audit"}) == []


def test_a_withheld_verdict_is_not_a_flag():
    audit = {"arms": {"clean_teacher": _arm("insufficient_data", "clean"),
                      "ce_student": _arm("not_comparable", "clean")}}
    assert not any("never saw the benchmark" in w for w in audit_warnings(audit))
