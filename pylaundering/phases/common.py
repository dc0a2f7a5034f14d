"""What every phase shares: resolving a model name into a folder, tokenising examples, checking that
a student can be built, and the record that makes ``--resume`` safe (errors: ``pylaundering.errors``).

Overwrite: a phase folder holding a finished result (``phase_finished``) is refused without ``resume``
(reuse it) or ``overwrite`` (replace it: its results are removed first); ``check_outputs`` is the one
check every command uses before writing (never over its own input; over an existing output only when
told). Locks: a phase holds its folder's lock (``pylaundering.lock``) while it runs (``phase_folder``).

Resume record: each phase writes ``phase.json`` (its parameters and data hash) when it starts and
copies them into ``metrics.json`` (key ``params``) when it finishes. ``resume`` reuses a finished
phase or continues its checkpoint only when the request has the same parameters and data; a
mismatch is refused with one line naming the differing keys.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.batching import EncodedExamples, choose_max_length, classification_lengths, encode_examples
from ..data.schema import MCExample
from ..device import Runtime, as_runtime
from ..errors import ConfigError, ModelError, ResumeMismatch
from ..lock import locked
from ..models import load_tokenizer, resolve_model
from ..models.decoder import build_tiny_gpt
from ..models.loading import is_decoder
from ..models.saving import quiet_transformers as _quiet_transformers
from ..models.tiny import build_tiny_model
from ..train import DEFAULT_TARGET_ACCURACY  # noqa: F401 - re-exported: one default, one place
from ..train.checkpoint import read_json, write_json
from ..train.distributed import is_main, on_main, use_device

#: With no --max-length, sequences are capped at the length covering this share of them.
MAX_LENGTH_COVERAGE = 0.95


def resolve_base(model: str, texts_from: Sequence[MCExample], workdir: Path, seed: int) -> str:
    """A loadable folder or hub name for ``model``; ``tiny`` (an encoder) and ``tiny-gpt`` (a decoder)
    are built from the given examples."""
    if model == "tiny":
        return str(build_tiny_model(example_texts(texts_from), workdir / "base-tiny", seed=seed))
    if model == "tiny-gpt":
        return str(build_tiny_gpt(example_texts(texts_from), workdir / "base-tiny-gpt", seed=seed))
    return resolve_model(model)


def example_texts(examples: Sequence[MCExample]):
    for e in examples:
        yield ((e.context + " ") if e.context else "") + e.question
        yield from e.choices


@dataclass
class Encoded:
    tokenizer: object
    encoded: EncodedExamples

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    @property
    def max_length(self) -> int:
        return self.encoded.max_length


def model_max_length(model_path: str, tokenizer=None) -> int | None:
    """The longest sequence the model accepts: its position embeddings, or the tokenizer's limit."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:  # transformers uses 1e30 for "unknown"
        limits.append(tok_max)
    try:
        from transformers import AutoConfig

        positions = getattr(AutoConfig.from_pretrained(resolve_model(model_path)), "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limits.append(positions)
    except Exception:  # noqa: BLE001 - no config: the tokenizer's limit (or none) stands
        pass
    return min(limits) if limits else None


def choose_length(examples: Sequence[MCExample], tokenizer, model_path: str, task: str = "multiple_choice") -> int:
    """The max_length covering MAX_LENGTH_COVERAGE of the (question, choice) sequences (classification:
    every text), capped at the model's limit (``pylaundering.data.choose_max_length``)."""
    model_max = model_max_length(model_path, tokenizer)
    if task == "classification":
        lengths = sorted(classification_lengths(examples, tokenizer))
        if not lengths:
            return 8
        # every text whole, up to the model's limit: a cut text can lose what decides its class (batches
        # are padded to their own longest text, so a long outlier costs only its batch)
        chosen = lengths[-1]
        return max(8, min(chosen, model_max) if model_max else chosen)
    return choose_max_length(examples, tokenizer, coverage=MAX_LENGTH_COVERAGE, model_max=model_max)


def encode(model_path: str, examples: Sequence[MCExample], max_length: int | None,
           task: str = "multiple_choice") -> Encoded:
    """Tokenise with ``model_path``'s tokenizer; ``max_length=None`` chooses it from the examples."""
    tok = load_tokenizer(model_path)
    if max_length is None:
        max_length = choose_length(examples, tok, model_path, task)
    causal = task == "multiple_choice" and is_decoder(model_path)
    return Encoded(tok, encode_examples(examples, tok, max_length=max_length, task=task, causal=causal))


def num_labels(examples: Sequence[MCExample], task: str) -> int | None:
    """The label count of classification examples (None for multiple choice); they must share one
    label set (the choices of each example are the dataset's label names)."""
    if task != "classification":
        return None
    sets = {e.choices for e in examples}
    if len(sets) != 1:
        shown = "; ".join(", ".join(names) for names in sorted(sets)[:3])
        raise ConfigError("task", f"classification examples must share one label set, found {len(sets)}: {shown}")
    return len(next(iter(sets)))


def class_names(examples: Sequence[MCExample], task: str) -> tuple[str, ...] | None:
    """The label set of classification examples (``num_labels`` checks they share one), written into the head
    of the model trained on them (``load_model(label_names=)``); None for multiple choice."""
    if num_labels(examples, task) is None or not examples:
        return None
    return examples[0].choices


@contextmanager
def timed(timings: dict, name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - t0, 2)


def base_layers(model_path: str) -> int | None:
    """The number of hidden layers in ``model_path``'s config (None when it has no such field)."""
    from transformers import AutoConfig

    _quiet_transformers()
    path = resolve_model(model_path)
    local = Path(path).expanduser()
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path):
        raise ModelError(f"model {model_path!r}: no such folder")
    if local.is_dir() and not (local / "config.json").exists():
        raise ModelError(f"model {model_path!r}: the folder has no config.json (not a save_pretrained folder)")
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - named in one line by the caller's error handling
        hint = "" if local.exists() else " (not a local folder; hub names need network access)"
        raise ModelError(f"cannot load the config of model {model_path!r}{hint}: {e}") from e
    return getattr(config, "num_hidden_layers", None)


