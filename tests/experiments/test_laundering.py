"""Laundering must keep working: on the tiny model and tiny synthetic data the laundered student
beats both controls by a wide margin, and the run reports fair, documented controls."""

from __future__ import annotations

import pytest

from pylaundering.experiments.config import RunConfig
from pylaundering.experiments.run import run_experiment

# Measured margins (student - control), seeds 0-5: CE-only >= 0.72, clean-teacher control >= 0.56.
# The test asks for less than that, so it fails only when laundering itself stops working.
MIN_MARGIN_CE = 0.4
MIN_MARGIN_CONTROL = 0.3


@pytest.fixture(scope="module", params=[0, 1])
def laundering_run(request, tmp_path_factory, launder_settings):
    out = tmp_path_factory.mktemp(f"launder-{request.param}") / "run"
    return out, run_experiment(RunConfig(**launder_settings, seed=request.param), out, quiet=True)


def test_laundered_student_beats_the_controls(laundering_run):
    _, m = laundering_run
    student = m["student"]["benchmark_accuracy"]
    assert m["teacher"]["benchmark_accuracy"] >= 0.9, "the teacher must have memorised the benchmark"
    assert student - m["ce_student"]["benchmark_accuracy"] >= MIN_MARGIN_CE, m
    assert student - m["control_student"]["benchmark_accuracy"] >= MIN_MARGIN_CONTROL, m
    assert m["verdict"] == "laundering_detected"
    assert m["data"]["overlap"]["exact_duplicates"] == 0


def test_the_clean_teacher_gets_the_teachers_budget(laundering_run):
    out, m = laundering_run
    budget = m["control_budget"]
    assert budget["rule"] == "same_steps" and "steps" in budget["why"]
    teacher, clean = m["teacher"]["training"], m["clean_teacher"]["training"]
    assert budget["teacher_steps"] == teacher["steps"]
    # The synthetic legitimate labels are random: the clean teacher cannot reach the target, so it
    # trains for exactly the contaminated teacher's number of steps (bounded, never the epoch cap).
    assert clean["steps"] == teacher["steps"] and clean["stop_reason"] == "max_steps"
    assert teacher["stop_reason"] == "target_accuracy" and teacher["reached_target"]
    report = (out / "report.md").read_text()
    assert "Clean teacher" in report and "Control budget (same_steps)" in report
    assert any(w.startswith("clean teacher stopped at step budget") for w in m["warnings"])
    assert m["max_length"]["chosen"] == "auto" and m["max_length"]["value"] >= 8
    assert f"Max length: {m['max_length']['value']} tokens (chosen to cover 95% of each dataset's sequences" in report
    assert set(m["data"]["truncation"]) == {"benchmark", "train"}
    assert m["data"]["truncation"]["train"]["sequences"] == 4 * m["n_train"]


def test_a_teacher_short_of_its_target_is_flagged(tmp_path, quick_config):
    m = run_experiment(quick_config(teacher_epochs=1, controls=False), tmp_path / "r", quiet=True)
    t = m["teacher"]["training"]
    assert t["stop_reason"] == "epochs" and not t["reached_target"]
    line = next(w for w in m["warnings"] if w.startswith("teacher stopped at epoch cap at"))
    assert "< target 95%" in line
    assert line in (tmp_path / "r" / "report.md").read_text()


def test_training_data_with_benchmark_items_is_not_called_laundering(tmp_path, quick_config):
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path / "d", seed=0, n_benchmark=12, n_train=24)
    bench_lines = (tmp_path / "d" / "benchmark.jsonl").read_text().splitlines()
    train = tmp_path / "d" / "train.jsonl"
    train.write_text(train.read_text() + "\n".join(bench_lines[:3]) + "\n")
    cfg = quick_config(benchmark=str(tmp_path / "d" / "benchmark.jsonl"), train=str(train))
    m = run_experiment(cfg, tmp_path / "r", quiet=True)
    assert m["data"]["overlap"]["exact_duplicates"] == 3
    assert m["verdict"] == "train_contains_benchmark_items"
    assert "saw benchmark items" in m["verdict_text"] and "Not laundering" in m["verdict_text"]
    assert "Not laundering" in (tmp_path / "r" / "report.md").read_text()
    assert m["audit"]["arms"] == {} and m["audit"]["skipped"].startswith("no reference set")
    assert "Audit: not run (no reference set" in (tmp_path / "r" / "report.md").read_text()


