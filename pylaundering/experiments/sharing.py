"""Work that runs of a study can share: the base model, the two teachers, the CE-only student and
the teacher-logit cache.

A sweep over alpha, loss or student settings must not retrain each seed's teachers for every
point. Each shareable phase gets a home in the sweep's ``shared/`` folder named by a key: a hash
of exactly the configuration fields that phase depends on. A run folder links its phase folders
there, so it reads like any other run. Reuse goes through the phases' own resume record
(``phases/common.py``): a shared phase is reused only when its recorded parameters and data hashes
equal what the run asks for; a key that missed a field would give a refusal, never a wrong reuse.

Concurrency: a phase holds its folder's lock while it runs (``phases.common.phase_folder``), and a
shared folder is the same folder (through the link) for every point, so two points never train or resume
one shared teacher at once. The sweep orders a point after the points that first train its shared phases
(``sweep.plan``); when that order cannot hold (a point that failed releases all its dependants at once,
the pool or Ray runs them side by side), a point that needs a shared phase another point holds waits for
it (``run_experiment`` runs a sweep point inside ``lock.waiting()``), then reuses or resumes it, instead
of failing. The tiny base is built under ``shared_lock`` too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .config import RUNTIME_FIELDS, RunConfig

#: Fields that only the students' training reads (layering), never a teacher.
STUDENT_FIELDS = frozenset({"loss", "alpha", "temperature", "beta", "student_base", "student_layers", "student_init",
                            "student_model", "student_epochs", "student_lr", "iterations", "data_size",
                            "online_teacher", "teacher_topk"})
#: Student settings that only shape the teacher's signal: a student trained at alpha = 0 (the CE-only control) reads
#: none of them (``layering_params`` records them as None there).
DISTILL_FIELDS = frozenset({"loss", "temperature", "beta", "online_teacher", "teacher_topk"})
#: Fields that only a teacher's fine-tuning reads.
TEACHER_FIELDS = frozenset({"teacher_epochs", "teacher_lr", "target_accuracy", "clean_teacher_epochs"})
#: Fields that change no shared phase's result (which arms run, the audit, free-form notes, where it runs: a
#: teacher trained on a GPU is the CPU's up to float rounding; precision is not among them).
NEUTRAL_FIELDS = frozenset({"controls", "extra", "reference", "reference_format", "audit"}) | RUNTIME_FIELDS
#: The data and the base model (the tiny base's tokenizer is trained on the run's texts). ``labels`` is data: the
#: label set decides every head's width and which output each class gets.
DATA_FIELDS = frozenset({"benchmark", "benchmark_format", "benchmark_subset", "benchmark_split", "train",
                         "train_format", "train_subset", "train_split", "skip_malformed", "synth_benchmark",
                         "synth_train", "model", "seed", "task", "labels"})

SHARED_PHASES = ("base", "teacher", "clean_teacher", "ce_student")


def _digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def shared_keys(cfg: RunConfig) -> dict[str, str]:
    """Key of each shareable phase (``SHARED_PHASES``): equal keys mean the phase is the same work."""
    d = cfg.to_dict()
    everything = set(d)
    teacher = everything - STUDENT_FIELDS - NEUTRAL_FIELDS - {"clean_teacher_epochs"}
    keys = {
        "base": {k: d[k] for k in DATA_FIELDS},
        "teacher": {k: d[k] for k in teacher},
        "clean_teacher": {k: d[k] for k in teacher | {"clean_teacher_epochs"}},
        # alpha = 0 with no teacher: the CE-only student reads neither the teachers, nor alpha, nor how a teacher's
        # signal would be distilled (loss, T, beta, online or top-k teacher): one per seed for a grid over losses.
        "ce_student": {k: d[k] for k in everything - TEACHER_FIELDS - NEUTRAL_FIELDS - DISTILL_FIELDS - {"alpha"}},
    }
    return {name: f"{name}-{_digest(values)}" for name, values in keys.items()}


def link(path: Path, target: Path) -> Path:
    """``path`` becomes a relative symlink to ``target`` (created); an existing real folder at
    ``path`` is kept (that run trained its own), an existing link must point at ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target, path.parent)
    if path.is_symlink():
        if os.readlink(path) == rel:
            return path
        path.unlink()
    elif path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(rel, tmp)
    os.replace(tmp, path)
    return path


def link_shared(cfg: RunConfig, out: Path, shared: Path) -> dict[str, str]:
    """Links ``out``'s shareable phase folders (and its teacher-logit cache) into ``shared``;
    returns the keys used (recorded in metrics.json). The tiny base is not linked (it is saved by
    replacing its folder): the run builds it in ``shared / keys["base"]`` directly."""
    keys = shared_keys(cfg)
    for name in ("teacher", "clean_teacher", "ce_student") if cfg.controls else ("teacher",):
        link(out / name, shared / keys[name])
    link(out / "cache", shared / "cache")
    return keys


def shared_lock(folder: Path, what: str):
    """The lock of a shared folder: a point that needs it while another point holds it waits (``lock.py``)."""
    from ..lock import locked

    return locked(folder, what=what, wait=True, quiet=True)