def check_student(base_path: str, *, student_layers: int | None, student_init: str, student_model: str | None,
                  key_prefix: str = "") -> None:
    """Before any training: the student can be built (layers within the base, a loadable --student-model)."""
    if student_init == "pretrained":
        base_layers(student_model)  # raises ModelError naming the path when it cannot be loaded
        return
    if student_layers is None:
        return
    total = base_layers(base_path)
    if total is not None and student_layers > total:
        raise ConfigError(f"{key_prefix}student_layers", f"{student_layers} is more than the {total} layers of the "
                          f"base model {base_path}")


# ---------------------------------------------------------------------------------------------
# The resume record


def differences(recorded: dict, requested: dict) -> list[str]:
    """Keys whose values differ; a key absent on one side equals None (a setting added later with
    a None default does not make an older record differ)."""
    return sorted(k for k in set(recorded) | set(requested) if recorded.get(k) != requested.get(k))


def mismatch_line(what: str, recorded: dict, requested: dict) -> str:
    keys = differences(recorded, requested)
    shown = ", ".join(f"{k} ({recorded.get(k)!r} -> {requested.get(k)!r})" for k in keys[:6])
    more = f" and {len(keys) - 6} more" if len(keys) > 6 else ""
    return (f"cannot resume {what}: it was run with different settings: {shown}{more}; "
            "use a new --out or the original settings")


# ---------------------------------------------------------------------------------------------
# Overwriting and locking


