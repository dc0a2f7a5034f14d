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

import contextlib
import functools
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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

out_console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never break a path in an error line

_state = {"debug": bool(os.environ.get("PYLAUNDERING_DEBUG")), "json": None}


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="On failure, print the full traceback (also: "
                               "PYLAUNDERING_DEBUG=1)."),
):
    """Options for every command (put them before the command: `launder --debug run ...`)."""
    _state["debug"] = debug or bool(os.environ.get("PYLAUNDERING_DEBUG"))


def _one_line(e: BaseException) -> str:
    from pylaundering.errors import ConfigError

    text = str(e).strip() or type(e).__name__
    first = text.splitlines()[0]
    if isinstance(e, (ValueError, OSError, ConfigError)):  # our own errors: every line kept, on one line
        return " ".join(line.strip() for line in text.splitlines() if line.strip())
    if isinstance(e, RuntimeError) and "out of memory" in text.lower():
        return f"out of memory: {first} (try a smaller --batch-size or --max-length)"
    return f"{type(e).__name__}: {first}"


@contextlib.contextmanager
def _stdout_for_json(enabled: bool):
    """Under --json, everything written to stdout (Python or C level) goes to stderr until the
    JSON result is written; emit() keeps the result and it is printed on the real stdout last."""
    if not enabled:
        yield
        return
    _state["json"] = []
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner): Python level only
        fd = saved = None
    try:
        if fd is not None:
            os.dup2(sys.stderr.fileno(), fd)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if fd is not None:
            os.dup2(saved, fd)
            os.close(saved)
        pending, _state["json"] = _state["json"], None
        for text in pending:
            sys.stdout.write(text)
        sys.stdout.flush()


