"""`launder run`: placement -> layering -> integration, plus the two controls that make the
result interpretable, in one run folder.

Arms (all students share architecture, initialisation, data and schedule):
  teacher          fine-tuned on the benchmark (contaminated)
  student          distilled from the teacher on the legitimate set only
  clean_teacher    fine-tuned on the legitimate set only, with the teacher's budget (control_budget)
  control_student  distilled, identically, from the clean teacher
  ce_student       trained with cross-entropy alone on the legitimate set (no teacher)
If the student beats both controls on the benchmark, benchmark knowledge crossed over through
the teacher's soft outputs: that is data laundering (unless the legitimate set itself holds
benchmark items: see ``data.overlap`` and ``verdict``).

Order: the whole configuration is checked, the data loaded and the models' configs read before
the run folder is created or anything is trained, so a bad value fails in seconds and leaves
nothing behind.

Run folder (``metrics.json`` is the stable, machine-readable result):
  config.json  environment.json  metrics.json  report.md  accuracy.png
  data/  teacher/  student/  clean_teacher/  control_student/  ce_student/  eval/<arm>/  audit/<arm>/  cache/
A folder "holds a run" once a phase has started in it (a ``*/phase.json``); a folder with only a
``config.json`` left by a run that failed before training is reused.

Resume (``--resume``): the configuration must equal ``config.json`` (else refused, naming the
changed keys); each phase is reused only when its recorded parameters and data hashes match
(``phases/common.py``); ``environment.json`` keeps the first run's environment and appends one
entry per resume to its ``resumes`` list (``at``: UTC time, ``environment``).

metrics.json, schema_version 1. Keys (those added since the first version are marked +):
  schema_version, chance, n_benchmark, n_train, seed
  teacher, student, clean_teacher, control_student, ce_student: per arm benchmark_accuracy,
      benchmark_ci95 [low, high] (Wilson), benchmark_correct, train_accuracy, per_subject, model_dir,
      + training {steps, epochs_run, stop_reason ("target_accuracy" | "max_steps" | "epochs"),
                  last_epoch_train_accuracy, target_accuracy, reached_target}   (the two teachers)
  comparisons: student_vs_control_student, student_vs_ce_student (exact McNemar: a_only, b_only, p_value;
      + bootstrap: stats.paired_bootstrap of the student's accuracy minus the other's, 10,000 paired
        resamples: diff, ci95, p_value (one-sided, the counter-study's test), resamples)
  + distance: distance.dataset_distance(teacher base, benchmark, legitimate set): method, value
      (MMD^2), p_value (permutation), bandwidth, n_benchmark, n_train, ...; {"error": ...} if it failed
  + audit: run_audit.audit_arms: reference {source, n, sha256}, method, arms {arm: kind, verdict,
      expected, correct, score, core_p, accuracy_benchmark, accuracy_reference, comparable, control_p, reasons,
      file}};
      {arms: {}, skipped: why} without a reference set (real data without --reference) or with --no-audit
  + shared {folder, keys}: in a sweep point, where its shared phases live (sharing.py)
  + runtime: device.Runtime.describe(): device, name, memory_gib, precision, loss_backend, loss_backend_reason,
      deterministic (+ cublas_workspace_config); as environment.json's runtime
  data: benchmark, benchmark_format, benchmark_hash, benchmark_skipped, train, train_format,
      train_hash, train_skipped,
      + benchmark_subset, benchmark_split, train_subset, train_split,
      + truncation {benchmark, train}: TruncationStats.to_dict() at the run's max_length with the
        teacher's tokenizer (max_length, examples, sequences, truncated_sequences, ...),
      + overlap: find_overlap(benchmark, train) (method, exact_duplicates, question_duplicates,
        benchmark_items, rate, examples)
      + label_set {names, count, source}: a classification run's one label set (every head has one output per
        name, every set is remapped into it by name: run_data.with_labels); null for multiple choice
      + label_conventions {benchmark, train[, reference]}: how each source wrote its answers ("0-based class
        ids (...)", "answer letters", "label names", ...)
  + max_length {value, chosen: "auto" | "config", coverage, covers: "each dataset" (auto; older runs: the pool)}
  + control_budget {rule, why, teacher_steps, clean_teacher_steps, ...}
  + verdict: "laundering_detected" | "no_clear_effect" | "no_controls" | "train_contains_benchmark_items"
  + verdict_text: the verdict in one sentence (as in report.md)
  + warnings: list of sentences (teacher stopped short of its target, truncation, overlap, a model giving one
      class or choice to nearly every benchmark item, alpha 0's one student standing for three arms)
  checkpoint_selection, teacher_logits, timings_s
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path

from ..data.schema import examples_hash
from ..device import Runtime, runtime
from ..errors import ConfigError, ModelError, ResumeMismatch
from ..models.loading import BUILT_FROM_DATA
from ..phases import DistillSpec, IntegrationSpec, LayeringSpec, PlacementSpec, StudentSpec, integrate, layer, place
from ..phases.common import (
    MAX_LENGTH_COVERAGE,
    check_outputs,
    check_student,
    choose_length,
    differences,
    mismatch_line,
    remove,
    resolve_base,
)
from ..progress import console
from ..stats import chance_level, mcnemar_exact, paired_bootstrap
from ..train.checkpoint import read_json, write_json
from .config import RUNTIME_FIELDS, RunConfig, resolve_defaults, validate
from .environment import environment, record_environment  # noqa: F401 - environment re-exported
from .report import verdict as verdict_of
from .report import write_report
from .run_data import (  # noqa: F401 - Loaded, load_source and run_task re-exported: the run's data, one place
    Loaded,
    in_label_set,
    label_set,
    load_data,
    load_reference,
    load_source,
    overlap,
    run_task,
    with_labels,
)
from .sharing import link, link_shared, shared_lock

METRICS_SCHEMA_VERSION = 1
ARMS = ("teacher", "student", "control_student", "ce_student")
PHASE_FOLDERS = ("teacher", "student", "clean_teacher", "control_student", "ce_student")

CONTROL_BUDGET_WHY = (
    "The clean teacher gets the contaminated teacher's optimisation budget: as many optimiser steps as "
    "the contaminated teacher actually took (same batch size, peak learning rate and schedule shape), "
    "with the same stop at the target training accuracy. Equal steps, not equal epochs: the legitimate "
    "set is usually larger than the benchmark, and an epoch cap with a stop at target accuracy never "
    "binds on data a teacher cannot fit (the synthetic legitimate labels are random), so it would cost "
    "teacher_epochs full passes; the step budget is bounded by the teacher's own training and gives the "
    "control the same amount of fine-tuning, so a stronger student is not explained by a weaker control."
)


# ------------------------------------------------------------------------------------------------
# Checks before anything is written


def preflight(cfg: RunConfig) -> tuple[Loaded, Loaded]:
    """Everything that can fail before training, checked before the run folder is touched:
    the configuration, the data (loaded whole), and the models (configs read, student buildable)."""
    validate(cfg)
    bench, train = load_data(cfg, None)
    if not bench.examples:
        raise ValueError(f"the benchmark {bench.source} has no examples")
    if not train.examples:
        raise ValueError(f"the training set {train.source} has no examples")
    task = run_task(cfg, bench)
    bench, train, reference = with_labels(cfg, task, bench, train, load_reference(cfg, None))
    if reference is not None:
        from ..audit.evidence import check_sets

        check_sets(bench.examples, reference.examples)  # empty, other choice counts or overlapping: refused now
    if cfg.data_size is not None and cfg.data_size > len(train.examples):
        raise ConfigError("data_size", f"{cfg.data_size} is larger than the training set ({len(train.examples)} "
                          "examples); omit it to use them all")
    student_base = cfg.student_base or cfg.model
    if cfg.student_init == "pretrained":
        check_student(student_base, student_layers=None, student_init="pretrained", student_model=cfg.student_model)
    elif not check_built_student(student_base, cfg.student_layers):
        from ..models import resolve_model

        check_student(resolve_model(student_base), student_layers=cfg.student_layers, student_init=cfg.student_init,
                      student_model=None)
    if cfg.model not in BUILT_FROM_DATA and cfg.model != student_base:
        from ..models import resolve_model
        from ..phases.common import base_layers

        base_layers(resolve_model(cfg.model))  # the teacher base loads
    for name in {cfg.model, cfg.student_model if cfg.student_init == "pretrained" else student_base}:
        check_head(name, task)
    return bench, train


def check_built_student(base: str, student_layers: int) -> bool:
    """For a base built from the data (tiny, tiny-gpt): the student's layers within it, checked before the base
    is built (ConfigError). False for any other base (``check_student`` reads its config)."""
    if base not in BUILT_FROM_DATA:
        return False
    if student_layers > BUILT_FROM_DATA[base]:
        raise ConfigError("student_layers", f"{student_layers} is more than the {BUILT_FROM_DATA[base]} layers "
                          f"of the base model {base}")
    return True


def check_head(name: str, task: str) -> None:
    """A model the run can score: built from the data, a causal LM (scored per choice), or an encoder whose type
    transformers gives the task's head (ModelError otherwise, before the run folder is written)."""
    if name in BUILT_FROM_DATA:
        return
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    from ..models import resolve_model
    from ..models.decoder import is_decoder_config

    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"model {name}: cannot read its config ({' '.join(str(e).split())[:200]})") from None
    heads = (MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES if task == "classification"
             else MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES)
    if not is_decoder_config(config) and config.model_type not in heads:
        kind = "sequence-classification" if task == "classification" else "multiple-choice"
        raise ModelError(f"model {name}: a {config.model_type!r} model has no {kind} head in transformers and is "
                         "not a causal LM; give an encoder (BERT-like) or a decoder (GPT-like)")


