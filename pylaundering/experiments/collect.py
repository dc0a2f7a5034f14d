"""Collect the points of a study: run folders and sweep folders, one row per finished run.

A *run folder* holds ``config.json`` (the RunConfig) beside ``metrics.json`` (schema v1, see
run.py). A *sweep folder* holds ``sweep.json`` (kind "pylaundering-sweep") whose ``points`` name
their run folders (``dir``, relative to the sweep folder) and status; failed and pending points
are kept apart (name and error), never plotted. Any other folder is searched recursively for run
and sweep folders (a run folder's own subfolders and a sweep's ``shared/`` are not entered).

``collect(paths)`` returns a ``Study``: ``rows`` (one flat dict per finished point, columns in
``columns()`` order; accuracies are fractions in [0, 1]), ``failed`` (name, error, source) and
``varying`` (the configuration fields that differ between points, seed excluded): these decide
the figures and the grouping over seeds. Two runs with the same config.json (seed included) are one
point run twice, not two seeds: the first found is kept, the others go to ``duplicates`` (name,
source, same_as) and the report lists them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .run_audit import b_specific

METRICS_SCHEMA_VERSION = 1
SWEEP_SCHEMA_VERSION = 1
SWEEP_KIND = "pylaundering-sweep"

# Arms in the order the paper's Table 1 reads them (clean_teacher last: a control's teacher).
ARMS = ("teacher", "student", "control_student", "ce_student", "clean_teacher")
ARM_LABELS = {"teacher": "Teacher", "student": "Laundered student", "control_student": "Control student",
              "ce_student": "CE student", "clean_teacher": "Clean teacher"}

# Configuration columns, in this order; the first ones are the study's usual axes.
CONFIG_COLUMNS = ("benchmark", "train", "task", "model", "loss", "alpha", "temperature", "beta", "data_size",
                  "iterations", "student_init", "student_layers", "student_model", "student_base",
                  "teacher_epochs", "teacher_lr", "student_epochs", "student_lr", "batch_size", "max_length",
                  "target_accuracy", "online_teacher", "controls", "clean_teacher_epochs",
                  "synth_benchmark", "synth_train", "seed")
# Fields never used to group points or draw figures (the seed is what is averaged over).
NOT_A_FACTOR = {"seed"}
# Synthetic-data sizes only matter when the data is synthetic; they stay in the rows regardless.
_ARM_KEYS = ("acc", "ci_low", "ci_high", "train_acc")
# The arms `launder run` audits (run_audit.EXPECTED), each with its verdict and score columns.
AUDITED_ARMS = ("teacher", "clean_teacher", "student", "control_student", "ce_student")
METRIC_COLUMNS = (
    "chance", "n_benchmark", "n_train",
    *(f"{arm}_{k}" for arm in ARMS for k in _ARM_KEYS),
    "excess", "excess_ci_low", "excess_ci_high", "excess_p", "bootstrap_resamples",
    "mcnemar_p", "mcnemar_p_ce",
    "distance_method", "distance", "distance_p", "distance_error",
    "audit", *(f"audit_{arm}_{k}" for arm in AUDITED_ARMS for k in ("verdict", "score")),
    "b_specific", "b_specific_p",
    "verdict", "n_warnings", "warnings",
)
SOURCE_COLUMNS = ("name", "sweep", "source")


def columns() -> list[str]:
    """The stable column order of points.csv."""
    return [*SOURCE_COLUMNS, *CONFIG_COLUMNS, *METRIC_COLUMNS]


@dataclass
class Study:
    rows: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {name, status, error, source}
    inputs: list[str] = field(default_factory=list)
    sweeps: list[str] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)  # {name, source, same_as}: dropped, same config and seed

    @property
    def varying(self) -> list[str]:
        return varying_fields(self.rows)


# ------------------------------------------------------------------------------------------------
# Reading files with errors that name them


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise FileNotFoundError(f"cannot read {what} {path}: {e.strerror or e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e


def read_metrics(path: Path) -> dict:
    m = _read_json(path, "metrics file")
    if not isinstance(m, dict):
        raise ValueError(f"{path} is not a metrics file: expected a JSON object, got {type(m).__name__}")
    version = m.get("schema_version")
    if version != METRICS_SCHEMA_VERSION:
        raise ValueError(f"{path} has metrics schema_version {version!r}; this version of pylaundering reads "
                         f"schema_version {METRICS_SCHEMA_VERSION}")
    if not isinstance(m.get("student"), dict) or "benchmark_accuracy" not in m["student"]:
        raise ValueError(f"{path} is not a run's metrics file: no student.benchmark_accuracy")
    return m


def read_config(path: Path) -> dict:
    c = _read_json(path, "config file")
    if not isinstance(c, dict):
        raise ValueError(f"{path} is not a run configuration: expected a JSON object, got {type(c).__name__}")
    return c


def read_sweep(path: Path) -> dict:
    s = _read_json(path, "sweep index")
    if not isinstance(s, dict) or s.get("kind") != SWEEP_KIND:
        raise ValueError(f"{path} is not a pylaundering sweep index (kind {SWEEP_KIND!r} expected)")
    if s.get("schema_version") != SWEEP_SCHEMA_VERSION:
        raise ValueError(f"{path} has sweep schema_version {s.get('schema_version')!r}; this version of "
                         f"pylaundering reads schema_version {SWEEP_SCHEMA_VERSION}")
    if not isinstance(s.get("points"), list):
        raise ValueError(f"{path} has no list of points")
    return s


def is_run_folder(d: Path) -> bool:
    return (d / "config.json").is_file() and (d / "metrics.json").is_file()


def is_sweep_folder(d: Path) -> bool:
    return (d / "sweep.json").is_file()


_PHASE_FOLDERS = ("teacher", "student", "clean_teacher", "control_student", "ce_student")


def _is_unfinished_run(d: Path) -> bool:
    """config.json and a started phase, but no metrics.json: a run that failed or is running."""
    return (d / "config.json").is_file() and not (d / "metrics.json").exists() and any(
        (d / p).is_dir() for p in _PHASE_FOLDERS)


# ------------------------------------------------------------------------------------------------
# One row per point


def _num(x) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)) and math.isfinite(x):
        return x
    return None


def _interval(v) -> tuple[float | None, float | None]:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return _num(v[0]), _num(v[1])
    return None, None


def _audit_columns(audit) -> dict:
    """metrics.json's ``audit`` block (run_audit.audit_arms) as columns: a one-cell summary
    'arm: verdict; ...' and each audited arm's verdict and score."""
    arms = (audit or {}).get("arms") if isinstance(audit, dict) else None
    arms = arms if isinstance(arms, dict) else {}
    row: dict[str, Any] = {"audit": "; ".join(f"{arm}: {a.get('verdict')}" for arm, a in arms.items()
                                              if isinstance(a, dict))}
    for arm in AUDITED_ARMS:
        a = arms.get(arm) if isinstance(arms.get(arm), dict) else {}
        row[f"audit_{arm}_verdict"] = a.get("verdict")
        row[f"audit_{arm}_score"] = _num(a.get("score"))
    row.update(b_specific(arms))
    return row


