"""The run's verdict label follows its stated rule: the primary test (exact McNemar of the student against the
control student) at its threshold, with a positive excess, decides `laundering_detected`."""

from __future__ import annotations

from pylaundering.experiments.report import P_DETECT, render_markdown, verdict
from pylaundering.stats import wilson_interval

N = 100


def _arm(correct: int) -> dict:
    return {"benchmark_accuracy": correct / N, "benchmark_ci95": list(wilson_interval(correct, N)),
            "train_accuracy": 0.5, "model_dir": "x"}


def _metrics(a_only: int, b_only: int, p: float, *, student: int = 40, control: int = 29) -> dict:
    return {
        "schema_version": 1, "chance": 0.25, "n_benchmark": N, "n_train": 300, "seed": 0,
        "teacher": _arm(98), "student": _arm(student), "control_student": _arm(control), "ce_student": _arm(27),
        "comparisons": {
            "student_vs_control_student": {"a_only": a_only, "b_only": b_only, "p_value": p, "bootstrap": {
                "diff": (student - control) / N, "ci95": [0.04, 0.18], "p_value": 0.0001, "resamples": 10000}},
            "student_vs_ce_student": {"a_only": 15, "b_only": 2, "p_value": 0.002}},
        "audit": {"reference": {"source": "r.jsonl", "n": 100}, "arms": {"student": {
            "kind": "student", "verdict": "laundered", "expected": "laundered", "correct": True, "score": 3.1,
            "core_p": 0.0004, "accuracy_benchmark": 0.4, "accuracy_reference": 0.28}}},
        "data": {"benchmark": "b.jsonl", "train": "t.jsonl", "benchmark_format": "jsonl", "overlap": {
            "exact_duplicates": 0}},
        "warnings": [], "checkpoint_selection": "none", "timings_s": {}, "max_length": {},
    }


def test_a_significant_primary_test_with_positive_excess_is_laundering():
    m = _metrics(14, 3, 0.008)  # McNemar p 0.008, bootstrap p 0.0001, audit laundered
    s_lo, c_hi = m["student"]["benchmark_ci95"][0], m["control_student"]["benchmark_ci95"][1]
    assert s_lo < c_hi  # the Wilson intervals overlap: the old rule said no_clear_effect
    assert P_DETECT == 0.01
    code, text = verdict(m)
    assert code == "laundering_detected", text
    assert "0.008" in text


def test_the_label_follows_the_rule_on_both_sides_of_it():
    assert verdict(_metrics(14, 3, 0.2))[0] == "no_clear_effect"
    assert verdict(_metrics(14, 3, 0.0100001))[0] == "no_clear_effect"  # the threshold is strict
    assert verdict(_metrics(3, 14, 0.008, student=29, control=40))[0] == "no_clear_effect"  # significant, but worse
    wide = _metrics(60, 1, 1e-12, student=85, control=26)
    assert verdict(wide)[0] == "laundering_detected"


def test_the_report_states_the_rule():
    text = render_markdown(_metrics(14, 3, 0.008))
    rule = [line for line in text.splitlines() if line.startswith("Verdict rule")]
    assert len(rule) == 1, text
    assert "McNemar" in rule[0] and f"p < {P_DETECT}" in rule[0] and "control student" in rule[0]
    assert "laundering_detected" in rule[0] and "no_clear_effect" in rule[0]


def test_a_model_that_gives_one_class_to_every_item_is_flagged():
    """A student stopped before it learnt anything reads like "no effect"; the run says so per arm, unless the
    benchmark's labels are themselves that one-sided."""
    from pylaundering.data.schema import MCExample
    from pylaundering.experiments.run import collapse_warnings
    from pylaundering.experiments.study_report import warning_kind

    bench = [MCExample(id=str(i), question=f"q{i}", choices=("negative", "positive"), label=i % 2) for i in range(40)]
    evals = {"student": {"top_prediction": {"prediction": 0, "share": 1.0, "name": "negative"}},
             "control_student": {"top_prediction": {"prediction": 1, "share": 0.6, "name": "positive"}},
             "teacher": {"top_prediction": {"prediction": 2, "share": 0.97}}}
    w = collapse_warnings(evals, bench)
    assert len(w) == 2 and "student gives class 'negative' for 100%" in w[0] and "student_epochs" in w[0]
    assert "choice 2" in w[1] and "teacher_epochs" in w[1]
    assert warning_kind(w[0]) == warning_kind(w[1])  # one kind in a study report
    one_sided = [MCExample(id=str(i), question=f"q{i}", choices=("negative", "positive"), label=0) for i in range(40)]
    assert collapse_warnings(evals, one_sided) == []


def test_integration_records_the_prediction_given_most(tmp_path):
    import torch

    from pylaundering.data.schema import MCExample
    from pylaundering.phases.integration import _top_prediction

    ex = [MCExample(id=str(i), question="q", choices=("a", "b", "c"), label=0) for i in range(4)]
    top = _top_prediction(torch.tensor([2, 2, 1, 2]), ex, "classification")
    assert top == {"prediction": 2, "share": 0.75, "name": "c"}
    assert "name" not in _top_prediction(torch.tensor([0, 1, 1, 1]), ex, "multiple_choice")


def test_the_report_separates_the_benchmark_specific_effect_from_general_skill():
    """The real-data pattern: the student's excess on B is small, its loss on R large; the report gives the
    difference of the two gaps (and says nothing when the control was not audited)."""
    m = _metrics(14, 3, 0.008)
    student = m["audit"]["arms"]["student"]
    student.update(accuracy_benchmark=0.78, accuracy_reference=0.66, control_p=0.0003)
    line = [x for x in render_markdown(m).splitlines() if x.startswith("Specific to the benchmark's items")]
    assert line == []  # no audited control: nothing to difference
    m["audit"]["arms"]["control_student"] = {
        "kind": "student", "verdict": "clean", "expected": "clean", "correct": True, "score": 0.6, "core_p": 0.27,
        "accuracy_benchmark": 0.77, "accuracy_reference": 0.74}
    (line,) = [x for x in render_markdown(m).splitlines() if x.startswith("Specific to the benchmark's items")]
    assert "+12.0 points, against its control's +3.0: **+9.0 points**" in line and "p = 0.0003" in line


def test_a_student_too_short_to_show_an_effect_is_flagged_on_given_data():
    """OpenBookQA's 500 items at 3 epochs gave 94 steps and no effect, 376 steps gave +12 points: a short student
    reads as "no effect" unless the run says so; the synthetic default is exempt."""
    from pylaundering.experiments.config import RunConfig
    from pylaundering.experiments.run import MIN_STUDENT_STEPS, short_student_warnings
    from pylaundering.experiments.study_report import warning_kind

    given = RunConfig(benchmark="b.jsonl", train="t.jsonl")
    short = {"rounds": [{"steps": 60}, {"steps": 34}]}  # two rounds: their steps add up
    w = short_student_warnings(given, short)
    assert len(w) == 1 and "only 94 optimiser steps" in w[0] and "student_epochs or data_size" in w[0]
    assert warning_kind(w[0]).startswith("the student trained for too few")
    assert short_student_warnings(given, {"rounds": [{"steps": MIN_STUDENT_STEPS}]}) == []
    assert short_student_warnings(RunConfig(), short) == []