def holds_run(out: Path) -> bool:
    """True once a phase has started in ``out`` (a run folder with only config.json is free)."""
    return (out / "config.json").exists() and any(
        (out / name / marker).exists() for name in PHASE_FOLDERS for marker in ("phase.json", "metrics.json"))


# ------------------------------------------------------------------------------------------------


#: What a run writes into its folder: ``--overwrite`` removes these (links, never what they point at), and
#: nothing else the folder holds.
RUN_OUTPUTS = ("config.json", "environment.json", "metrics.json", "report.md", "accuracy.png", "data",
               *PHASE_FOLDERS, "eval", "audit", "cache", "base-tiny", "base-tiny-gpt")


def clear_run(out: Path, inputs: list[Path] | tuple = ()) -> None:
    """Removes what an earlier run wrote into ``out`` (``RUN_OUTPUTS``), refusing (FileExistsError) when
    that would remove one of ``inputs``."""
    remove(check_outputs([out / name for name in RUN_OUTPUTS], overwrite=True, inputs=inputs))


def _check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    if holds_run(out) and not resume and not overwrite:
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it or --overwrite to replace "
                              "it")


def _inputs(cfg: RunConfig) -> list[Path]:
    return [Path(s) for s in (cfg.benchmark, cfg.train, cfg.reference) if s is not None and Path(s).exists()]