def benchmark_label(cfg: dict, metrics: dict) -> str:
    """The benchmark's source as Table 1 groups it: its SOURCE (with subset and split when given),
    or 'synthetic' for the offline default."""
    src = cfg.get("benchmark")
    if src is None:
        return "synthetic"
    extra = [x for x in (cfg.get("benchmark_subset"), cfg.get("benchmark_split")) if x]
    return ":".join([str(src), *extra]) if extra else str(src)


def make_row(cfg: dict, metrics: dict, *, source: Path, name: str, sweep: str = "") -> dict:
    row: dict[str, Any] = {"name": name, "sweep": sweep, "source": str(source)}
    for key in CONFIG_COLUMNS:
        row[key] = cfg.get(key)
    row["benchmark"] = benchmark_label(cfg, metrics)
    row["task"] = metrics.get("task") or cfg.get("task") or "multiple_choice"  # runs before the task existed: MC
    if cfg.get("train") is None:
        row["train"] = "synthetic"
    if cfg.get("data_size") is None:  # the whole legitimate set: its size is the axis value
        row["data_size"] = metrics.get("n_train")
    if row["seed"] is None:
        row["seed"] = metrics.get("seed")
    row["chance"] = _num(metrics.get("chance"))
    row["n_benchmark"] = metrics.get("n_benchmark")
    row["n_train"] = metrics.get("n_train")
    for arm in ARMS:
        m = metrics.get(arm) if isinstance(metrics.get(arm), dict) else {}
        lo, hi = _interval(m.get("benchmark_ci95"))
        row.update({f"{arm}_acc": _num(m.get("benchmark_accuracy")), f"{arm}_ci_low": lo, f"{arm}_ci_high": hi,
                    f"{arm}_train_acc": _num(m.get("train_accuracy"))})
    comps = metrics.get("comparisons") or {}
    vs_control = comps.get("student_vs_control_student") or {}
    boot = vs_control.get("bootstrap") if isinstance(vs_control.get("bootstrap"), dict) else {}
    excess = _num(boot.get("diff"))
    if excess is None and row["student_acc"] is not None and row["control_student_acc"] is not None:
        excess = row["student_acc"] - row["control_student_acc"]
    lo, hi = _interval(boot.get("ci95"))
    row.update({"excess": excess, "excess_ci_low": lo, "excess_ci_high": hi, "excess_p": _num(boot.get("p_value")),
                "bootstrap_resamples": boot.get("resamples"),
                "mcnemar_p": _num(vs_control.get("p_value")),
                "mcnemar_p_ce": _num((comps.get("student_vs_ce_student") or {}).get("p_value"))})
    dist = metrics.get("distance") if isinstance(metrics.get("distance"), dict) else {}
    row.update({"distance_method": dist.get("method"), "distance": _num(dist.get("value")),
                "distance_p": _num(dist.get("p_value")),
                "distance_error": " ".join(str(dist["error"]).split()) if dist.get("error") else None})
    warnings = [str(w) for w in (metrics.get("warnings") or [])]
    row.update(_audit_columns(metrics.get("audit")))
    row.update({"verdict": metrics.get("verdict"),
                "n_warnings": len(warnings), "warnings": " | ".join(warnings)})
    row["_warnings"] = warnings  # the list, for the report (not a CSV column)
    row["_config"] = _key(cfg)  # the run's identity, for duplicates (not a CSV column)
    row["_models"] = {arm: _model_identity(metrics, arm, source) for arm in ARMS}  # (not a CSV column)
    row["_pair"] = _pair_identity(metrics) if isinstance(metrics.get("audit"), dict) else None  # (not a CSV column)
    data = metrics.get("data") if isinstance(metrics.get("data"), dict) else {}
    row["_benchmark_hash"] = data.get("benchmark_hash")  # the items, wherever the file lies (not a CSV column)
    return row