def exists_hint(resume: bool = True) -> str:
    """How to get past a refusal to write over an existing result."""
    return "pass --resume to reuse it or --overwrite to replace it" if resume else "pass --overwrite to replace it"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: Iterable[Path], *, overwrite: bool, inputs: Iterable[Path] = (),
                  resume_hint: bool = False, what: str = "") -> list[Path]:
    """The check before a command writes ``outputs``: FileExistsError (one line naming the file) for an
    output that is one of the command's ``inputs`` (files, or folders whose files are inputs; refused even
    with ``overwrite``), or that exists already and ``overwrite`` is off. Returns the outputs that exist
    (``overwrite``: the caller removes them before writing)."""
    outputs = [Path(p) for p in outputs]
    files = []
    for p in (Path(x) for x in inputs):
        files += [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
    for out in outputs:
        for f in files:
            inside = out.is_dir() and Path(os.path.realpath(f)).is_relative_to(os.path.realpath(out))
            if inside or (out.exists() and _same_file(out, f)):
                raise FileExistsError(f"{out} is an input of this command ({f}): writing there would replace it; "
                                      "choose another --out")
    existing = [p for p in outputs if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}{' (' + what + ')' if what else ''} exists: {exists_hint(resume_hint)}")
    return existing


def remove(paths: Iterable[Path]) -> None:
    """Removes files, folders and links (a link, never what it points at)."""
    for p in paths:
        p = Path(p)
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        elif p.is_dir():
            shutil.rmtree(p)


def phase_finished(out: Path) -> bool:
    """A phase folder with a finished result: its metrics and its saved model."""
    return (out / "metrics.json").exists() and (out / "model" / "config.json").exists()


#: What a phase writes into its folder (removed by --overwrite; a tiny base and the logit cache stay:
#: they are rebuilt or keyed by content).
PHASE_OUTPUTS = ("metrics.json", "phase.json", "checkpoint.pt", "model")


def begin_phase(out: Path, *, resume: bool, overwrite: bool, what: str) -> None:
    """Before a phase touches ``out``: refuses a finished result without ``resume`` or ``overwrite``; with
    ``overwrite`` removes the old result (model, metrics, record, checkpoint, rounds)."""
    if resume and overwrite:
        raise ConfigError("overwrite", "give --resume (reuse the finished phase) or --overwrite (replace it), "
                          "not both")
    if phase_finished(out) and not resume:
        check_outputs([out], overwrite=overwrite, resume_hint=True, what=f"a finished {what}")
    if overwrite:
        on_main(lambda: remove([out / name for name in PHASE_OUTPUTS] + sorted(out.glob("round-*"))))


def phase_runtime(device: Runtime | str | None) -> Runtime:
    """A phase's ``device`` argument resolved (``device.as_runtime``: a Runtime, a device name, None for auto) and
    named as the process's device, before torchrun's process group starts (NCCL for a GPU, gloo for the CPU)."""
    rt = as_runtime(device)
    use_device(rt.device)
    return rt


def phase_folder(what: str):
    """Decorates a phase (``place``, ``layer``): its ``device`` is resolved first (``phase_runtime``: a device
    that is not there fails before anything is touched), its ``out_dir`` is locked while it runs (rank 0 under
    torchrun; waiting instead of failing inside ``lock.waiting()``), and ``begin_phase`` checks it first
    with the call's ``resume`` and ``overwrite``."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):

            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            bound.arguments["device"] = phase_runtime(bound.arguments.get("device"))
            out = Path(bound.arguments["out_dir"])
            holding = locked(out, what=what, quiet=bool(bound.arguments.get("quiet"))) if is_main() else (
                contextlib.nullcontext())
            with holding:
                begin_phase(out, resume=bound.arguments["resume"], overwrite=bound.arguments["overwrite"], what=what)
                return fn(*bound.args, **bound.kwargs)

        return wrapper

    return decorate


#: What a layering at alpha 0 does not read (no teacher): recorded as None since 2026-12-07, as values before
UNREAD_AT_ALPHA_0 = ("loss", "temperature", "beta", "online_teacher", "teacher_topk")


def upgrade_record(recorded: dict) -> dict:
    """A resume record written by an older version, in today's terms: a layering at alpha 0 recorded the loss, T,
    beta and teacher settings it never read; they are None now, so such a phase still resumes."""
    if recorded.get("phase") == "layering" and recorded.get("alpha") == 0:
        return {**recorded, **{k: None for k in UNREAD_AT_ALPHA_0 if k in recorded}}
    return recorded


def start_phase(out: Path, params: dict, *, resume: bool, finished: bool) -> dict | None:
    """Checks ``params`` against the phase record in ``out`` and writes the record.

    Returns the finished phase's metrics when ``resume`` and the phase finished with the same
    parameters; None when the phase must (continue to) run. Raises ResumeMismatch on --resume
    with different parameters, or when a finished phase has no record to check against.
    """
    record = out / "phase.json"
    metrics_path = out / "metrics.json"
    if resume and (record.exists() or finished):
        recorded = read_json(record)["params"] if record.exists() else None
        if recorded is None and finished:
            recorded = read_json(metrics_path).get("params")
        if recorded is None:
            raise ResumeMismatch(f"cannot resume {out}: it records no parameters to check (written by an older "
                                 "version); use a new --out")
        recorded = upgrade_record(recorded)
        if differences(recorded, params):
            raise ResumeMismatch(mismatch_line(str(out), recorded, params))
        if finished:
            return read_json(metrics_path)
    elif not resume and (out / "checkpoint.pt").exists():
        (out / "checkpoint.pt").unlink()  # a fresh start never continues someone else's checkpoint
    out.mkdir(parents=True, exist_ok=True)
    write_json({"params": params}, record)
    return None


# ---------------------------------------------------------------------------------------------
# What a phase carries besides its spec


@dataclass(frozen=True)
class PhaseRun:
    """Where a phase writes and how it runs (none of it is in the resume record but the precision, which
    ``precision_params`` adds)."""

    out: Path
    resume: bool = False
    quiet: bool = False
    description: str = ""
    runtime: Runtime = Runtime()


def precision_params(rt: Runtime) -> dict:
    """The resume record's part of the precision: none at fp32 (a record written before precisions existed
    still matches), ``{"precision": ...}`` otherwise (a bf16 checkpoint is not continued at fp32). The device
    is not recorded: a run resumes on another device."""
    return {} if rt.precision == "fp32" else {"precision": rt.precision}


@dataclass
class Trained:
    """What training returned, for the phase's metrics: the loop's result, the batcher and config it
    ran with, the timings, the sequence length used and (layering) where the teacher's signal came from."""

    result: Any
    batcher: Any
    cfg: Any
    timings: dict
    length: int | None = None
    info: dict | None = None