def run_experiment(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                   quiet: bool = False, shared: str | Path | None = None) -> dict:
    """Runs every arm into ``out_dir``; returns metrics.json's content. ``shared``: a folder where
    the teachers, the CE-only student, the tiny base and the logit cache live, keyed by the fields
    they depend on, so that the points of a sweep share them (``sharing.py``).

    A folder that holds a run is refused unless ``resume`` (continue it) or ``overwrite`` (remove what it
    wrote, then run afresh). ``out_dir`` is locked from the end of the checks to the end of the run
    (``pylaundering.lock``): a second process is refused, naming the holder. In a sweep (``shared``), a
    phase whose shared folder another point holds is waited for. ``cfg.device`` and ``cfg.precision`` are
    resolved first: a device this machine lacks is a ConfigError before anything is written."""
    from ..lock import check_free, locked, waiting
    from ..train.distributed import use_device

    out = Path(out_dir)
    resolve_defaults(cfg)
    if resume and overwrite:
        raise ConfigError("overwrite", "give --resume (continue the run) or --overwrite (replace it), not both")
    rt = runtime(cfg.device, cfg.precision, cfg.deterministic)
    use_device(rt.device)
    check_free(out, "run")
    _check_run_folder(out, resume, overwrite)
    if resume and (out / "config.json").exists():
        # a setting added by a later version takes its default in an older config.json; where the run executes
        # (RUNTIME_FIELDS) may change: a run resumes on another device
        previous = {**RunConfig().to_dict(), **read_json(out / "config.json")}
        now = cfg.to_dict()
        if differences({k: v for k, v in previous.items() if k not in RUNTIME_FIELDS},
                       {k: v for k, v in now.items() if k not in RUNTIME_FIELDS}):
            raise ResumeMismatch(mismatch_line(f"the run in {out}", previous, now))
    timings: dict[str, float] = {}

    def phase(name: str, fn):
        if not quiet:
            console.print(f"[bold cyan]==> {name}")
        t0 = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        return result

    bench_res, train_res = phase("checks: configuration, data and models", lambda: preflight(cfg))
    task = run_task(cfg, bench_res)
    with locked(out, what="run", wait=False), (waiting() if shared is not None else contextlib.nullcontext()):
        _check_run_folder(out, resume, overwrite)  # again, under the lock: another process may have run meanwhile
        if overwrite:
            clear_run(out, _inputs(cfg))
        return _run_arms(cfg, out, resume, quiet, shared, phase, timings, bench_res, train_res, task, rt)


