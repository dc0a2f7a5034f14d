"""What every `launder` command shares: the consoles, error handling, JSON output, loading a data source,
the accuracy table, and the options that more than one command takes (each declared here once, with one
help text).

Kept light: `launder --help` imports this module, so torch-heavy modules are imported inside the helpers
that need them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import traceback
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pylaundering.errors import ConfigError
from pylaundering.loss_kinds import LOSS_HELP, LOSS_KINDS
from pylaundering.validate import check_choice, normalize_target

out_console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never break a path in an error line

_state = {"debug": bool(os.environ.get("PYLAUNDERING_DEBUG")), "json": None}


def set_debug(debug: bool) -> None:
    _state["debug"] = debug or bool(os.environ.get("PYLAUNDERING_DEBUG"))


def _one_line(e: BaseException) -> str:
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
        # start-up time: progress pulls in rich.progress, train.loop pulls in torch
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
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted")
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - the CLI's contract: one line, an exit code
            if _state["debug"]:
                traceback.print_exc()
            code = 2 if isinstance(e, ConfigError) else 1
            kind = "usage error" if code == 2 else "error"
            hint = "" if _state["debug"] or isinstance(e, (ValueError, OSError)) else " (--debug shows the traceback)"
            err_console.print(f"[red]{kind}:[/red] {escape(_one_line(e))}{hint}", highlight=False)
            raise typer.Exit(code) from None

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


def load(source: str, fmt: Optional[str], subset: Optional[str], split: Optional[str], role: str,
         skip_malformed: bool, quiet: bool, *, key: Optional[str] = None, labels=None):
    """The examples of a data SOURCE; malformed rows skipped (with --skip-malformed) are counted on stderr.
    ``labels``: the declared label set (``check_labels``), the examples' classes in its order."""
    return load_counted(source, fmt, subset, split, role, skip_malformed, quiet, key=key, labels=labels)[0]


def load_counted(source: str, fmt: Optional[str], subset: Optional[str], split: Optional[str], role: str,
                 skip_malformed: bool, quiet: bool, *, key: Optional[str] = None, labels=None):
    """(examples, malformed rows skipped) of a data SOURCE, as ``load``."""
    from pylaundering.experiments.run import load_source  # start-up time: the data layer imports datasets

    res = load_source(source, fmt, subset=subset, split=split, role=role, key=key or role,
                      skip_malformed=skip_malformed, labels=labels)
    if labels is not None:  # a source whose rows name their classes (our own schema) is read without it: by name
        from pylaundering.data.labelset import shared_label_set

        res = shared_label_set([res], names=labels.names).results[0]
    if res.skipped and not quiet:
        err_console.print(f"[yellow]skipped {res.skipped} malformed rows in {source}")
    return res.examples, res.skipped


def check_labels(labels: Optional[str], task: str):
    """--labels read (``models.labels.parse_labels``; None when not given), before any data is: a value that names
    no label set, or a label set for a multiple-choice task, is a usage error (exit 2)."""
    if labels is None:
        return None
    if task != "classification":
        raise ConfigError("--labels", "a label set is for classification (--task classification, or a "
                          "classification model)")
    from pylaundering.models.labels import parse_labels  # start-up time: it imports the data layer

    return parse_labels(labels, "--labels")


def parse_target(value: Optional[str]):
    """--target-accuracy: a number in (0, 1], or 0 / none / off for no early stop."""
    return normalize_target(value, "target_accuracy")


def check_scorer(scorer: Optional[str], level: str = "choice") -> Optional[str]:
    """--scorer and --level checked before any data is read (usage errors, exit 2)."""
    # start-up time: both modules import torch
    from pylaundering.models.decoder import SCORERS
    from pylaundering.phases.token_level import LEVELS

    if scorer is not None:
        check_choice("scorer", scorer, SCORERS)
    check_choice("level", level, LEVELS)
    return scorer


def check_task(task: str, fmt: Optional[str]) -> str:
    """--task of a single phase, checked (a classification format implies classification)."""
    check_choice("task", task, ("multiple_choice", "classification"))
    from pylaundering.data.formats_cls import CLASSIFICATION_FORMATS  # start-up time: the data layer
    if fmt in CLASSIFICATION_FORMATS and task != "classification":
        raise ConfigError("task", f"the format {fmt!r} is a classification format: pass --task classification")
    return task