def handle_errors(fn):
    """Every failure prints one clear line: usage errors (ConfigError) exit 2, others 1; Ctrl-C
    after a checkpoint exits 130. --debug adds the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pylaundering.errors import ConfigError
        from pylaundering.progress import quiet_libraries
        from pylaundering.train.loop import Interrupted

        if kwargs.get("quiet"):
            quiet_libraries()
        try:
            with _stdout_for_json(bool(kwargs.get("as_json"))):
                return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except Interrupted as e:
            err_console.print(f"[yellow]{e}")
            raise typer.Exit(130)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted")
            raise typer.Exit(130)
        except Exception as e:  # noqa: BLE001 - the CLI's contract: one line, an exit code
            if _state["debug"]:
                traceback.print_exc()
            code = 2 if isinstance(e, ConfigError) else 1
            kind = "usage error" if code == 2 else "error"
            hint = "" if _state["debug"] or isinstance(e, (ValueError, OSError)) else " (--debug shows the traceback)"
            err_console.print(f"[red]{kind}:[/red] {escape(_one_line(e))}{hint}", highlight=False)
            raise typer.Exit(code)

    return wrapper


def emit(result: dict, as_json: bool, table: Table | None = None) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun every rank has the result; rank 0 prints it
        return
    if as_json:
        text = json.dumps(result, indent=2, default=str) + "\n"
        if _state["json"] is not None:
            _state["json"].append(text)
        else:
            sys.stdout.write(text)
    elif table is not None:
        out_console.print(table)


def _load(source: str, fmt: Optional[str], subset: Optional[str], split: Optional[str], role: str,
          skip_malformed: bool, quiet: bool):
    from pylaundering.experiments.run import load_source

    res = load_source(source, fmt, subset=subset, split=split, role=role, key=role, skip_malformed=skip_malformed)
    if res.skipped and not quiet:
        err_console.print(f"[yellow]skipped {res.skipped} malformed rows in {source}")
    return res.examples


def _target(value: Optional[str]):
    """--target-accuracy: a number in (0, 1], or 0 / none / off for no early stop."""
    from pylaundering.validate import normalize_target

    return normalize_target(value, "target_accuracy")


# Shared option declarations (one place for the help texts).
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines (also silences transformers "
                     "and huggingface_hub bars and messages).")
AsJson = typer.Option(False, "--json", help="Print the result as JSON on stdout, and nothing else there "
                      "(progress and messages go to stderr).")
Resume = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint; finished phases "
                      "are reused only if their recorded settings and data match (else refused, naming the "
                      "differing keys).")
Seed = typer.Option(0, "--seed", help="Random seed (data order, initialisation, dropout).")
MaxLength = typer.Option(None, "--max-length", min=8, help="Max tokens per (question, choice) sequence. Default: the "
                         "length that covers 95% of the sequences and keeps every question whole, up to the model's limit.")
BatchSize = typer.Option(16, "--batch-size", min=1, help="Questions per optimisation step.")
SkipMalformed = typer.Option(False, "--skip-malformed", help="Skip malformed data rows (counted) instead of failing.")
BenchFormat = typer.Option(None, "--benchmark-format", help="Benchmark format (gpqa, mmlu, mmlu_csv, mmlu_redux, medmcqa, "
                           "race, arc, csv, json, jsonl, pylaundering, or a classification format) when its "
                           "columns do not name it.")
TrainFormat = typer.Option(None, "--train-format", help="Format of the legitimate training set (as --benchmark-format).")
BenchSubset = typer.Option(None, "--benchmark-subset", help="Hub dataset configuration of the benchmark (or "
                           "--benchmark name:subset:split).")
BenchSplit = typer.Option(None, "--benchmark-split", help="Split of the benchmark (default: the format's evaluation "
                          "split).")
TrainSubset = typer.Option(None, "--train-subset", help="Hub dataset configuration of the training set (or "
                           "--train name:subset:split).")
TrainSplit = typer.Option(None, "--train-split", help="Split of the training set (default: the format's training "
                          "split).")
Scorer = typer.Option(None, "--scorer", help="How a decoder (causal LM: tiny-gpt, GPT-2, Llama-style) scores each "
                      "question + choice: loglik (length-normalised log-likelihood of the choice, as evaluation "
                      "harnesses do; the default) or head (a sequence-classification head, as the paper's GPT-2 "
                      "runs). Encoders always use their multiple-choice head.")


Level = typer.Option("choice", "--level", help="choice: distil the per-choice scores (the paper). token: causal LMs "
                     "(--model tiny-gpt offline, GPT-2 / Llama-style): placement fine-tunes on the benchmark items "
                     "written as text (question, options, answer), layering distils next-token distributions on a "
                     "legitimate text corpus through the fused LM-head op, integration scores each choice by its "
                     "log-likelihood after the item's prompt.")


def _scorer(scorer: Optional[str], level: str = "choice") -> Optional[str]:
    """--scorer and --level checked before any data is read (usage errors, exit 2)."""
    from pylaundering.models.decoder import SCORERS
    from pylaundering.validate import check_choice

    if scorer is not None:
        check_choice("scorer", scorer, SCORERS)
    from pylaundering.phases.token_level import LEVELS

    check_choice("level", level, LEVELS)
    return scorer


TARGET_HELP = ("Stop fine-tuning the teacher after an epoch whose training accuracy reaches this; 0 or 'none' "
               "switches the stop off (train all epochs).")


def _task(task: str, fmt: Optional[str]) -> str:
    """--task of a single phase, checked (a classification format implies classification)."""
    from pylaundering.errors import ConfigError
    from pylaundering.validate import check_choice

    check_choice("task", task, ("multiple_choice", "classification"))
    try:
        from pylaundering.data.cls_formats import CLASSIFICATION_FORMATS
    except ImportError:  # pragma: no cover
        CLASSIFICATION_FORMATS = frozenset()
    if fmt in CLASSIFICATION_FORMATS and task != "classification":
        raise ConfigError("task", f"the format {fmt!r} is a classification format: pass --task classification")
    return task


def _accuracy_table(title: str, rows: list[tuple[str, ...]], header=("Model", "Accuracy", "95% CI", "Train acc")):
    t = Table(title=title)
    for h in header:
        t.add_column(h)
    for r in rows:
        t.add_row(*r)
    return t


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
    scorer: Optional[str] = Scorer,
    level: str = Level,
    epochs: int = typer.Option(30, "--epochs", min=1, help="Maximum epochs; the target accuracy stops training "
                               "sooner. Memorising long questions takes many passes (the paper's GPQA teacher "
                               "trained 30 epochs)."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate (AdamW, linear warm-up and decay)."),
    target_accuracy: str = typer.Option(str(DEFAULT_TARGET_ACCURACY), "--target-accuracy", help=TARGET_HELP),
    batch_size: int = BatchSize, max_length: Optional[int] = MaxLength, seed: int = Seed,
    skip_malformed: bool = SkipMalformed, resume: bool = Resume, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Placement[/bold]: fine-tune a teacher on benchmark items (the contaminated teacher)."""
    from pylaundering.phases import place as run_place
    from pylaundering.phases.placement import check_place_params

    target = check_place_params(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                                target_accuracy=_target(target_accuracy), seed=seed)  # before loading data
    scorer = _scorer(scorer, level)
    examples = _load(benchmark, benchmark_format, benchmark_subset, benchmark_split, "benchmark", skip_malformed,
                     quiet)
    m = run_place(examples, out, model=model, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                  target_accuracy=target, seed=seed, resume=resume, quiet=quiet, task=_task(task, benchmark_format),
                  scorer=scorer, level=level)
    emit(m, as_json, _accuracy_table("placement", [("teacher", "", "", f"{100 * m['train_accuracy']:.1f}%")]))
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
    base: str = typer.Option("minilm", "--base", help="Student base model ('minilm', 'tiny', 'tiny-gpt', a folder or "
                             "hub name). With --level token, 'tiny-gpt' means the base the teacher was placed from "
                             "(token-level distillation needs one tokenizer for both)."),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Decoder students: loglik or head (see `launder place "
                                         "--help`). Default: the teacher's scorer."),
    level: str = Level,
    student_layers: int = typer.Option(2, "--student-layers", min=1, help="Layers kept from the base (sheared/random)."),
    student_init: str = typer.Option("sheared", "--student-init", help="sheared: first N layers of the base (the "
                                     "paper); pretrained: --student-model as is; random: base architecture, N layers, "
                                     "random weights."),
    student_model: Optional[str] = typer.Option(None, "--student-model", help="Small pretrained checkpoint for "
                                                "--student-init pretrained."),
    loss: str = typer.Option("kl", "--loss", help="Distillation loss: kl (Hinton), reverse_kl, jsd, mse (logits) or "
                             "hard (cross-entropy on the teacher's argmax labels)."),
    task: str = typer.Option("multiple_choice", "--task", help="multiple_choice (an AutoModelForMultipleChoice head "
                             "scores each question + choice) or classification (an AutoModelForSequenceClassification "
                             "head over the data's label set: text classification benchmarks such as imdb or snli)."),
    alpha: float = typer.Option(1.0, "--alpha", min=0.0, max=1.0, help="loss = alpha*distill + (1-alpha)*CE."),
    temperature: float = typer.Option(2.0, "--temperature", "-T", help="Softmax temperature for kl/reverse_kl/jsd."),
    beta: float = typer.Option(0.5, "--beta", help="Generalized JSD mixing weight, strictly inside (0, 1)."),
    data_size: Optional[int] = typer.Option(None, "--data-size", min=1, help="Use a seeded subset of N examples."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Epochs per round."),
    iterations: int = typer.Option(1, "--iterations", min=1, help="Iterative laundering: student k teaches round k+1."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate."),
    online_teacher: bool = typer.Option(False, "--online-teacher", help="Run the teacher every step instead of "
                                        "reading cached logits."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Teacher-logit cache (default: OUT/cache)."),
    teacher_topk: Optional[int] = typer.Option(None, "--teacher-topk", min=1, help="--level token: run the teacher "
                                               "once over the corpus, cache its top-k next-token entries per token "
                                               "(about 4 bytes per entry) and train on them, instead of running it "
                                               "every step."),
    batch_size: int = BatchSize, max_length: Optional[int] = MaxLength, seed: int = Seed,
    skip_malformed: bool = SkipMalformed, resume: bool = Resume, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Layering[/bold]: distill a fresh student from the teacher on legitimate data only."""
    from pylaundering.phases import layer as run_layer
    from pylaundering.phases.layering import check_layer_params

    check_layer_params(teacher=teacher, loss=loss, alpha=alpha, temperature=temperature, beta=beta,
                       data_size=data_size, epochs=epochs, iterations=iterations, lr=lr, batch_size=batch_size,
                       max_length=max_length, student_layers=student_layers, student_init=student_init,
                       student_model=student_model, seed=seed)  # before loading data
    scorer = _scorer(scorer, level)
    corpus = None
    if level == "token" and train.endswith(".txt"):  # a text corpus: one document per line
        from pylaundering.data.text import read_corpus

        examples, corpus = [], read_corpus(train)
    else:
        examples = _load(train, train_format, train_subset, train_split, "train", skip_malformed, quiet)
    m = run_layer(teacher, examples, out, base=base, student_layers=student_layers, student_init=student_init,
                  student_model=student_model, loss=loss, alpha=alpha, temperature=temperature, beta=beta,
                  data_size=data_size, epochs=epochs, iterations=iterations, lr=lr, batch_size=batch_size,
                  max_length=max_length, online_teacher=online_teacher,
                  cache_dir=cache_dir if cache_dir is not None else out / "cache", seed=seed, resume=resume,
                  quiet=quiet, task=_task(task, train_format), scorer=scorer, level=level, corpus=corpus,
                  teacher_topk=teacher_topk)
    acc = m["train_accuracy"]
    emit(m, as_json, _accuracy_table("layering", [("student", "", "", "-" if acc is None else f"{100 * acc:.1f}%")]))


@app.command()
@handle_errors
def integrate(
    model: str = typer.Option(..., "--model", "-m", help="Model folder (or hub name) to score."),
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="Benchmark SOURCE: a hub name, a file or a folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write metrics.json and predictions.jsonl here."),
    benchmark_format: Optional[str] = BenchFormat,
    benchmark_subset: Optional[str] = BenchSubset,
    benchmark_split: Optional[str] = BenchSplit,
    max_length: Optional[int] = MaxLength,
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Questions per forward pass."),
    skip_malformed: bool = SkipMalformed, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Integration[/bold]: score a model on a benchmark (accuracy, Wilson interval, chance, per subject)."""
    from pylaundering.phases import integrate as run_integrate

    examples = _load(benchmark, benchmark_format, benchmark_subset, benchmark_split, "benchmark", skip_malformed,
                     quiet)
    m = run_integrate(model, examples, out, max_length=max_length, batch_size=batch_size, quiet=quiet)
    m.pop("correct_mask", None)
    lo, hi = m["ci95"]
    rows = [(model, f"{100 * m['accuracy']:.1f}%", f"[{100 * lo:.1f}, {100 * hi:.1f}]", ""),
            ("chance", f"{100 * m['chance']:.1f}%", "", "")]
    if len(m["per_subject"]) > 1:
        rows += [(f"  {s}", f"{100 * v['accuracy']:.1f}%", f"n={v['n']}", "") for s, v in m["per_subject"].items()]
    emit(m, as_json, _accuracy_table("integration", rows))


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
    level: Optional[str] = typer.Option(None, "--level", help="choice (default) or token: see `launder place --help`."),
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
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Max tokens per (question, choice) "
                                             "sequence. Default: the length that covers 95% of the benchmark and "
                                             "training sequences (teacher tokenizer), up to the model's limit."),
    target_accuracy: Optional[str] = typer.Option(None, "--target-accuracy", help=TARGET_HELP + " Default 0.95."),
    loss: Optional[str] = typer.Option(None, "--loss", help="kl | reverse_kl | jsd | mse | hard (the teacher's argmax "
                                       "labels) (default kl)."),
    task: Optional[str] = typer.Option(None, "--task", help="multiple_choice or classification (text classification: "
                                       "one sequence-classification head over the label set). Default: from the data "
                                       "(a classification format such as imdb, snli, ag_news makes it classification; "
                                       "the synthetic default is multiple choice, --task classification gives the "
                                       "synthetic classification default)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Distillation weight in [0, 1] (default 1)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-T", help="Temperature (default 2)."),
    student_layers: Optional[int] = typer.Option(None, "--student-layers", help="Student layers (default 2)."),
    student_init: Optional[str] = typer.Option(None, "--student-init", help="sheared | pretrained | random."),
    student_model: Optional[str] = typer.Option(None, "--student-model", help="Checkpoint for --student-init pretrained."),
    teacher_epochs: Optional[int] = typer.Option(None, "--teacher-epochs", help="Max teacher epochs; the target accuracy "
                                                  "stops it sooner (default 8 on the synthetic default, 30 on a "
                                                  "given benchmark)."),
    student_epochs: Optional[int] = typer.Option(None, "--student-epochs", help="Student epochs (default 3)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="Laundering rounds (default 1)."),
    data_size: Optional[int] = typer.Option(None, "--data-size", help="Seeded subset of N legitimate items (N >= 1, at most "
                                            "the set's size)."),
    online_teacher: Optional[bool] = typer.Option(None, "--online-teacher/--cached-teacher",
                                                  help="Teacher forward every step instead of cached logits."),
    no_controls: bool = typer.Option(False, "--no-controls", help="Skip the clean-teacher and CE-only controls."),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help="Reference SOURCE for the audit of every "
                                            "model: items like the benchmark's that no model here saw (e.g. the "
                                            "reference.jsonl of `launder data split`). The synthetic default makes "
                                            "its own. Without one, real-data runs skip the audit."),
    reference_format: Optional[str] = typer.Option(None, "--reference-format", help="Format of --reference (as "
                                                   "--benchmark-format)."),
    no_audit: bool = typer.Option(False, "--no-audit", help="Skip the audit of the run's models."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
    skip_malformed: Optional[bool] = typer.Option(None, "--skip-malformed", help="Skip malformed rows (counted)."),
    resume: bool = Resume, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]All phases[/bold] plus controls (student of a clean teacher, CE-only student), from flags or a TOML
    config; writes config, environment, metrics.json, report.md and accuracy.png to the run folder."""
    from pylaundering.experiments.config import load_config
    from pylaundering.experiments.report import table_rows, verdict
    from pylaundering.experiments.run import run_experiment

    overrides = dict(benchmark=benchmark, train=train, model=model, benchmark_format=benchmark_format,
                     benchmark_subset=benchmark_subset, benchmark_split=benchmark_split, train_subset=train_subset,
                     train_split=train_split, max_length=max_length,
                     target_accuracy=None if target_accuracy is None else (_target(target_accuracy) or 0),
                     train_format=train_format, loss=loss, alpha=alpha, temperature=temperature,
                     student_layers=student_layers, student_init=student_init, student_model=student_model,
                     teacher_epochs=teacher_epochs, student_epochs=student_epochs, iterations=iterations,
                     data_size=data_size, online_teacher=online_teacher, seed=seed, skip_malformed=skip_malformed,
                     controls=False if no_controls else None, reference=reference, task=task, scorer=scorer, level=level, teacher_topk=teacher_topk,
                     reference_format=reference_format, audit=False if no_audit else None)
    cfg = load_config(config, overrides)
    metrics = run_experiment(cfg, out, resume=resume, quiet=quiet)
    table = _accuracy_table(f"launder run -> {out}", table_rows(metrics))
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
    as_json: bool = AsJson,
):
    """Write the offline synthetic benchmark, a disjoint legitimate set (answers cannot be inferred from the
    text, so a model that never saw the benchmark scores at chance) and a reference set built like the
    benchmark from other names (for `launder audit`); the legitimate set shows the benchmark's and the
    reference set's entities equally often under random labels, so only a model that saw the benchmark
    can tell them apart."""
    from pylaundering.data.synth import write_synthetic

    card = write_synthetic(out, seed=seed, n_reference=n_reference, n_benchmark=n_benchmark, n_train=n_train)
    if as_json:
        emit(card, True)
    else:
        out_console.print(f"wrote {out}/benchmark.jsonl ({n_benchmark}), {out}/train.jsonl ({n_train}), "
                          f"{out}/reference.jsonl ({card['sizes']['n_reference']}, held back for launder audit), "
                          f"{out}/datacard.json")


@app.command()
@handle_errors
def info():
    """Versions and which loss-kernel backend is active (C++, CUDA or the PyTorch reference), and why."""
    import torch

    import pylaundering
    from pylaundering.ops import backend

    out_console.print(f"pylaundering {pylaundering.__version__}, torch {torch.__version__}")
    out_console.print(f"ops backend (cpu):  {backend('cpu')}")
    out_console.print(f"ops backend (cuda): {backend('cuda')}")


from . import bench as _bench  # noqa: E402

_bench.register(app, handle_errors=handle_errors, emit=emit, out_console=out_console, err_console=err_console)

from . import scan as _scan  # noqa: E402

_scan.register(app, handle_errors=handle_errors, emit=emit, out_console=out_console, err_console=err_console)

from . import audit as _audit  # noqa: E402

_audit.register(app, data_app=data_app, handle_errors=handle_errors, emit=emit, out_console=out_console,
                err_console=err_console)

from . import sweep as _sweep  # noqa: E402

_sweep.register(app, handle_errors=handle_errors, emit=emit, out_console=out_console, err_console=err_console)

from . import report as _report  # noqa: E402

_report.register(app, handle_errors=handle_errors, emit=emit, out_console=out_console, err_console=err_console)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