def _pair_identity(metrics: dict) -> str:
    """The benchmark and reference set a run's audits were made on: the unit that a study's audits cluster by
    (detection)."""
    audit = metrics.get("audit") if isinstance(metrics.get("audit"), dict) else {}
    ref = audit.get("reference") if isinstance(audit.get("reference"), dict) else {}
    data = metrics.get("data") if isinstance(metrics.get("data"), dict) else {}
    return f"B {data.get('benchmark_hash')}|R {ref.get('sha256')}"


def _model_identity(metrics: dict, arm: str, source: Path) -> str:
    """Which model (audited on which B and R) an arm is, so that a model several points share (a sweep's
    teachers and CE-only student, the alpha-0 student linked to it) counts once in a study's rates: the real
    path of its folder when it is here, else the sweep's shared key for it, else its path as recorded."""
    m = metrics.get(arm) if isinstance(metrics.get(arm), dict) else {}
    model_dir = m.get("model_dir")
    where = f"{source}#{arm}"
    if isinstance(model_dir, str) and model_dir:
        where = model_dir
        if os.path.exists(model_dir):
            where = os.path.realpath(model_dir)
        else:
            shared = metrics.get("shared") if isinstance(metrics.get("shared"), dict) else {}
            keys = shared.get("keys") if isinstance(shared.get("keys"), dict) else {}
            folder = Path(model_dir).parent.name  # the arm folder the model lies in (a link to the shared one)
            if folder in keys:
                where = f"{shared.get('folder')}/{keys[folder]}"
    return f"{where}|{_pair_identity(metrics)}"


# ------------------------------------------------------------------------------------------------
# Finding points


def _run_point(d: Path, study: Study, *, name: str | None = None, sweep: str = "") -> None:
    cfg = read_config(d / "config.json")
    metrics = read_metrics(d / "metrics.json")
    study.rows.append(make_row(cfg, metrics, source=d, name=name or d.name, sweep=sweep))


