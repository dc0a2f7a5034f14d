"""`audit_teacher` and `audit_student`: did a model memorise the benchmark, did a student inherit it?

Both compare the model on the benchmark B with a reference set R of the same kind that no teacher
saw (`verdict` explains the tests and thresholds, `secondary` the student's optional ones,
`comparability` the check that R is of the same kind, `reference.verify_split` the provenance).
Neither needs the model's training data. Every audit returns a JSON-ready dict and, given
``out_dir``, writes ``audit.json`` and ``audit.md``. `assess` is the statistics alone, on per-item
arrays: what the audits call after scoring, and what a simulation calls instead (`calibrate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.schema import MCExample, examples_hash
from ..errors import DataError
from .comparability import compare_sets, features
from .evidence import ItemScores, check_mc_model, check_sets, score_sets
from .reference import ASSUMED, verify_split
from .report import format_markdown
from .secondary import agreement_tests, control_tests
from .verdict import RESAMPLES, core_tests, decide

SCHEMA_VERSION = 2  # 2: studentized, chance-centred core test; comparability; exchangeability

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


def assess(kind: str, sb: ItemScores, sr: ItemScores, *, teacher: tuple[ItemScores, ItemScores] | None = None,
           control: tuple[ItemScores, ItemScores] | None = None, control_description: str = "a control model",
           comparability: dict | None = None, clusters: tuple | None = None,
           resamples: int = RESAMPLES) -> dict[str, Any]:
    """The tests and verdict of a ``kind`` audit ("teacher" or "student") from per-item scores on B (``sb``)
    and R (``sr``); ``teacher`` and ``control``: (B, R) scores of a suspected teacher and a control (student
    audits); ``comparability``: `comparability.compare_sets` of the two sets; ``clusters``: (B, R) passage
    labels per item (None: an item on its own; `comparability.SetFeatures.clusters`), which every test
    re-splits whole, and the data-sufficiency check counts as one unit each. Returns `verdict.decide`'s
    dict with ``tests``."""
    kw = dict(resamples=resamples, clusters=clusters)
    tests = core_tests(kind, sb, sr, **kw)
    if teacher is not None:
        tests["teacher_agreement"] = agreement_tests(sb, sr, *teacher, **kw)
    if control is not None:
        tests["control"] = control_tests(sb, sr, *control, control_description, **kw)
    units = tests["p_correct"]["units"]
    out = decide(kind, tests, sb, sr, sizes=(units["a"], units["b"]), comparability=comparability)
    out["tests"] = tests
    return out


def _checks(bench, ref, split) -> tuple[dict, dict, dict, tuple]:
    """(overlap check, comparability, exchangeability, passage clusters) of the two sets: refused before any
    model is loaded."""
    overlap = check_sets(bench, ref)
    exchangeability = verify_split(split, bench, ref) if split is not None else dict(ASSUMED)
    fb, fr = features(bench), features(ref)
    return overlap, compare_sets(fb, fr), exchangeability, (fb.clusters, fr.clusters)


def audit_teacher(model: str, benchmark_examples: Sequence[MCExample], reference_examples: Sequence[MCExample], *,
                  out_dir: str | Path | None = None, max_length: int | None = None, quiet: bool = False,
                  benchmark_source: str | None = None, reference_source: str | None = None,
                  label: str = "teacher", split: str | Path | None = None, device=None) -> dict:
    """Verdict ``clean | suspicious | contaminated`` (or, withheld: ``insufficient_data``, sets too small to
    decide; ``not_comparable``, a reference set unlike the benchmark) on whether ``model`` (a multiple-choice
    or classification model folder) memorised the benchmark; the dict has ``verdict``, ``score``, ``tests``,
    ``thresholds``, ``reasons``, ``comparability``, ``exchangeability``, ``evidence`` (per-set summaries) and
    the inputs' hashes. ``split``: the split.json of `launder data split` that B and R must match (certifies
    exchangeability). ``label`` names the model in progress lines; ``device``: where the models are scored (a
    ``pylaundering.device.Runtime`` or a device name; None: the CPU)."""
    check_mc_model(str(model))
    overlap, comparable, exchangeability, clusters = _checks(benchmark_examples, reference_examples, split)
    sb, sr, info = score_sets(str(model), benchmark_examples, reference_examples, max_length=max_length,
                              quiet=quiet, description=f"audit: {label}", device=device)
    report = _base("teacher", model, benchmark_examples, reference_examples, benchmark_source=benchmark_source,
                   reference_source=reference_source)
    report.update(assess("teacher", sb, sr, comparability=comparable, clusters=clusters))
    report.update({"exchangeability": exchangeability, "evidence": {"benchmark": sb.summary(),
                                                                    "reference": sr.summary()},
                   "checks": overlap, "encoding": info})
    return _finish(report, out_dir, quiet)


def audit_student(model: str, benchmark_examples: Sequence[MCExample], reference_examples: Sequence[MCExample], *,
                  teacher: str | None = None, control: str | None = None, control_description: str | None = None,
                  out_dir: str | Path | None = None, max_length: int | None = None, quiet: bool = False,
                  benchmark_source: str | None = None, reference_source: str | None = None,
                  label: str = "student", split: str | Path | None = None, device=None) -> dict:
    """Verdict ``clean | suspicious | laundered`` (or ``insufficient_data`` / ``not_comparable``, withheld, as
    for the teacher) on whether the student ``model`` carries benchmark knowledge.

    Core evidence needs only B and R. ``teacher`` (a suspected teacher's model folder) adds the
    agreement test; ``control`` (a student of the same kind trained without the suspect teacher)
    adds the difference-in-differences comparison with it (`secondary`). Both are secondary tests: they
    can raise a verdict to ``suspicious``, never to ``laundered`` on their own. ``split``, ``label`` and
    ``device``: as for `audit_teacher`.
    """
    check_mc_model(str(model))
    for extra in (teacher, control):
        if extra is not None:
            check_mc_model(str(extra))
    overlap, comparable, exchangeability, clusters = _checks(benchmark_examples, reference_examples, split)
    sb, sr, info = score_sets(str(model), benchmark_examples, reference_examples, max_length=max_length,
                              quiet=quiet, description=f"audit: {label}", device=device)
    evidence = {"benchmark": sb.summary(), "reference": sr.summary()}
    teacher_scores = control_scores = None
    if teacher is not None:
        tb, tr, _ = score_sets(str(teacher), benchmark_examples, reference_examples, max_length=max_length,
                               quiet=quiet, description=f"audit: {label}'s teacher", device=device)
        teacher_scores = (tb, tr)
        evidence["teacher"] = {"model": str(teacher), "benchmark": tb.summary(), "reference": tr.summary()}
    if control is not None:
        cb, cr, _ = score_sets(str(control), benchmark_examples, reference_examples, max_length=max_length,
                               quiet=quiet, description=f"audit: {label}'s control", device=device)
        control_scores = (cb, cr)
        evidence["control"] = {"model": str(control), "benchmark": cb.summary(), "reference": cr.summary()}
    report = _base("student", model, benchmark_examples, reference_examples, benchmark_source=benchmark_source,
                   reference_source=reference_source)
    report.update(assess("student", sb, sr, teacher=teacher_scores, control=control_scores,
                         control_description=control_description or f"given control model {control}",
                         comparability=comparable, clusters=clusters))
    report.update({"exchangeability": exchangeability, "evidence": evidence, "checks": overlap, "encoding": info})
    return _finish(report, out_dir, quiet)


def check_control_data(benchmark: Sequence[MCExample], train: Sequence[MCExample], task: str) -> None:
    """A classification control must learn the benchmark's labels: the same label names in the same order
    (each item's choices), else its label i is another class than the suspect's and every comparison with it
    is silently wrong."""
    if task != "classification":
        return
    names_b = {e.choices for e in benchmark}
    names_t = {e.choices for e in train}
    if len(names_t) != 1 or names_t != names_b:
        shown = "; ".join(", ".join(n[:6]) + (", ..." if len(n) > 6 else "") for n in sorted(names_t)[:2])
        raise DataError(f"the --train set's label names ({len(names_t)} set(s): {shown}) are not the benchmark's "
                        f"({len(next(iter(names_b)))} labels): a classification control must learn the suspect's "
                        "labels, in the same order", field="choices")


def train_control(train_examples: Sequence[MCExample], like_model: str, out_dir: str | Path, *, epochs: int = 3,
                  lr: float = 1e-4, batch_size: int = 16, seed: int = 0, quiet: bool = False,
                  benchmark: Sequence[MCExample] | None = None, device=None) -> tuple[str, str]:
    """A cross-entropy-only student on the legitimate data with ``like_model``'s task (multiple choice, or
    classification with its label count), head, architecture and tokenizer, but random initial weights (the
    suspect's pretrained starting point is unknown to an auditor): ``phases.layer(None, L, alpha=0.0,
    student_init="random", task=...)``. ``benchmark``, when given, must have the --train set's label names
    (classification). Returns (model folder, description)."""
    from ..models import model_task  # import time: torch, as above
    from ..phases.layering import layer

    check_mc_model(str(like_model))
    if not train_examples:
        raise ValueError("the --train set is empty")
    task = model_task(str(like_model)) or "multiple_choice"
    if benchmark is not None:
        check_control_data(benchmark, train_examples, task)
    metrics = layer(None, train_examples, out_dir, base=str(like_model), student_layers=None, student_init="random",
                    alpha=0.0, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, quiet=quiet, task=task,
                    # the audit's own control: retrained every time
                    description="audit control", overwrite=True, device=device)
    what = "multiple choice" if task == "multiple_choice" else \
        f"classification into {len(train_examples[0].choices)} labels"
    description = (f"trained here: cross-entropy only (no teacher) on {len(train_examples)} legitimate items, the "
                   f"suspect's task ({what}), head, architecture and tokenizer from random weights, {epochs} epochs, "
                   f"lr {lr}, batch {batch_size}, seed {seed}; train accuracy {metrics['train_accuracy']:.3f}")
    return metrics["model_dir"], description
