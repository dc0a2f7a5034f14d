"""`launder`: reproduce, measure and detect data laundering.

Thin by design: parse flags, call pylaundering, print, and map errors to exit codes
(0 success, 1 failure, 2 usage error, 130 interrupted with a checkpoint left behind).
New subcommands are new functions on `app` (or a sub-app added with `app.add_typer`).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="launder",
    help="Reproduce, measure and detect data laundering: benchmark knowledge passed into a model through "
    "knowledge distillation (Mansurov et al., arXiv 2412.15255). Phases: place (contaminate a teacher), "
    "layer (distill a student on legitimate data), integrate (score it on the benchmark); run does all three "
    "plus controls.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Create and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out_console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never break a path in an error line

EXPECTED_ERRORS = (ValueError, OSError)  # DataError, ModelError are ValueErrors


def handle_errors(fn):
    """Expected failures print one clear line and exit 1; Ctrl-C after a checkpoint exits 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pylaundering.train.loop import Interrupted

        try:
            return fn(*args, **kwargs)
        except Interrupted as e:
            err_console.print(f"[yellow]{e}")
            raise typer.Exit(130)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted")
            raise typer.Exit(130)
        except EXPECTED_ERRORS as e:
            err_console.print(f"[red]error:[/red] {e}", highlight=False)
            raise typer.Exit(1)

    return wrapper


def emit(result: dict, as_json: bool, table: Table | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    elif table is not None:
        out_console.print(table)


def _load(source: str, fmt: Optional[str], skip_malformed: bool, quiet: bool):
    from pylaundering.data.adapters import load_examples

    res = load_examples(source, fmt, skip_malformed=skip_malformed)
    if res.skipped and not quiet:
        err_console.print(f"[yellow]skipped {res.skipped} malformed rows in {source}")
    return res.examples


# Shared option declarations (one place for the help texts).
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines.")
AsJson = typer.Option(False, "--json", help="Print the result as JSON on stdout (progress goes to stderr).")
Resume = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint.")
Seed = typer.Option(0, "--seed", help="Random seed (data order, initialisation, dropout).")
MaxLength = typer.Option(48, "--max-length", help="Max tokens per (question, choice) sequence.")
BatchSize = typer.Option(16, "--batch-size", help="Questions per optimisation step.")
SkipMalformed = typer.Option(False, "--skip-malformed", help="Skip malformed data rows (counted) instead of failing.")
BenchFormat = typer.Option(None, "--benchmark-format", help="Benchmark format (gpqa, mmlu, mmlu_redux, medmcqa, race, "
                           "arc, csv, json, jsonl, pylaundering) when it cannot be inferred.")
TrainFormat = typer.Option(None, "--train-format", help="Format of the legitimate training set (as --benchmark-format).")


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
    model: str = typer.Option("minilm", "--model", "-m", help="Teacher base: 'minilm' (offline default), 'tiny', a "
                              "model folder or a hub name (any AutoModelForMultipleChoice architecture)."),
    benchmark_format: Optional[str] = BenchFormat,
    epochs: int = typer.Option(8, "--epochs", min=1, help="Maximum epochs."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate (AdamW, linear warm-up and decay)."),
    target_accuracy: Optional[float] = typer.Option(0.99, "--target-accuracy",
                                                     help="Stop after an epoch whose training accuracy reaches this."),
    batch_size: int = BatchSize, max_length: int = MaxLength, seed: int = Seed,
    skip_malformed: bool = SkipMalformed, resume: bool = Resume, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Placement[/bold]: fine-tune a teacher on benchmark items (the contaminated teacher)."""
    from pylaundering.phases import place as run_place

    examples = _load(benchmark, benchmark_format, skip_malformed, quiet)
    m = run_place(examples, out, model=model, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                  target_accuracy=target_accuracy, seed=seed, resume=resume, quiet=quiet)
    emit(m, as_json, _accuracy_table("placement", [("teacher", "", "", f"{100 * m['train_accuracy']:.1f}%")]))


@app.command()
@handle_errors
def layer(
    teacher: Optional[str] = typer.Option(None, "--teacher", "-t", help="Teacher model folder (from `launder place`). "
                                          "Not needed with --alpha 0."),
    train: str = typer.Option(..., "--train", help="Legitimate training SOURCE: a hub name, a file or a folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (model/, metrics.json)."),
    train_format: Optional[str] = TrainFormat,
    base: str = typer.Option("minilm", "--base", help="Student base model ('minilm', 'tiny', a folder or hub name)."),
    student_layers: int = typer.Option(2, "--student-layers", min=1, help="Layers kept from the base (sheared/random)."),
    student_init: str = typer.Option("sheared", "--student-init", help="sheared: first N layers of the base (the "
                                     "paper); pretrained: --student-model as is; random: base architecture, N layers, "
                                     "random weights."),
    student_model: Optional[str] = typer.Option(None, "--student-model", help="Small pretrained checkpoint for "
                                                "--student-init pretrained."),
    loss: str = typer.Option("kl", "--loss", help="Distillation loss: kl (Hinton), reverse_kl, jsd or mse (logits)."),
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
    batch_size: int = BatchSize, max_length: int = MaxLength, seed: int = Seed,
    skip_malformed: bool = SkipMalformed, resume: bool = Resume, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Layering[/bold]: distill a fresh student from the teacher on legitimate data only."""
    from pylaundering.phases import layer as run_layer

    examples = _load(train, train_format, skip_malformed, quiet)
    m = run_layer(teacher, examples, out, base=base, student_layers=student_layers, student_init=student_init,
                  student_model=student_model, loss=loss, alpha=alpha, temperature=temperature, beta=beta,
                  data_size=data_size, epochs=epochs, iterations=iterations, lr=lr, batch_size=batch_size,
                  max_length=max_length, online_teacher=online_teacher,
                  cache_dir=cache_dir if cache_dir is not None else out / "cache", seed=seed, resume=resume,
                  quiet=quiet)
    emit(m, as_json, _accuracy_table("layering", [("student", "", "", f"{100 * m['train_accuracy']:.1f}%")]))


@app.command()
@handle_errors
def integrate(
    model: str = typer.Option(..., "--model", "-m", help="Model folder (or hub name) to score."),
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="Benchmark SOURCE: a hub name, a file or a folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write metrics.json and predictions.jsonl here."),
    benchmark_format: Optional[str] = BenchFormat,
    max_length: int = MaxLength,
    batch_size: int = typer.Option(64, "--batch-size", help="Questions per forward pass."),
    skip_malformed: bool = SkipMalformed, quiet: bool = Quiet, as_json: bool = AsJson,
):
    """[bold]Integration[/bold]: score a model on a benchmark (accuracy, Wilson interval, chance, per subject)."""
    from pylaundering.phases import integrate as run_integrate

    examples = _load(benchmark, benchmark_format, skip_malformed, quiet)
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
                                        "tiny, a folder or a hub name."),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="Run folder."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file with RunConfig keys (flags win)."),
    benchmark_format: Optional[str] = BenchFormat,
    train_format: Optional[str] = TrainFormat,
    loss: Optional[str] = typer.Option(None, "--loss", help="kl | reverse_kl | jsd | mse (default kl)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Distillation weight in [0, 1] (default 1)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-T", help="Temperature (default 2)."),
    student_layers: Optional[int] = typer.Option(None, "--student-layers", help="Student layers (default 2)."),
    student_init: Optional[str] = typer.Option(None, "--student-init", help="sheared | pretrained | random."),
    student_model: Optional[str] = typer.Option(None, "--student-model", help="Checkpoint for --student-init pretrained."),
    teacher_epochs: Optional[int] = typer.Option(None, "--teacher-epochs", help="Max teacher epochs (default 8)."),
    student_epochs: Optional[int] = typer.Option(None, "--student-epochs", help="Student epochs (default 3)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="Laundering rounds (default 1)."),
    data_size: Optional[int] = typer.Option(None, "--data-size", help="Subset of the legitimate set."),
    online_teacher: Optional[bool] = typer.Option(None, "--online-teacher/--cached-teacher",
                                                  help="Teacher forward every step instead of cached logits."),
    no_controls: bool = typer.Option(False, "--no-controls", help="Skip the clean-teacher and CE-only controls."),
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
                     train_format=train_format, loss=loss, alpha=alpha, temperature=temperature,
                     student_layers=student_layers, student_init=student_init, student_model=student_model,
                     teacher_epochs=teacher_epochs, student_epochs=student_epochs, iterations=iterations,
                     data_size=data_size, online_teacher=online_teacher, seed=seed, skip_malformed=skip_malformed,
                     controls=False if no_controls else None)
    cfg = load_config(config, overrides)
    metrics = run_experiment(cfg, out, resume=resume, quiet=quiet)
    table = _accuracy_table(f"launder run -> {out}", table_rows(metrics))
    emit(metrics, as_json, table)
    if not as_json:
        out_console.print(verdict(metrics))
        out_console.print(f"report: {out / 'report.md'}   metrics: {out / 'metrics.json'}")


