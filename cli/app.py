"""`launder`: reproduce, measure and detect data laundering.

Thin by design: parse flags, call pylaundering, print, and map errors to exit codes:
  0  success
  1  failure: one line on stderr (`launder --debug ...` shows the traceback): missing or malformed
     data, a model that cannot be loaded, --resume with different settings, out of memory, ...
  2  usage error: an unknown flag, or a value that is wrong in itself (wrong type, out of range,
     unknown choice, an inconsistent combination), whether it came from a flag or a --config file
     and whichever command received it
  3  `launder audit ... --fail-on LEVEL`: the verdict reached LEVEL (for evaluation pipelines' CI)
  130 interrupted (Ctrl-C / SIGTERM), with a checkpoint left behind for --resume
Under --json, stdout holds only the JSON result (anything else printed meanwhile, by us or by a
library, goes to stderr).
New subcommands are new functions on `app` (or a sub-app added with `app.add_typer`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from pylaundering.cli.common import (  # noqa: F401 - the shared options and helpers the commands use
    AsJson,
    BatchSize,
    BenchFormat,
    BenchSplit,
    BenchSubset,
    Deterministic,
    Device,
    Labels,
    Level,
    MaxLength,
    Overwrite,
    Precision,
    Quiet,
    ReferenceFormat,
    Resume,
    ScoreBatchSize,
    Scorer,
    Seed,
    SkipMalformed,
    TrainFormat,
    TrainSplit,
    TrainSubset,
    accuracy_table,
    batch_size_option,
    beta_option,
    check_labels,
    check_out_dir,
    check_scorer,
    check_task,
    device_option,
    emit,
    err_console,
    handle_errors,
    json_option,
    level_option,
    load_counted,
    loss_option,
    max_length_option,
    out_console,
    parse_target,
    precision_option,
    resolve_runtime,
    scorer_option,
    seed_option,
    set_debug,
    skip_malformed_option,
    temperature_option,
)
from pylaundering.cli.common import load as load_source
from pylaundering.train import DEFAULT_TARGET_ACCURACY

app = typer.Typer(
    name="launder",
    help="Reproduce, measure and detect data laundering: benchmark knowledge passed into a model through "
    "knowledge distillation (Mansurov et al., arXiv 2412.15255). Phases: place (contaminate a teacher), "
    "layer (distill a student on legitimate data), integrate (score it on the benchmark); run does all three "
    "plus controls and an audit of every model. Studies: sweep (many runs, shared teachers), report (tables and "
    "figures). Detection: scan (direct contamination), audit (laundering, from the model alone). Exit codes: "
    "0 success, 1 failure (one line; --debug shows the traceback), 2 usage error "
    "(unknown flag or bad value, from a flag or a config file), 3 audit verdict at or above --fail-on, 130 "
    "interrupted.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Create and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="On failure, print the full traceback (also: "
                               "PYLAUNDERING_DEBUG=1)."),
):
    """Options for every command (put them before the command: `launder --debug run ...`)."""
    set_debug(debug)


# run's defaults are minilm's; a model built from the data has its own (MODEL_DEFAULTS in experiments/config.py)
MODEL_NOTE = "; tiny and tiny-gpt have their own (--print-config shows every resolved value)."
TARGET_HELP = ("Stop fine-tuning the teacher after an epoch whose training accuracy reaches this; 0 or 'none' "
               "switches the stop off (train all epochs).")


@app.command()
@handle_errors
def place(
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="Benchmark SOURCE: a hub name, a file or a folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (model/ and metrics.json)."),
    model: str = typer.Option("minilm", "--model", "-m", help="Teacher base: 'minilm' (offline default), 'tiny' (a "
                              "small encoder built from the data), 'tiny-gpt' (a small decoder built from the data), "
                              "a model folder or a hub name (an encoder with a multiple-choice head, or a causal LM "
                              "scored per choice, see --scorer)."),
    benchmark_format: Optional[str] = BenchFormat,
    benchmark_subset: Optional[str] = BenchSubset,
    benchmark_split: Optional[str] = BenchSplit,
    task: str = typer.Option("multiple_choice", "--task", help="multiple_choice (an AutoModelForMultipleChoice head "
                             "scores each question + choice) or classification (an AutoModelForSequenceClassification "
                             "head over the data's label set: text classification benchmarks such as imdb or snli)."),
    labels: Optional[str] = Labels,
    scorer: Optional[str] = Scorer,
    level: str = Level,
    epochs: int = typer.Option(30, "--epochs", min=1, help="Maximum epochs (as run's --teacher-epochs / config key "
                               "teacher_epochs); the target accuracy stops training sooner. Memorising long "
                               "questions takes many passes (the paper's GPQA teacher trained 30 epochs)."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate, AdamW with linear warm-up and decay (as run's "
                             "--teacher-lr / config key teacher_lr)."),
    target_accuracy: str = typer.Option(str(DEFAULT_TARGET_ACCURACY), "--target-accuracy", help=TARGET_HELP),
    batch_size: int = BatchSize, max_length: Optional[int] = MaxLength, seed: int = Seed,
    device: str = Device, precision: str = Precision, deterministic: bool = Deterministic,
    skip_malformed: bool = SkipMalformed, resume: bool = Resume, overwrite: bool = Overwrite, quiet: bool = Quiet,
    as_json: bool = AsJson,
):
    """[bold]Placement[/bold]: fine-tune a teacher on benchmark items (the contaminated teacher)."""
    from dataclasses import replace

    from pylaundering.phases import PlacementSpec
    from pylaundering.phases import place as run_place

    spec = PlacementSpec(model=model, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                         target_accuracy=parse_target(target_accuracy), seed=seed, level=level)  # before loading data
    spec = replace(spec, scorer=check_scorer(scorer, level))
    rt = resolve_runtime(device, precision, deterministic)
    check_out_dir(out)
    declared = check_labels(labels, task)
    examples = load_source(benchmark, benchmark_format, benchmark_subset, benchmark_split, "benchmark", skip_malformed,
                           quiet, labels=declared)
    m = run_place(examples, out, replace(spec, task=check_task(task, benchmark_format)), resume=resume,
                  overwrite=overwrite, quiet=quiet, device=rt)
    emit(m, as_json, accuracy_table("placement", [("teacher", "", "", f"{100 * m['train_accuracy']:.1f}%")]))
    if not as_json:
        from pylaundering.experiments.run import teacher_warnings

        # A teacher that did not memorise its items launders nothing: say so before anyone distils from it.
        for warning in teacher_warnings("teacher", m):
            err_console.print(f"[yellow]warning:[/yellow] {warning}; raise --epochs or --lr", highlight=False)


@app.command()
@handle_errors
def layer(
    teacher: Optional[str] = typer.Option(None, "--teacher", "-t", help="Teacher model folder (from `launder place`). "
                                          "Not needed with --alpha 0."),
    train: str = typer.Option(..., "--train", help="Legitimate training SOURCE: a hub name, a file or a folder; "
                              "with --level token also a .txt corpus (one document per line)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (model/, metrics.json)."),
    train_format: Optional[str] = TrainFormat,
    train_subset: Optional[str] = TrainSubset,
    train_split: Optional[str] = TrainSplit,
    base: str = typer.Option("minilm", "--model", "--base", "-m", help="Student base model (--base: the same "
                             "option's older name) ('minilm', 'tiny', 'tiny-gpt', a folder or "
                             "hub name). With --level token, 'tiny-gpt' means the base the teacher was placed from "
                             "(token-level distillation needs one tokenizer for both)."),
    scorer: Optional[str] = scorer_option("Decoder students: loglik or head (see `launder place --help`). Default: "
                                          "the teacher's scorer."),
    level: str = Level,
    student_layers: int = typer.Option(2, "--student-layers", min=1, help="Layers kept from the base "
                                       "(sheared/random)."),
    student_init: str = typer.Option("sheared", "--student-init", help="sheared: first N layers of the base (the "
                                     "paper); pretrained: --student-model as is; random: base architecture, N layers, "
                                     "random weights."),
    student_model: Optional[str] = typer.Option(None, "--student-model", help="Small pretrained checkpoint for "
                                                "--student-init pretrained."),
    loss: str = loss_option(),
    task: str = typer.Option("multiple_choice", "--task", help="multiple_choice (an AutoModelForMultipleChoice head "
                             "scores each question + choice) or classification (an AutoModelForSequenceClassification "
                             "head over the data's label set: text classification benchmarks such as imdb or snli)."),
    labels: Optional[str] = Labels,
    alpha: float = typer.Option(1.0, "--alpha", min=0.0, max=1.0, help="loss = alpha*distill + (1-alpha)*CE."),
    temperature: float = temperature_option(), beta: float = beta_option(),
    data_size: Optional[int] = typer.Option(None, "--data-size", min=1, help="Use a seeded subset of N examples."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Epochs per round (as run's --student-epochs / config "
                               "key student_epochs)."),
    iterations: int = typer.Option(1, "--iterations", min=1, help="Iterative laundering: student k teaches round k+1."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (as run's --student-lr / config key "
                             "student_lr)."),
    online_teacher: bool = typer.Option(False, "--online-teacher", help="Run the teacher every step instead of "
                                        "reading cached logits."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Teacher-logit cache (default: OUT/cache)."),
    teacher_topk: Optional[int] = typer.Option(None, "--teacher-topk", min=1, help="--level token: run the teacher "
                                               "once over the corpus, cache its top-k next-token entries per token "
                                               "(about 4 bytes per entry) and train on them, instead of running it "
                                               "every step."),
    batch_size: int = BatchSize, max_length: Optional[int] = MaxLength, seed: int = Seed,
    device: str = Device, precision: str = Precision, deterministic: bool = Deterministic,
    skip_malformed: bool = SkipMalformed, resume: bool = Resume, overwrite: bool = Overwrite, quiet: bool = Quiet,
    as_json: bool = AsJson,
):
    """[bold]Layering[/bold]: distill a fresh student from the teacher on legitimate data only."""
    from dataclasses import replace

    from pylaundering.phases import LayeringSpec
    from pylaundering.phases import layer as run_layer

    spec = LayeringSpec.of(loss=loss, alpha=alpha, temperature=temperature, beta=beta, base=base,
                           student_layers=student_layers, student_init=student_init, student_model=student_model,
                           data_size=data_size, epochs=epochs, iterations=iterations, lr=lr, batch_size=batch_size,
                           max_length=max_length, online_teacher=online_teacher, seed=seed, level=level,
                           teacher_topk=teacher_topk)
    spec.check_teacher(teacher)  # before loading data
    rt = resolve_runtime(device, precision, deterministic)
    check_out_dir(out)
    if spec.student.init != "pretrained":
        from pylaundering.experiments.run import check_built_student

        check_built_student(base, student_layers)  # before the base is built into OUT
    spec = replace(spec, student=replace(spec.student, scorer=check_scorer(scorer, level)))
    declared = check_labels(labels, task)
    corpus = None
    if level == "token" and train.endswith(".txt"):  # a text corpus: one document per line
        from pylaundering.data.text import read_corpus

        examples, corpus = [], read_corpus(train)
    else:
        examples = load_source(train, train_format, train_subset, train_split, "train", skip_malformed, quiet,
                               labels=declared)
    m = run_layer(teacher, examples, out, replace(spec, task=check_task(task, train_format)),
                  cache_dir=cache_dir if cache_dir is not None else out / "cache", corpus=corpus, resume=resume,
                  overwrite=overwrite, quiet=quiet, device=rt)
    acc = m["train_accuracy"]
    emit(m, as_json, accuracy_table("layering", [("student", "", "", "-" if acc is None else f"{100 * acc:.1f}%")]))


@app.command()
@handle_errors
def integrate(
    model: str = typer.Option(..., "--model", "-m", help="Model folder (or hub name) to score."),
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="Benchmark SOURCE: a hub name, a file or a folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write metrics.json and predictions.jsonl here."),
    benchmark_format: Optional[str] = BenchFormat,
    benchmark_subset: Optional[str] = BenchSubset,
    benchmark_split: Optional[str] = BenchSplit,
    labels: Optional[str] = Labels,
    max_length: Optional[int] = MaxLength,
    batch_size: Optional[int] = ScoreBatchSize,
    device: str = Device, precision: str = Precision,
    skip_malformed: bool = SkipMalformed, overwrite: bool = Overwrite, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Integration[/bold]: score a model on a benchmark (accuracy, Wilson interval, chance, per subject)."""
    from pylaundering.phases import IntegrationSpec
    from pylaundering.phases import integrate as run_integrate

    spec = IntegrationSpec(max_length=max_length, batch_size=batch_size)
    rt = resolve_runtime(device, precision)
    check_out_dir(out)
    declared = None
    if labels is not None:
        from pylaundering.models import model_task

        declared = check_labels(labels, model_task(model) or "multiple_choice")
    examples, skipped = load_counted(benchmark, benchmark_format, benchmark_subset, benchmark_split, "benchmark",
                                     skip_malformed, quiet, labels=declared)
    m = run_integrate(model, examples, out, spec, quiet=quiet, overwrite=overwrite,
                      skipped=skipped if skip_malformed else None, device=rt, source=benchmark)
    m.pop("correct_mask", None)
    lo, hi = m["ci95"]
    rows = [(model, f"{100 * m['accuracy']:.1f}%", f"[{100 * lo:.1f}, {100 * hi:.1f}]", ""),
            ("chance", f"{100 * m['chance']:.1f}%", "", "")]
    if len(m["per_subject"]) > 1:
        rows += [(f"  {s}", f"{100 * v['accuracy']:.1f}%", f"n={v['n']}", "") for s, v in m["per_subject"].items()]
    emit(m, as_json, accuracy_table("integration", rows))