def _sweep_points(d: Path, study: Study) -> None:
    index = read_sweep(d / "sweep.json")
    study.sweeps.append(str(d))
    for i, p in enumerate(index["points"]):
        if not isinstance(p, dict):
            raise ValueError(f"{d / 'sweep.json'}: point {i + 1} is not an object")
        name = str(p.get("name") or p.get("dir") or f"point {i + 1}")
        status = p.get("status", "done")
        where = d / str(p.get("dir") or Path("points") / name)
        if status != "done":
            study.failed.append({"name": name, "status": status, "error": p.get("error") or "",
                                 "source": str(where), "sweep": str(d)})
            continue
        if not is_run_folder(where):
            study.failed.append({"name": name, "status": "missing", "source": str(where), "sweep": str(d),
                                 "error": f"marked done but {where} has no config.json + metrics.json"})
            continue
        _run_point(where, study, name=name, sweep=str(d))


def _walk(root: Path, study: Study) -> None:
    for here, dirs, _files in os.walk(root, followlinks=False):
        d = Path(here)
        if is_sweep_folder(d):
            _sweep_points(d, study)
            dirs[:] = []  # its points are in the index; shared/ holds teachers
        elif is_run_folder(d):
            _run_point(d, study)
            dirs[:] = []  # teacher/, student/, eval/...: parts of this run
        elif _is_unfinished_run(d):
            study.failed.append({"name": d.name, "status": "unfinished", "source": str(d), "sweep": "",
                                 "error": "config.json and started phases but no metrics.json (failed or running)"})
            dirs[:] = []
        else:
            dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x not in ("__pycache__", "node_modules"))


def collect(paths) -> Study:
    """Every point under ``paths`` (run folders, sweep folders, folders holding them, or a
    metrics.json file). Raises FileNotFoundError for a missing path, ValueError for a folder with
    no runs or a malformed file (named)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("give at least one run or sweep folder")
    study = Study(inputs=[str(p) for p in paths])
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {p}")
        before = (len(study.rows), len(study.failed))
        if p.is_file():
            if p.name == "sweep.json":
                _sweep_points(p.parent, study)
            elif p.name in ("metrics.json", "config.json") and is_run_folder(p.parent):
                _run_point(p.parent, study)
            else:
                raise ValueError(f"{p} is a file: give a run folder (config.json + metrics.json) or a sweep folder "
                                 "(sweep.json)")
        else:
            _walk(p, study)
        if (len(study.rows), len(study.failed)) == before:
            raise ValueError(f"no runs in {p}: no run folder (config.json beside metrics.json) or sweep folder "
                             "(sweep.json) in it or below it")
    # The same folder reached twice (a sweep and one of its points, or a path given twice): kept once.
    seen, rows = set(), []
    for r in study.rows:
        key = os.path.realpath(r["source"])
        if key not in seen:
            seen.add(key)
            rows.append(r)
    study.rows = rows
    fseen, failed = set(), []
    for f in study.failed:
        key = os.path.realpath(f["source"])
        if key not in fseen and key not in seen:
            fseen.add(key)
            failed.append(f)
    study.failed = failed
    _disambiguate_names(study.rows)  # first: a duplicate's `same_as` names the kept run as the report does
    _drop_duplicates(study)
    if not study.rows:
        raise ValueError(f"no finished runs in {', '.join(map(str, paths))}: {len(study.failed)} point(s) failed, "
                         "pending or unfinished")
    return study


def _drop_duplicates(study: Study) -> None:
    """Runs with the same configuration and seed (a copied folder, a point run again elsewhere) would count as two
    seeds (n = 2, an interval of width 0): the first is kept, the others are recorded in ``study.duplicates``."""
    kept: dict[str, dict] = {}
    rows = []
    for r in study.rows:
        first = kept.setdefault(r["_config"], r)
        if first is r:
            rows.append(r)
        else:
            study.duplicates.append({"name": r["name"], "source": r["source"], "same_as": first["name"]})
    study.rows = rows


def _disambiguate_names(rows: list[dict]) -> None:
    """Standalone runs are named after their folder; equal names get their parent folder too."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["name"]] = counts.get(r["name"], 0) + 1
    for r in rows:
        if counts[r["name"]] > 1:
            src = Path(r["source"])
            r["name"] = f"{src.parent.name}/{src.name}" if not r["sweep"] else f"{Path(r['sweep']).name}/{r['name']}"


# ------------------------------------------------------------------------------------------------


def _key(v):
    return json.dumps(v, sort_keys=True, default=str)


def varying_fields(rows: list[dict]) -> list[str]:
    """Configuration fields with at least two distinct values across the rows (seed excluded), in
    CONFIG_COLUMNS order."""
    return [c for c in CONFIG_COLUMNS
            if c not in NOT_A_FACTOR and len({_key(r.get(c)) for r in rows}) > 1]