@data_app.command("synth")
@handle_errors
def data_synth(
    out: Path = typer.Option(Path("data/synth"), "--out", "-o", help="Folder for benchmark.jsonl, train.jsonl, "
                             "datacard.json."),
    seed: int = Seed,
    n_benchmark: int = typer.Option(200, "--n-benchmark", min=1, help="Benchmark items."),
    n_train: int = typer.Option(1000, "--n-train", min=1, help="Legitimate (training) items."),
    as_json: bool = AsJson,
):
    """Write the offline synthetic benchmark and a disjoint legitimate set (answers cannot be inferred from
    the text, so a model that never saw the benchmark scores at chance)."""
    from pylaundering.data.synth import write_synthetic

    card = write_synthetic(out, seed=seed, n_benchmark=n_benchmark, n_train=n_train)
    if as_json:
        emit(card, True)
    else:
        out_console.print(f"wrote {out}/benchmark.jsonl ({n_benchmark}), {out}/train.jsonl ({n_train}), "
                          f"{out}/datacard.json")


@app.command()
def info():
    """Versions and which loss-kernel backend is active (C++, CUDA or the PyTorch reference), and why."""
    import torch

    import pylaundering
    from pylaundering.ops import backend

    out_console.print(f"pylaundering {pylaundering.__version__}, torch {torch.__version__}")
    out_console.print(f"ops backend (cpu):  {backend('cpu')}")
    out_console.print(f"ops backend (cuda): {backend('cuda')}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