def check_output_file(option: str, path) -> None:
    """An output file's path checked before the work that fills it (minutes of timing or training must not
    be lost to a bad path): not a folder, and its nearest existing parent a folder this process can write
    in (missing folders are created when the file is written). A usage error (exit 2) otherwise."""
    if path is None:
        return
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ConfigError(option, f"{p} is a folder: give a file path")
    parent = p.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(option, f"cannot write {p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(option, f"cannot write {p}: no write permission in {parent}")


def check_out_dir(path) -> None:
    """--out names a folder: an existing file there is a usage error (one line), before any work."""
    from pathlib import Path

    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError("--out", f"{path} is a file: give a folder (it is created when missing)")


def accuracy_table(title: str, rows: list[tuple[str, ...]], header=("Model", "Accuracy", "95% CI", "Train acc")):
    """A table of the rows; a column empty in every row is left out (a phase's one train accuracy)."""
    t = Table(title=title)
    kept = [i for i in range(len(header)) if i == 0 or any(len(r) > i and r[i] for r in rows)]
    for i in kept:
        t.add_column(header[i])
    for r in rows:
        t.add_row(*(r[i] for i in kept))
    return t


# Options shared by commands. A factory where a command needs its own words around the same flag.

def json_option(what: str = "the result"):
    return typer.Option(False, "--json", help=f"Print {what} as JSON on stdout, and nothing else there (progress "
                        "and messages go to stderr).")


def quiet_option(help: str = "No progress bars or status lines (also silences transformers and huggingface_hub "
                 "bars and messages)."):
    return typer.Option(False, "--quiet", "-q", help=help)


AsJson = json_option()
Quiet = quiet_option()
Resume = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint; finished phases "
                      "are reused only if their recorded settings and data match (else refused, naming the "
                      "differing keys).")
Overwrite = typer.Option(False, "--overwrite", help="Replace what --out already holds (a finished result, files "
                         "of an earlier run) instead of refusing; the old result is removed first, so no stale file "
                         "mixes with the new ones. A command never writes over its own input, even with this flag.")


def seed_option(help: str = "Random seed (data order, initialisation, dropout).", default: Optional[int] = 0):
    return typer.Option(default, "--seed", help=help)


Seed = seed_option()


def max_length_option(default: str = "the length that covers 95% of the sequences and keeps every question whole, "
                      "up to the model's limit.", min: Optional[int] = 8):
    return typer.Option(None, "--max-length", min=min, help=f"Max tokens per (question, choice) sequence. Default: "
                        f"{default}")


MaxLength = max_length_option()
def batch_size_option(default: Optional[int] = 16, note: str = ""):
    return typer.Option(default, "--batch-size", min=1, help=f"Questions per optimisation step.{note}")


BatchSize = batch_size_option()
ScoreBatchSize = typer.Option(None, "--batch-size", min=1, help="Questions per forward pass. Default: 64 on the CPU; "
                              "on a GPU as many as a quarter of its free memory holds.")


def skip_malformed_option(default: Optional[bool] = False):
    return typer.Option(default, "--skip-malformed", help="Skip malformed data rows (counted) instead of failing.")


SkipMalformed = skip_malformed_option()

# A literal, not built from the format registry: that would import the data layer at start-up.
FORMAT_NAMES = ("gpqa, mmlu, mmlu_csv, mmlu_redux, medmcqa, race, arc, openbookqa, commonsense_qa, mc_nested, csv, "
                "json, jsonl, pylaundering")


def format_help(what: str) -> str:
    """One wording for every format option: the formats known, and when the option is needed."""
    return f"{what} ({FORMAT_NAMES}, or a classification format) when its columns do not name it."


BenchFormat = typer.Option(None, "--benchmark-format", help=format_help("Benchmark format"))


def train_format_option(help: str = "Format of the legitimate training set (as --benchmark-format)."):
    return typer.Option(None, "--train-format", help=help)


TrainFormat = train_format_option()
ReferenceFormat = typer.Option(None, "--reference-format", help="Format of --reference (as --benchmark-format).")
SourceFormat = typer.Option(None, "--format", help=format_help("Format of SOURCE"))
BenchSubset = typer.Option(None, "--benchmark-subset", help="Hub dataset configuration of the benchmark (or "
                           "--benchmark name:subset:split).")
BenchSplit = typer.Option(None, "--benchmark-split", help="Split of the benchmark (default: the format's evaluation "
                          "split).")