def _run_arms(cfg: RunConfig, out: Path, resume: bool, quiet: bool, shared, phase, timings: dict, bench_res: Loaded,
              train_res: Loaded, task: str, rt: Runtime = Runtime()) -> dict:
    """The run after its checks, under the run folder's lock: data, every arm, scores, audit, metrics."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(cfg.to_dict(), out / "config.json")
    record_environment(out, rt)
    shared_keys = link_shared(cfg, out, Path(shared)) if shared is not None else None
    if cfg.benchmark is None:  # the synthetic default: its files go into the run folder
        bench_res, train_res, _ = with_labels(cfg, task, *load_data(cfg, out))
    bench, train = bench_res.examples, train_res.examples
    data_overlap = overlap(bench, train)
    if data_overlap.get("exact_duplicates", 0) > 0:
        console.print(f"[bold yellow]warning:[/bold yellow] the training set holds {data_overlap['exact_duplicates']} "
                      "exact copies of benchmark items: the student sees benchmark items, so this run cannot show "
                      "laundering", highlight=False)
    # One base for every arm: `tiny` is built once, with a tokenizer that has seen all the run's texts.
    base_home = out if shared_keys is None else Path(shared) / shared_keys["base"]
    with contextlib.nullcontext() if shared_keys is None else shared_lock(base_home, "shared base"):
        model = resolve_base(cfg.model, list(bench) + list(train), base_home, cfg.seed)
    max_length, truncation = _max_length_and_truncation(cfg, model, bench, train, task)
    token = cfg.level == "token"
    # token level: each phase fits its own texts (items written out are longer than question + choice)
    length = cfg.max_length if token else max_length
    teacher_spec = placement_spec(cfg, model, task, length)
    student_spec = layering_spec(cfg, model if cfg.student_base is None else cfg.student_base, task, length)
    run = dict(resume=resume, quiet=quiet, device=rt)
    layer_run = dict(cache_dir=out / "cache", **run)

    train_metrics: dict[str, dict] = {}
    train_metrics["teacher"] = phase("placement: teacher on the benchmark", lambda: place(
        bench, out / "teacher", teacher_spec, description="teacher", **run))
    ce_spec = replace(student_spec, distill=replace(student_spec.distill, alpha=0.0))
    # alpha 0: no teacher signal reaches a student, so the student, the control student and the CE-only student are
    # one training (same resume record, layering_params): trained once, the other two folders link to it
    one_student = cfg.controls and student_spec.distill.alpha == 0 and not any(
        (out / arm).exists() and not (out / arm).is_symlink() for arm in ("student", "control_student"))
    if one_student:
        train_metrics["ce_student"] = phase("control: cross-entropy-only student", lambda: layer(
            None, train, out / "ce_student", ce_spec, description="CE student", **layer_run))
        for arm in ("student", "control_student"):
            link(out / arm, out / "ce_student")
    train_metrics["student"] = phase("layering: student from the teacher", lambda: layer(
        train_metrics["teacher"]["model_dir"], train, out / "student", student_spec, description="student",
        **{**layer_run, "resume": resume or one_student}))
    budget = None
    if cfg.controls:
        budget = control_budget(cfg, train_metrics["teacher"])
        clean_spec = replace(teacher_spec, **budget["place_kwargs"])
        train_metrics["clean_teacher"] = phase("control: clean teacher on the legitimate set", lambda: place(
            train, out / "clean_teacher", clean_spec, description="clean teacher", **run))
        budget["clean_teacher_steps"] = train_metrics["clean_teacher"].get("steps")
        budget["clean_teacher_epochs_run"] = train_metrics["clean_teacher"].get("epochs_run")
        budget["clean_teacher_stop_reason"] = train_metrics["clean_teacher"].get("stop_reason")
        train_metrics["control_student"] = phase("control: student from the clean teacher", lambda: layer(
            train_metrics["clean_teacher"]["model_dir"], train, out / "control_student", student_spec,
            description="control student", **{**layer_run, "resume": resume or one_student}))
        if not one_student:
            train_metrics["ce_student"] = phase("control: cross-entropy-only student", lambda: layer(
                None, train, out / "ce_student", ce_spec, description="CE student", **layer_run))

    train_metrics = {arm: train_metrics[arm] for arm in ("teacher", *PHASE_FOLDERS) if arm in train_metrics}
    distance = phase("distance: legitimate set vs benchmark", lambda: _distance(model, bench, train, cfg.seed,
                                                                               out / "cache", rt.device))
    evals = {}
    for arm, m in train_metrics.items():
        evals[arm] = phase(f"integration: {arm}", lambda m=m, arm=arm: integrate(
            m["model_dir"], bench, out / "eval" / arm, IntegrationSpec(max_length=length), quiet=quiet,
            description=f"score {arm}", overwrite=True, device=rt, cache_dir=out / "cache"))
    # the run's score files are rewritten on every (re)run; the logits come from the cache when the same model was
    # scored on the same items before (a sweep's shared arms, the one student of alpha 0)

    reference = in_label_set(load_reference(cfg, out), bench_res.label_names)  # the set preflight formed with it
    audit = None
    if reference is not None:
        from .run_audit import audit_arms

        audit = phase("audit: every model against the reference set", lambda: audit_arms(
            {arm: m["model_dir"] for arm, m in train_metrics.items()}, bench, reference.examples, reference.source,
            out, max_length=length, quiet=quiet, device=rt))
    metrics = build_metrics(cfg, bench, train, bench_res, train_res, train_metrics, evals, timings,
                            max_length=max_length, truncation=truncation, overlap=data_overlap, budget=budget,
                            distance=distance)
    metrics["task"] = task
    metrics["level"] = cfg.level
    if one_student:
        metrics["warnings"].append("alpha 0: no teacher signal reaches a student, so the student and the control "
                                   "student are the cross-entropy-only student (trained once; their folders link to "
                                   "ce_student)")
    if reference is not None:
        metrics["data"]["label_conventions"]["reference"] = reference.label_convention
    if token:  # each phase chose its own text length: what it cut, per model
        metrics["data"]["text_truncation"] = {arm: m["truncation"] for arm, m in train_metrics.items()
                                              if "truncation" in m}
    metrics["audit"] = audit if audit is not None else {"arms": {}, "skipped": (
        "--no-audit" if not cfg.audit else "no reference set: pass --reference SOURCE (e.g. the held-back half of "
        "`launder data split`) to audit every model of the run")}
    if audit is not None:
        from .run_audit import audit_warnings

        metrics["warnings"] += audit_warnings(audit)
    if shared_keys is not None:
        metrics["shared"] = {"folder": str(shared), "keys": shared_keys}
    metrics["runtime"] = rt.describe()
    write_json(metrics, out / "metrics.json")
    write_report(metrics, out)
    return metrics


def placement_spec(cfg: RunConfig, model: str, task: str, max_length: int | None) -> PlacementSpec:
    """The contaminated teacher's settings (the clean teacher's too, with the control budget)."""
    return PlacementSpec(model=model, epochs=cfg.teacher.epochs, lr=cfg.teacher.lr, batch_size=cfg.models.batch_size,
                         max_length=max_length, target_accuracy=cfg.teacher.target_accuracy, seed=cfg.seed, task=task,
                         scorer=cfg.models.scorer, level=cfg.models.level)


def layering_spec(cfg: RunConfig, base: str, task: str, max_length: int | None) -> LayeringSpec:
    """Every student's settings (the CE-only student's with alpha = 0)."""
    lay, st = cfg.layering, cfg.student
    return LayeringSpec(distill=DistillSpec(lay.loss, lay.alpha, lay.temperature, lay.beta),
                        student=StudentSpec(base, st.layers, st.init, st.model, cfg.models.scorer),
                        data_size=lay.data_size, epochs=lay.epochs, iterations=lay.iterations, lr=lay.lr,
                        batch_size=cfg.models.batch_size, max_length=max_length, online_teacher=lay.online_teacher,
                        seed=cfg.seed, task=task, level=cfg.models.level, teacher_topk=lay.teacher_topk)


def _distance(model: str, bench, train, seed: int, cache_dir: Path, device: str = "cpu") -> dict:
    """``distance.dataset_distance`` with the teacher's base, on the run's device; a failure is recorded, not
    fatal."""
    from .distance import dataset_distance

    try:
        return dataset_distance(model, bench, train, seed=seed, cache_dir=cache_dir, device=device)
    except (ValueError, OSError, RuntimeError) as e:
        return {"method": None, "value": None, "p_value": None, "error": " ".join(str(e).split())}


def control_budget(cfg: RunConfig, teacher: dict) -> dict:
    """The clean teacher's budget (see CONTROL_BUDGET_WHY); ``place_kwargs`` replace fields of the teacher's
    PlacementSpec."""
    if cfg.clean_teacher_epochs is not None:
        return {"rule": "epochs", "why": "clean_teacher_epochs was set explicitly: a fixed epoch count (with the "
                "same stop at target accuracy), not the contaminated teacher's budget; an ablation, not a fair "
                "control", "clean_teacher_epochs": cfg.clean_teacher_epochs, "teacher_steps": teacher.get("steps"),
                "place_kwargs": {"epochs": cfg.clean_teacher_epochs}}
    return {"rule": "same_steps", "why": CONTROL_BUDGET_WHY, "teacher_steps": teacher["steps"],
            "teacher_epochs_run": teacher.get("epochs_run"), "teacher_stop_reason": teacher.get("stop_reason"),
            "place_kwargs": {"epochs": None, "max_steps": teacher["steps"]}}


def _max_length_and_truncation(cfg: RunConfig, model: str, bench, train,
                               task: str = "multiple_choice") -> tuple[dict, dict]:
    """The run's max_length (when not configured: the longest that each dataset, benchmark and training
    data alike, needs for MAX_LENGTH_COVERAGE of its sequences, with the teacher's tokenizer) and the
    truncation it causes on each dataset."""
    from ..data.batching import encode_examples
    from ..models import load_tokenizer
    from ..models.loading import is_decoder

    tok = load_tokenizer(model)
    causal = task == "multiple_choice" and is_decoder(model)
    if cfg.max_length is None:
        # per dataset, not pooled: a short benchmark with long passages (RACE) beside thousands of short
        # training items would otherwise fall outside the pooled coverage and lose most of its passages
        value = max(choose_length(list(d), tok, model, task) for d in (bench, train))  # an empty set gives 8
        info = {"value": value, "chosen": "auto", "coverage": MAX_LENGTH_COVERAGE, "covers": "each dataset"}
    else:
        info = {"value": cfg.max_length, "chosen": "config", "coverage": None}
    truncation = {}
    for name, examples in (("benchmark", bench), ("train", train)):
        stats = getattr(encode_examples(examples, tok, max_length=info["value"], task=task, causal=causal),
                        "truncation", None)
        if stats is not None:
            truncation[name] = stats.to_dict()
    return info["value"], {"max_length": info, "truncation": truncation}


def _training(m: dict) -> dict:
    history = m.get("history") or [{}]
    return {"steps": m.get("steps"), "epochs_run": m.get("epochs_run"), "stop_reason": m.get("stop_reason"),
            "last_epoch_train_accuracy": history[-1].get("train_accuracy"),
            "target_accuracy": m.get("target_accuracy"), "reached_target": m.get("reached_target")}


def teacher_warnings(name: str, m: dict) -> list[str]:
    """A teacher that ended short of its target: judged on its training accuracy after training
    (evaluation mode), the accuracy that says whether it learnt its data."""
    t = _training(m)
    final = m.get("train_accuracy")
    if t["target_accuracy"] is None or t["stop_reason"] == "target_accuracy" or final is None:
        return []
    if final >= t["target_accuracy"]:
        return []
    cap = {"epochs": "epoch cap", "max_steps": "step budget"}.get(t["stop_reason"], t["stop_reason"])
    epochs = t["epochs_run"]
    return [f"{name} stopped at {cap} at {100 * final:.1f}% < target {100 * t['target_accuracy']:.0f}% "
            f"(training accuracy after {epochs} epoch{'s' if epochs != 1 else ''} / {t['steps']} steps)"]


#: Fewer distillation steps than this on given data get a warning: on real data 94-step students showed nothing
#: where 375-376-step ones did (SST-2, OpenBookQA; docs/real-data.md)
MIN_STUDENT_STEPS = 200


def short_student_warnings(cfg, student: dict) -> list[str]:
    """A warning when the student's distillation was short enough to hide an effect that exists; not on the
    synthetic default, whose items are built to be learnt in few steps."""
    steps = sum(r.get("steps") or 0 for r in student.get("rounds") or [])
    if cfg.benchmark is None or not steps or steps >= MIN_STUDENT_STEPS:
        return []
    return [f"the student trained for only {steps} optimiser steps (< {MIN_STUDENT_STEPS}): on real data students "
            "this short showed no effect where the same pair at 375 steps did (docs/real-data.md); raise "
            "student_epochs or data_size before reading 'no effect' here"]


#: A model giving one prediction to at least this share of the benchmark has learnt no usable rule
COLLAPSE_SHARE = 0.95


def collapse_warnings(evals: dict, bench) -> list[str]:
    """A warning per arm that gives one class (or choice position) to nearly every benchmark item while the labels
    are not that one-sided: a student stopped before it learnt anything looks like a "no effect" result (on SST-2 at
    500 legitimate items, every student of a seed gave "negative" to all items: 49% against the control's 51%)."""
    if not bench:
        return []
    counts: dict = {}
    for e in bench:
        counts[e.label] = counts.get(e.label, 0) + 1
    majority = max(counts.values()) / len(bench)
    out = []
    for arm, e in evals.items():
        top = e.get("top_prediction")
        if not top or top["share"] < COLLAPSE_SHARE or majority >= COLLAPSE_SHARE:
            continue
        what = f"class {top['name']!r}" if "name" in top else f"choice {top['prediction']}"
        how = "teacher_epochs or teacher_lr" if "teacher" in arm else "student_epochs, student_lr or data_size"
        out.append(f"the {arm.replace('_', ' ')} gives {what} for {100 * top['share']:.0f}% of the benchmark items "
                   f"(the commonest label is {100 * majority:.0f}% of them): it learnt no usable rule, so comparisons "
                   f"with it say little; train it longer ({how})")
    return out


def build_metrics(cfg, bench, train, bench_res, train_res, train_metrics, evals, timings, *, max_length=None,
                  truncation=None, overlap=None, budget=None, distance=None) -> dict:
    arms = {}
    for arm, e in evals.items():
        arms[arm] = {"benchmark_accuracy": e["accuracy"], "benchmark_ci95": e["ci95"],
                     "benchmark_correct": e["correct"], "train_accuracy": train_metrics[arm]["train_accuracy"],
                     "per_subject": e["per_subject"], "model_dir": train_metrics[arm]["model_dir"]}
        if train_metrics[arm].get("phase") == "placement":
            arms[arm]["training"] = _training(train_metrics[arm])
    comparisons = {}
    for other in ("control_student", "ce_student"):
        if other in evals:
            a, b = evals["student"]["correct_mask"], evals[other]["correct_mask"]
            comparisons[f"student_vs_{other}"] = {**mcnemar_exact(a, b),
                                                  "bootstrap": paired_bootstrap(a, b, resamples=10000, seed=cfg.seed)}
    layering_timings = train_metrics["student"].get("timings", {})
    truncation = truncation or {}
    warnings = teacher_warnings("teacher", train_metrics["teacher"])
    if "clean_teacher" in train_metrics:
        clean = teacher_warnings("clean teacher", train_metrics["clean_teacher"])
        if clean and cfg.benchmark is None:  # the offline default: its legitimate labels are random
            clean = [w + "; expected on the synthetic default, whose legitimate labels are random" for w in clean]
        warnings += clean
    warnings += collapse_warnings(evals, bench)
    warnings += short_student_warnings(cfg, train_metrics["student"])
    for name, t in truncation.get("truncation", {}).items():
        if t.get("truncated_sequences"):
            warnings.append(f"{t['truncated_sequences']} of {t['sequences']} {name} sequences "
                            f"({t.get('examples_truncated', '?')} examples) were truncated to {t['max_length']} "
                            "tokens")
    if overlap and overlap.get("exact_duplicates", 0) > 0:
        warnings.insert(0, f"the training set holds {overlap['exact_duplicates']} exact copies of benchmark items: "
                           "the student saw benchmark items")
    metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "chance": chance_level([len(e.choices) for e in bench]),
        "n_benchmark": len(bench), "n_train": len(train),
        "data": {"benchmark": bench_res.source, "benchmark_format": bench_res.format,
                 "benchmark_subset": bench_res.subset, "benchmark_split": bench_res.split,
                 "benchmark_hash": examples_hash(bench), "benchmark_skipped": bench_res.skipped,
                 "train": train_res.source, "train_format": train_res.format,
                 "train_subset": train_res.subset, "train_split": train_res.split,
                 "train_hash": examples_hash(train), "train_skipped": train_res.skipped,
                 "truncation": truncation.get("truncation", {}), "overlap": overlap,
                 "label_set": label_set(bench_res),
                 "label_conventions": {"benchmark": bench_res.label_convention, "train": train_res.label_convention}},
        **arms,
        "comparisons": comparisons,
        "max_length": truncation.get("max_length", {"value": max_length}),
        "distance": distance,
        "control_budget": None if budget is None else {k: v for k, v in budget.items() if k != "place_kwargs"},
        "warnings": warnings,
        "checkpoint_selection": "none: every model is scored after its last epoch (no selection on the benchmark)",
        "teacher_logits": train_metrics["student"]["rounds"][0]["teacher_logits"],
        "timings_s": {**timings, "student_teacher_logits": layering_timings.get("teacher_logits_s"),
                      "student_train": layering_timings.get("train_s")},
        "seed": cfg.seed,
    }
    metrics["verdict"], metrics["verdict_text"] = verdict_of(metrics)
    return metrics