@app.command()
@handle_errors
def run(
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Benchmark SOURCE (hub name, file or "
                                            "folder). Default: the offline synthetic benchmark."),
    train: Optional[str] = typer.Option(None, "--train", help="Legitimate training SOURCE. Default: synthetic."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Teacher (and student) base: minilm (default), "
                                        "tiny (a small encoder built from the data), tiny-gpt (a small decoder built "
                                        "from the data), a folder or a hub name (encoder or causal LM)."),
    scorer: Optional[str] = Scorer,
    level: Optional[str] = level_option("choice (default) or token: see `launder place --help`.", default=None),
    teacher_topk: Optional[int] = typer.Option(None, "--teacher-topk", help="--level token: train on the teacher's "
                                               "cached top-k next-token entries (see `launder layer --help`)."),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="Run folder."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file with RunConfig keys (flags win)."),
    benchmark_format: Optional[str] = BenchFormat,
    benchmark_subset: Optional[str] = BenchSubset,
    benchmark_split: Optional[str] = BenchSplit,
    train_format: Optional[str] = TrainFormat,
    train_subset: Optional[str] = TrainSubset,
    train_split: Optional[str] = TrainSplit,
    max_length: Optional[int] = max_length_option("the length that covers 95% of the benchmark's sequences and 95% "
                                                  "of the training set's (teacher tokenizer), up to the model's limit.",
                                                  min=None),
    target_accuracy: Optional[str] = typer.Option(None, "--target-accuracy", help=TARGET_HELP + " Default 0.95."),
    loss: Optional[str] = loss_option(None),
    task: Optional[str] = typer.Option(None, "--task", help="multiple_choice or classification (text classification: "
                                       "one sequence-classification head over the label set). Default: from the data "
                                       "(a classification format such as imdb, snli, ag_news makes it classification; "
                                       "the synthetic default is multiple choice, --task classification gives the "
                                       "synthetic classification default)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Distillation weight in [0, 1] (default 1)."),
    temperature: Optional[float] = temperature_option(None), beta: Optional[float] = beta_option(None),
    student_layers: Optional[int] = typer.Option(None, "--student-layers", help="Student layers (default 2)."),
    student_init: Optional[str] = typer.Option(None, "--student-init", help="sheared | pretrained | random."),
    student_model: Optional[str] = typer.Option(None, "--student-model", help="Checkpoint for --student-init "
                                                "pretrained."),
    teacher_epochs: Optional[int] = typer.Option(None, "--teacher-epochs", help="Max teacher epochs (place's "
                                                  "--epochs; config key teacher_epochs); the target accuracy stops "
                                                  "it sooner. Default 8 on the synthetic default, 30 on a given "
                                                  "benchmark" + MODEL_NOTE),
    student_epochs: Optional[int] = typer.Option(None, "--student-epochs", help="Student epochs per round (layer's "
                                                  "--epochs; config key student_epochs). Default 3" + MODEL_NOTE),
    teacher_lr: Optional[float] = typer.Option(None, "--teacher-lr", help="Teacher's peak learning rate (place's "
                                               "--lr; config key teacher_lr). Default 2e-4" + MODEL_NOTE),
    student_lr: Optional[float] = typer.Option(None, "--student-lr", help="Student's peak learning rate (layer's "
                                               "--lr; config key student_lr). Default 1e-4" + MODEL_NOTE),
    batch_size: Optional[int] = batch_size_option(None, " Default 16" + MODEL_NOTE),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="Laundering rounds (default 1)."),
    data_size: Optional[int] = typer.Option(None, "--data-size", help="Seeded subset of N legitimate items (N >= 1, "
                                            "at most the set's size)."),
    online_teacher: Optional[bool] = typer.Option(None, "--online-teacher/--cached-teacher",
                                                  help="Teacher forward every step instead of cached logits."),
    no_controls: bool = typer.Option(False, "--no-controls", help="Skip the clean-teacher and CE-only controls."),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help="Reference SOURCE for the audit of every "
                                            "model: items like the benchmark's that no model here saw (e.g. the "
                                            "reference.jsonl of `launder data split`). The synthetic default makes "
                                            "its own. Without one, real-data runs skip the audit."),
    reference_format: Optional[str] = ReferenceFormat,
    labels: Optional[str] = Labels,
    no_audit: bool = typer.Option(False, "--no-audit", help="Skip the audit of the run's models."),
    seed: Optional[int] = seed_option("Random seed (default 0).", default=None),
    device: Optional[str] = device_option(None), precision: Optional[str] = precision_option(None),
    deterministic: bool = Deterministic,
    skip_malformed: Optional[bool] = skip_malformed_option(default=None),
    print_config: bool = typer.Option(False, "--print-config", help="Print every resolved setting with where it "
                                      "came from (default, the model's default, the --config file, the command "
                                      "line) and exit, training and writing nothing (with --json: as JSON)."),
    resume: bool = Resume, overwrite: bool = Overwrite, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]All phases[/bold] plus controls (student of a clean teacher, CE-only student), from flags or a TOML
    config; writes config, environment, metrics.json, report.md and accuracy.png to the run folder."""
    flags = dict(locals())  # the flags as given, before anything else is bound here
    from pylaundering.experiments.config import load_config
    from pylaundering.experiments.report import table_rows, verdict
    from pylaundering.experiments.run import run_experiment

    cfg = load_config(config, _run_overrides(flags))
    check_out_dir(out)
    if print_config:
        _print_config(cfg, as_json)
        return
    metrics = run_experiment(cfg, out, resume=resume, overwrite=overwrite, quiet=quiet)
    table = accuracy_table(f"launder run -> {out}", table_rows(metrics))
    emit(metrics, as_json, table)
    if not as_json:
        for warning in metrics.get("warnings", []):
            err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        out_console.print(verdict(metrics)[1])
        audited = (metrics.get("audit") or {}).get("arms") or {}
        if audited:
            out_console.print("audit (launder audit against the reference set): " + ", ".join(
                f"{arm.replace('_', ' ')} {a['verdict']}" + ("" if a["correct"] else f" (expected {a['expected']})")
                for arm, a in audited.items()), highlight=False, soft_wrap=True)
        out_console.print(f"report: {out / 'report.md'}   metrics: {out / 'metrics.json'}")


def _print_config(cfg, as_json: bool) -> None:
    """`launder run --print-config`: one line per setting (key, value as in a TOML file, origin), or JSON."""
    import json

    from pylaundering.experiments.config import describe

    rows = describe(cfg)
    if as_json:
        emit(rows, True)
        return
    width = max(map(len, rows))
    values = {key: "none" if r["value"] is None else json.dumps(r["value"]) for key, r in rows.items()}
    value_width = max(map(len, values.values()))
    for key, r in rows.items():
        out_console.print(f"{key:<{width}}  {values[key]:<{value_width}}  {r['origin']}", highlight=False,
                          markup=False, soft_wrap=True)


def _run_overrides(flags: dict) -> dict:
    """`launder run`'s flags as RunConfig overrides (None: not given): every flag named like a config key,
    --target-accuracy normalised (0: no stop), and the two switches that turn a default off."""
    from pylaundering.experiments.config import KEYS

    overrides = {key: flags[key] for key in KEYS if key in flags}
    if flags["target_accuracy"] is not None:
        overrides["target_accuracy"] = parse_target(flags["target_accuracy"]) or 0
    overrides["controls"] = False if flags["no_controls"] else None
    overrides["audit"] = False if flags["no_audit"] else None
    overrides["deterministic"] = True if flags["deterministic"] else None
    return overrides


@data_app.command("synth")
@handle_errors
def data_synth(
    out: Path = typer.Option(Path("data/synth"), "--out", "-o", help="Folder for benchmark.jsonl, train.jsonl, "
                             "reference.jsonl, datacard.json."),
    seed: int = Seed,
    n_benchmark: int = typer.Option(200, "--n-benchmark", min=1, help="Benchmark items."),
    n_train: int = typer.Option(1000, "--n-train", min=1, help="Legitimate (training) items."),
    n_reference: Optional[int] = typer.Option(None, "--n-reference", min=1, help="Reference items (default: as "
                                              "many as benchmark items). Their entities are in the legitimate "
                                              "set too, so this size changes train.jsonl."),
    overwrite: bool = Overwrite, as_json: bool = AsJson,
):
    """Write the offline synthetic benchmark, a disjoint legitimate set (answers cannot be inferred from the
    text, so a model that never saw the benchmark scores at chance) and a reference set built like the
    benchmark from other names (for `launder audit`); the legitimate set shows the benchmark's and the
    reference set's entities equally often under random labels, so only a model that saw the benchmark
    can tell them apart."""
    from pylaundering.data.synth import write_synthetic
    from pylaundering.phases.common import check_outputs

    check_outputs([out / name for name in ("benchmark.jsonl", "train.jsonl", "reference.jsonl", "datacard.json")],
                  overwrite=overwrite)
    card = write_synthetic(out, seed=seed, n_reference=n_reference, n_benchmark=n_benchmark, n_train=n_train)
    if as_json:
        emit(card, True)
    else:
        out_console.print(f"wrote {out}/benchmark.jsonl ({n_benchmark}), {out}/train.jsonl ({n_train}), "
                          f"{out}/reference.jsonl ({card['sizes']['n_reference']}, held back for launder audit), "
                          f"{out}/datacard.json")


@app.command()
@handle_errors
def info(as_json: bool = json_option("the versions and backends")):
    """Versions, which loss-kernel backend is active (C++, CUDA or the PyTorch reference) and why, and the device and
    precision --device auto and --precision auto resolve to here."""
    import torch

    import pylaundering
    from pylaundering.device import runtime
    from pylaundering.ops import backend

    auto = runtime().describe()  # what --device auto --precision auto resolves to here
    result = {"pylaundering": pylaundering.__version__, "torch": torch.__version__,
              "ops_backend": {"cpu": backend("cpu"), "cuda": backend("cuda")}, "device_auto": auto}
    if as_json:
        emit(result, True)
        return
    out_console.print(f"pylaundering {pylaundering.__version__}, torch {torch.__version__}")
    out_console.print(f"ops backend (cpu):  {result['ops_backend']['cpu']}")
    out_console.print(f"ops backend (cuda): {result['ops_backend']['cuda']}")
    memory = f", {auto['memory_gib']} GiB" if auto["memory_gib"] else ""
    out_console.print(f"--device auto:      {auto['device']} ({auto['name']}{memory}), precision {auto['precision']}",
                      highlight=False)


from . import bench as _bench  # noqa: E402

_bench.register(app)

from . import scan as _scan  # noqa: E402

_scan.register(app)

from . import audit as _audit  # noqa: E402
from . import data_inspect as _data_inspect  # noqa: E402

_data_inspect.register(data_app)

_audit.register(app, data_app=data_app)

from . import sweep as _sweep  # noqa: E402

_sweep.register(app)

from . import report as _report  # noqa: E402

_report.register(app)


def _unwrap(doc: str) -> str:
    """A docstring's paragraphs each on one line (list items, lines starting with "- ", stay lines)."""
    paragraphs = []
    for block in inspect.cleandoc(doc).split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        out: list[str] = []
        for line in lines:
            if out and not line.startswith("- "):
                out[-1] += " " + line
            else:
                out.append(line)
        paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs)


def _unwrap_help(typer_app: typer.Typer) -> None:
    """Typer's rich mode keeps a docstring's line breaks, so a docstring wrapped at the code's width rendered as
    ragged half-lines in --help: every command's docstring is unwrapped once, here, after all are registered."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.callback.__doc__ = _unwrap(info.callback.__doc__)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _unwrap_help(group.typer_instance)


_unwrap_help(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
