"""`launder run`: placement -> layering -> integration, plus the two controls that make the
result interpretable, in one run folder.

Arms (all students share architecture, initialisation, data and schedule):
  teacher          fine-tuned on the benchmark (contaminated)
  student          distilled from the teacher on the legitimate set only
  control_student  distilled, identically, from a clean teacher fine-tuned on the legitimate set
  ce_student       trained with cross-entropy alone on the legitimate set (no teacher)
If the student beats both controls on the benchmark, benchmark knowledge crossed over through
the teacher's soft outputs: that is data laundering.

Run folder (``metrics.json`` is the stable, machine-readable result):
  config.json  environment.json  metrics.json  report.md  accuracy.png
  data/  teacher/  student/  clean_teacher/  control_student/  ce_student/  eval/<arm>/  cache/
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

from .. import __version__
from ..data.adapters import load_examples
from ..data.schema import examples_hash
from ..data.synth import write_synthetic
from ..phases import integrate, layer, place
from ..phases.common import resolve_base
from ..progress import console
from ..stats import chance_level, mcnemar_exact
from ..train.checkpoint import read_json, write_json
from .config import RunConfig
from .report import write_report

METRICS_SCHEMA_VERSION = 1
ARMS = ("teacher", "student", "control_student", "ce_student")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    import torch
    import transformers

    from ..ops import backend

    return {"pylaundering": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "ops_backend": str(backend()), "git_commit": _git_commit()}


def load_data(cfg: RunConfig, out: Path):
    """Benchmark and legitimate examples; the synthetic default is written into ``out/data``."""
    bench_src, train_src = cfg.benchmark, cfg.train
    bench_fmt, train_fmt = cfg.benchmark_format, cfg.train_format
    if bench_src is None or train_src is None:
        if (bench_src is None) != (train_src is None):
            raise ValueError("give both --benchmark and --train, or neither (the offline synthetic default)")
        write_synthetic(out / "data", seed=cfg.seed, n_benchmark=cfg.synth_benchmark, n_train=cfg.synth_train)
        bench_src, train_src = str(out / "data" / "benchmark.jsonl"), str(out / "data" / "train.jsonl")
        bench_fmt = train_fmt = "pylaundering"
    bench = load_examples(bench_src, bench_fmt, skip_malformed=cfg.skip_malformed)
    train = load_examples(train_src, train_fmt, skip_malformed=cfg.skip_malformed)
    return bench, train


def run_experiment(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False, quiet: bool = False) -> dict:
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not resume and (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "config.json").exists():
        previous = read_json(out / "config.json")
        if previous != cfg.to_dict():
            changed = sorted(k for k in previous if previous.get(k) != cfg.to_dict().get(k))
            raise ValueError(f"--resume with a different configuration (changed: {changed}); use a new --out")
    write_json(cfg.to_dict(), out / "config.json")
    write_json(environment(), out / "environment.json")
    timings: dict[str, float] = {}

    def phase(name: str, fn):
        if not quiet:
            console.print(f"[bold cyan]==> {name}")
        t0 = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        return result

    bench_res, train_res = phase("data", lambda: load_data(cfg, out))
    bench, train = bench_res.examples, train_res.examples
    # One base for every arm: `tiny` is built once, with a tokenizer that has seen all the run's texts.
    model = resolve_base(cfg.model, list(bench) + list(train), out, cfg.seed)
    student_base = model if cfg.student_base is None else cfg.student_base
    common = dict(batch_size=cfg.batch_size, max_length=cfg.max_length, resume=resume, quiet=quiet)
    student_kw = dict(base=student_base, student_layers=cfg.student_layers,
                      student_init=cfg.student_init, student_model=cfg.student_model, loss=cfg.loss,
                      temperature=cfg.temperature, beta=cfg.beta, data_size=cfg.data_size,
                      epochs=cfg.student_epochs, iterations=cfg.iterations, lr=cfg.student_lr,
                      online_teacher=cfg.online_teacher, cache_dir=out / "cache", seed=cfg.seed, **common)

    train_metrics: dict[str, dict] = {}
    train_metrics["teacher"] = phase("placement: teacher on the benchmark", lambda: place(
        bench, out / "teacher", model=model, epochs=cfg.teacher_epochs, lr=cfg.teacher_lr,
        target_accuracy=cfg.target_accuracy, seed=cfg.seed, description="teacher", **common))
    train_metrics["student"] = phase("layering: student from the teacher", lambda: layer(
        train_metrics["teacher"]["model_dir"], train, out / "student", alpha=cfg.alpha, description="student",
        **student_kw))
    if cfg.controls:
        train_metrics["clean_teacher"] = phase("control: clean teacher on the legitimate set", lambda: place(
            train, out / "clean_teacher", model=model, epochs=cfg.clean_teacher_epochs, lr=cfg.teacher_lr,
            seed=cfg.seed, description="clean teacher", **common))
        train_metrics["control_student"] = phase("control: student from the clean teacher", lambda: layer(
            train_metrics["clean_teacher"]["model_dir"], train, out / "control_student", alpha=cfg.alpha,
            description="control student", **student_kw))
        train_metrics["ce_student"] = phase("control: cross-entropy-only student", lambda: layer(
            None, train, out / "ce_student", alpha=0.0, description="CE student", **student_kw))

    evals = {}
    for arm, m in train_metrics.items():
        evals[arm] = phase(f"integration: {arm}", lambda m=m, arm=arm: integrate(
            m["model_dir"], bench, out / "eval" / arm, max_length=cfg.max_length, quiet=quiet,
            description=f"score {arm}"))

    metrics = build_metrics(cfg, bench, train, bench_res, train_res, train_metrics, evals, timings)
    write_json(metrics, out / "metrics.json")
    write_report(metrics, out)
    return metrics


def build_metrics(cfg, bench, train, bench_res, train_res, train_metrics, evals, timings) -> dict:
    arms = {}
    for arm, e in evals.items():
        arms[arm] = {"benchmark_accuracy": e["accuracy"], "benchmark_ci95": e["ci95"],
                     "benchmark_correct": e["correct"], "train_accuracy": train_metrics[arm]["train_accuracy"],
                     "per_subject": e["per_subject"], "model_dir": train_metrics[arm]["model_dir"]}
    comparisons = {}
    for other in ("control_student", "ce_student"):
        if other in evals:
            comparisons[f"student_vs_{other}"] = mcnemar_exact(evals["student"]["correct_mask"],
                                                               evals[other]["correct_mask"])
    layering_timings = train_metrics["student"].get("timings", {})
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "chance": chance_level([len(e.choices) for e in bench]),
        "n_benchmark": len(bench), "n_train": len(train),
        "data": {"benchmark": bench_res.source, "benchmark_format": bench_res.format,
                 "benchmark_hash": examples_hash(bench), "benchmark_skipped": bench_res.skipped,
                 "train": train_res.source, "train_format": train_res.format, "train_hash": examples_hash(train),
                 "train_skipped": train_res.skipped},
        **arms,
        "comparisons": comparisons,
        "checkpoint_selection": "none: every model is scored after its last epoch (no selection on the benchmark)",
        "teacher_logits": train_metrics["student"]["rounds"][0]["teacher_logits"],
        "timings_s": {**timings, "student_teacher_logits": layering_timings.get("teacher_logits_s"),
                      "student_train": layering_timings.get("train_s")},
        "seed": cfg.seed,
    }