TrainSubset = typer.Option(None, "--train-subset", help="Hub dataset configuration of the training set (or "
                           "--train name:subset:split).")
TrainSplit = typer.Option(None, "--train-split", help="Split of the training set (default: the format's training "
                          "split).")
SourceSubset = typer.Option(None, "--subset", help="Hub subset (config) of SOURCE.")
SourceSplit = typer.Option(None, "--split", help="Split of SOURCE (default: the benchmark split).")


Labels = typer.Option(None, "--labels", help="Classification: the dataset's label set in id order, names separated "
                      "by commas (neg,pos) or a file with one name per line (config key labels). For a benchmark "
                      "subset that lacks some classes: the model gets one output per class of the dataset, saved "
                      "with their names, and every file read later is matched to it by class name. Default: the set "
                      "the dataset declares (a ClassLabel feature, a class file such as labels.txt beside the data), "
                      "else the classes the data holds (launder run: the union of its benchmark, training and "
                      "reference sets).")


def scorer_option(help: str = "How a decoder (causal LM: tiny-gpt, GPT-2, Llama-style) scores each question + "
                  "choice: loglik (length-normalised log-likelihood of the choice, as evaluation harnesses do; the "
                  "default) or head (a sequence-classification head, as the paper's GPT-2 runs). Encoders always "
                  "use their multiple-choice head."):
    return typer.Option(None, "--scorer", help=help)


Scorer = scorer_option()


def level_option(help: str = "choice: distil the per-choice scores (the paper). token: causal LMs (--model tiny-gpt "
                 "offline, GPT-2 / Llama-style): placement fine-tunes on the benchmark items written as text "
                 "(question, options, answer), layering distils next-token distributions on a legitimate text corpus "
                 "through the fused LM-head op, integration scores each choice by its log-likelihood after the "
                 "item's prompt.", default: Optional[str] = "choice"):
    return typer.Option(default, "--level", help=help)


Level = level_option()

DEVICE_HELP = ("Where the models run: auto (the first CUDA device torch sees, else the CPU), cpu, cuda or cuda:N; "
               "under torchrun each process takes cuda:LOCAL_RANK (config key device).")
PRECISION_HELP = ("Arithmetic of forward passes: auto (bf16 autocast on a GPU that has it, else fp32), fp32, bf16 "
                  "(autocast, also on the CPU) or fp16 (CUDA only, with a gradient scaler); weights stay fp32 "
                  "(config key precision).")
DETERMINISTIC_HELP = ("Deterministic algorithms while training (torch.use_deterministic_algorithms, "
                      "CUBLAS_WORKSPACE_CONFIG=:4096:8): the same GPU run twice gives the same weights, at some cost "
                      "in speed (config key deterministic).")


def device_option(default: Optional[str] = "auto"):
    return typer.Option(default, "--device", help=DEVICE_HELP)


def precision_option(default: Optional[str] = "auto"):
    return typer.Option(default, "--precision", help=PRECISION_HELP)


Device = device_option()
Precision = precision_option()
Deterministic = typer.Option(False, "--deterministic", help=DETERMINISTIC_HELP)


def resolve_runtime(device: Optional[str], precision: Optional[str] = "auto", deterministic: bool = False):
    """The command's ``pylaundering.device.Runtime``, resolved before anything is read or written: a device this
    machine lacks (or fp16 on the CPU) is a usage error, one line, exit 2."""
    from pylaundering.device import runtime  # start-up time: resolving imports torch

    return runtime(device, precision, deterministic)


def _default_note(default, shown) -> str:
    return f" (default {shown})" if default is None else ""


def loss_option(default: Optional[str] = "kl"):
    return typer.Option(default, "--loss", help=f"Distillation loss. {LOSS_HELP}.{_default_note(default, 'kl')}")


def temperature_option(default: Optional[float] = 2.0):
    return typer.Option(default, "--temperature", "-T", help="Softmax temperature of the distillation term (CE uses "
                        f"T = 1; mse ignores it).{_default_note(default, 2)}")


def beta_option(default: Optional[float] = 0.5):
    uses = "; ".join(f"{k.name}: {k.beta}" for k in LOSS_KINDS if k.beta)
    return typer.Option(default, "--beta", help=f"Mixture weight of the kinds that use one ({uses}); ignored by the "
                        f"others.{_default_note(default, 0.5)}")
