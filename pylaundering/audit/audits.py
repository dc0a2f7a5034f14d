"""`audit_teacher` and `audit_student`: did a model memorise the benchmark, did a student inherit it?

Both compare the model on the benchmark B with a reference set R of the same kind that no teacher
saw (`verdict` explains the tests and thresholds). Neither needs the model's training data. Every
audit returns a JSON-ready dict and, given ``out_dir``, writes ``audit.json`` and ``audit.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.schema import MCExample, examples_hash
from .evidence import check_mc_model, check_sets, score_sets
from .report import format_markdown
from .verdict import agreement_tests, control_tests, core_tests, decide

SCHEMA_VERSION = 1

QUESTIONS = {
    "teacher": "Did this model memorise the benchmark? (loss, margin and correctness on the benchmark vs a "
               "reference set it never saw)",
    "student": "Did this student inherit benchmark knowledge? (performance on the benchmark beyond what a "
               "reference set of the same kind predicts)",
}


def _set_info(examples: Sequence[MCExample], source: str | None) -> dict:
    return {"source": source, "n": len(examples), "sha256": examples_hash(examples)}


def _base(kind: str, model: str, bench, ref, *, benchmark_source, reference_source) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "audit": kind, "question": QUESTIONS[kind], "model": str(model),
            "benchmark": _set_info(bench, benchmark_source), "reference": _set_info(ref, reference_source)}


def _finish(report: dict, out_dir, quiet: bool) -> dict:
    if out_dir is not None:
        from ..train.checkpoint import write_json, write_text  # import time: torch, not for `launder scan`

        out = Path(out_dir)
        report["files"] = {"json": str(out / "audit.json"), "markdown": str(out / "audit.md")}
        write_json(report, out / "audit.json")
        write_text(format_markdown(report), out / "audit.md")
    return report


def audit_teacher(model: str, benchmark_examples: Sequence[MCExample], reference_examples: Sequence[MCExample], *,
                  out_dir: str | Path | None = None, max_length: int | None = None, quiet: bool = False,
                  benchmark_source: str | None = None, reference_source: str | None = None,
                  label: str = "teacher") -> dict:
    """Verdict ``clean | suspicious | contaminated`` (or ``insufficient_data``: sets too small to decide) on
    whether ``model`` (a multiple-choice model folder)
    memorised the benchmark; the dict has ``verdict``, ``score``, ``tests``, ``thresholds``, ``reasons``,
    ``evidence`` (per-set summaries) and the inputs' hashes. ``label`` names the model in progress lines."""
    check_mc_model(str(model))
    overlap = check_sets(benchmark_examples, reference_examples)
    sb, sr, info = score_sets(str(model), benchmark_examples, reference_examples, max_length=max_length,
                              quiet=quiet, description=f"audit: {label}")
    tests = core_tests("teacher", sb, sr)
    report = _base("teacher", model, benchmark_examples, reference_examples, benchmark_source=benchmark_source,
                   reference_source=reference_source)
    report.update(decide("teacher", tests, sb, sr, sizes=(len(benchmark_examples), len(reference_examples))))
    report.update({"tests": tests, "evidence": {"benchmark": sb.summary(), "reference": sr.summary()},
                   "checks": overlap, "encoding": info})
    return _finish(report, out_dir, quiet)


def audit_student(model: str, benchmark_examples: Sequence[MCExample], reference_examples: Sequence[MCExample], *,
                  teacher: str | None = None, control: str | None = None, control_description: str | None = None,
                  out_dir: str | Path | None = None, max_length: int | None = None, quiet: bool = False,
                  benchmark_source: str | None = None, reference_source: str | None = None,
                  label: str = "student") -> dict:
    """Verdict ``clean | suspicious | laundered`` (or ``insufficient_data``, as for the teacher) on whether the
    student ``model`` carries benchmark knowledge.

    Core evidence needs only B and R. ``teacher`` (a suspected teacher's model folder) adds the
    agreement test; ``control`` (a student of the same kind trained without the suspect teacher)
    adds the paired comparison with it. Both are secondary tests: they can raise a verdict to
    ``suspicious``, never to ``laundered`` on their own. ``label`` names the model in progress lines.
    """
    check_mc_model(str(model))
    for extra in (teacher, control):
        if extra is not None:
            check_mc_model(str(extra))
    overlap = check_sets(benchmark_examples, reference_examples)
    sb, sr, info = score_sets(str(model), benchmark_examples, reference_examples, max_length=max_length,
                              quiet=quiet, description=f"audit: {label}")
    tests = core_tests("student", sb, sr)
    evidence = {"benchmark": sb.summary(), "reference": sr.summary()}
    if teacher is not None:
        tb, tr, _ = score_sets(str(teacher), benchmark_examples, reference_examples, max_length=max_length,
                               quiet=quiet, description=f"audit: {label}'s teacher")
        tests["teacher_agreement"] = agreement_tests(sb, sr, tb, tr)
        evidence["teacher"] = {"model": str(teacher), "benchmark": tb.summary(), "reference": tr.summary()}
    if control is not None:
        cb, cr, _ = score_sets(str(control), benchmark_examples, reference_examples, max_length=max_length,
                               quiet=quiet, description=f"audit: {label}'s control")
        tests["control"] = control_tests(sb, sr, cb, cr, control_description or f"given control model {control}")
        evidence["control"] = {"model": str(control), "benchmark": cb.summary(), "reference": cr.summary()}
    report = _base("student", model, benchmark_examples, reference_examples, benchmark_source=benchmark_source,
                   reference_source=reference_source)
    report.update(decide("student", tests, sb, sr, sizes=(len(benchmark_examples), len(reference_examples))))
    report.update({"tests": tests, "evidence": evidence, "checks": overlap, "encoding": info})
    return _finish(report, out_dir, quiet)


def train_control(train_examples: Sequence[MCExample], like_model: str, out_dir: str | Path, *, epochs: int = 3,
                  lr: float = 1e-4, batch_size: int = 16, seed: int = 0, quiet: bool = False) -> tuple[str, str]:
    """A cross-entropy-only student on the legitimate data, with ``like_model``'s architecture and tokenizer
    but random initial weights (the suspect's pretrained starting point is unknown to an auditor):
    ``phases.layer(None, L, alpha=0.0, student_init="random")``. Returns (model folder, description)."""
    from ..phases.layering import layer  # import time, as above

    check_mc_model(str(like_model))
    if not train_examples:
        raise ValueError("the --train set is empty")
    metrics = layer(None, train_examples, out_dir, base=str(like_model), student_layers=None, student_init="random",
                    alpha=0.0, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, quiet=quiet,
                    description="audit control", overwrite=True)  # the audit's own control: retrained every time
    description = (f"trained here: cross-entropy only (no teacher) on {len(train_examples)} legitimate items, the "
                   f"suspect's architecture and tokenizer from random weights, {epochs} epochs, lr {lr}, batch "
                   f"{batch_size}, seed {seed}; train accuracy {metrics['train_accuracy']:.3f}")
    return metrics["model_dir"], description