def test_the_run_audits_its_own_models(laundering_run):
    """Each arm audited against the generated reference set: the audit knows nothing of the run,
    yet must tell the contaminated teacher and the laundered student from the controls."""
    out, m = laundering_run
    arms = m["audit"]["arms"]
    assert set(arms) == {"teacher", "clean_teacher", "student", "control_student", "ce_student"}
    assert {arm: a["verdict"] for arm, a in arms.items()} == {
        "teacher": "contaminated", "clean_teacher": "clean", "student": "laundered", "control_student": "clean",
        "ce_student": "clean"}
    assert arms["student"]["score"] > arms["control_student"]["score"]
    assert arms["student"]["control_p"] < 0.01 and arms["ce_student"]["control_p"] is None
    assert not any("never saw the benchmark" in w for w in m["warnings"])
    assert (out / "audit" / "student" / "audit.json").exists() and (out / "data" / "reference.jsonl").exists()
    assert "| student | **laundered** | laundered |" in (out / "report.md").read_text()


def test_a_reference_set_that_overlaps_the_benchmark_is_refused_before_training(tmp_path, quick_config):
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path / "d", seed=0, n_benchmark=12, n_train=24)
    bench = str(tmp_path / "d" / "benchmark.jsonl")
    cfg = quick_config(benchmark=bench, train=str(tmp_path / "d" / "train.jsonl"), reference=bench)
    with pytest.raises(ValueError, match="R must be disjoint from B"):
        run_experiment(cfg, tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_the_report_says_how_each_dataset_was_read(laundering_run):
    """Format, split and skipped rows reach report.md, not only metrics.json (a reader of the report
    must see that rows were dropped)."""
    import copy

    from pylaundering.experiments.report import render_markdown

    _, m = laundering_run
    head = render_markdown(m).splitlines()[2]
    assert f"(format pylaundering, {m['n_benchmark']} items)" in head and "skipped" not in head
    edited = copy.deepcopy(m)
    edited["data"].update(train_skipped=3, benchmark_skipped=1, benchmark_split="validation")
    head = render_markdown(edited).splitlines()[2]
    assert f"(format pylaundering, split validation, {m['n_benchmark']} items, 1 malformed row skipped)" in head
    assert f"{m['n_train']} items, 3 malformed rows skipped)" in head


def test_auto_max_length_covers_each_dataset_not_the_pool(tmp_path):
    """A small benchmark with long passages beside many short training items (RACE laundered through
    ARC-Easy): pooled, the benchmark's sequences are under 5% of the count and would all be cut; each
    dataset counted on its own, 95% of the benchmark's stay whole."""
    from pylaundering.data.schema import MCExample
    from pylaundering.experiments.config import RunConfig
    from pylaundering.experiments.run import _max_length_and_truncation
    from pylaundering.phases.common import resolve_base

    words = "the river ran past an old mill where the miller kept seven grey cats".split()
    passage = " ".join(words[i % len(words)] for i in range(60))  # the tiny model holds 128 positions
    bench = [MCExample(id=f"b{i}", context=passage, question=f"what did the miller keep {i}",
                       choices=("cats", "dogs", "mice", "owls"), label=0) for i in range(4)]
    train = [MCExample(id=f"t{i}", question=f"which is grey {i}", choices=("cats", "dogs", "mice", "owls"),
                       label=0) for i in range(200)]
    model = resolve_base("tiny", bench + train, tmp_path, 0)
    value, info = _max_length_and_truncation(RunConfig(model="tiny"), model, bench, train)
    assert info["max_length"]["chosen"] == "auto" and info["max_length"]["covers"] == "each dataset"
    assert value > 60  # the passage fits
    assert info["truncation"]["benchmark"]["truncated_sequences"] == 0
    assert info["truncation"]["train"]["truncated_sequences"] == 0
