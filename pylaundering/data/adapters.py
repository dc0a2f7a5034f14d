"""Adapters from public multiple-choice schemas to `MCExample`.

A source is a local file, a local folder (every file of the format's types inside,
sorted by name, not recursive), a local folder laid out as a Hugging Face dataset
repository (a README.md whose YAML lists `configs:`, or `data/<split>-*` files; read
with `datasets.load_dataset`, so configs and splits work as on the hub) or a hub
dataset name; `name:subset:split` is shorthand for the subset and split (`parse_source`).
Reading rows and
converting them are separate: readers (JSONL, JSON, CSV/TSV, Parquet, hub) yield raw
records with a row number, and a format's converter turns one record into one example.
New formats are one decorated function::

    @register_format("myformat")
    def _myformat(record, ctx):
        return MCExample(id=ctx.default_id, question=..., choices=..., label=...)

Converters raise `DataError` naming only the field; `load_examples` adds the source
and row, so every error message points at the exact cell to fix.
"""

from __future__ import annotations

import ast
import csv
import functools
import hashlib
import io
import json
import os
import re
import socket
import threading
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schema import MCExample
from ..errors import DataError

__all__ = [
    "FORMATS",
    "Adapter",
    "LoadResult",
    "RowContext",
    "ROLES",
    "hub_offline_reason",
    "load_examples",
    "parse_source",
    "register_format",
]

#: File types the readers understand; a format may restrict itself to a subset.
READABLE = (".jsonl", ".json", ".csv", ".tsv", ".parquet")

#: Well-known hub datasets, so `load_examples("cais/mmlu", subset="all", split="test")`
#: needs no explicit format. Keys are lower-case.
HUB_FORMATS = {
    "cais/mmlu": "mmlu",
    "edinburgh-dawg/mmlu-redux": "mmlu_redux",
    "edinburgh-dawg/mmlu-redux-2.0": "mmlu_redux",
    "idavidrein/gpqa": "gpqa",
    "openlifescienceai/medmcqa": "medmcqa",
    "ehovy/race": "race",
    "allenai/ai2_arc": "arc",
}

#: The subset a hub dataset needs when none is given (keys lower-case). MMLU's `all` has
#: every subject (and its `auxiliary_train` split); RACE's `all` joins middle and high;
#: ARC's Challenge set is the one usually reported; GPQA's main set (diamond is a subset).
HUB_DEFAULT_SUBSETS = {
    "cais/mmlu": "all",
    "ehovy/race": "all",
    "allenai/ai2_arc": "ARC-Challenge",
    "idavidrein/gpqa": "gpqa_main",
}

#: What a dataset is loaded as; picks the default split where none is given.
ROLES = ("benchmark", "train")
DEFAULT_SPLITS = {"benchmark": "test", "train": "train"}

#: Our field names, as accepted in a generic format's `columns` mapping.
FIELDS = ("id", "question", "choices", "label", "context", "subject")


@dataclass(frozen=True)
class RowContext:
    """What a converter may need besides the record itself."""

    default_id: str  # `<file name>:<row>` (or `<dataset>/<subset>/<split>:<row>`), stable across runs
    group: str | None  # file stem or hub subset: per-subject datasets use it as the subject
    columns: Mapping[str, str]  # generic formats: our field name -> the source's column(s)
    explicit: frozenset[str]  # fields the user mapped explicitly (these become required)
    drop_erroneous: bool


Converter = Callable[[Mapping[str, Any], RowContext], "MCExample | None"]


@dataclass(frozen=True)
class Adapter:
    """A registered format: its converter and the file types it reads from folders."""

    name: str
    convert: Converter  # returns None for a row deliberately dropped (drop_erroneous, no gold label)
    extensions: tuple[str, ...]
    csv_delimiter: str
    uses_columns: bool
    description: str
    default_splits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    fields: tuple[str, ...] = FIELDS  # the fields a generic format's `columns` may map
    # Called once on all the examples of a load (e.g. to fix a label set seen only as a whole).
    finalize: Callable[[list[MCExample]], list[MCExample]] | None = None
    # A CSV without a header row: the names of its columns, in order.
    csv_fieldnames: tuple[str, ...] | None = None


FORMATS: dict[str, Adapter] = {}

#: How to name a format, on the command line and in the API (used in error messages).
FORMAT_HINT = "pass the format (--benchmark-format / --train-format on the command line, format= in the API)"


def register_format(
    name: str,
    *,
    extensions: Sequence[str] = READABLE,
    csv_delimiter: str = ",",
    uses_columns: bool = False,
    default_splits: Mapping[str, str] | None = None,
    fields: Sequence[str] = FIELDS,
    finalize: Callable[[list[MCExample]], list[MCExample]] | None = None,
    csv_fieldnames: Sequence[str] | None = None,
) -> Callable[[Converter], Converter]:
    """Register `convert(record, ctx) -> MCExample | None` as format `name`.

    `default_splits` maps a role ("benchmark", "train") to the split loaded from a hub
    dataset or dataset repository folder when none is given; unspecified roles use
    `test` for benchmarks and `train` for training data. `fields` are the names a
    `columns` mapping may use (uses_columns formats); `finalize(examples)`, when given,
    is applied once to all the examples of a load before they are returned.
    `csv_fieldnames` names the columns of CSV files that have no header row.
    """
    unknown = set(extensions) - set(READABLE)
    if unknown:
        raise ValueError(f"format {name!r}: no reader for {sorted(unknown)}; readable: {READABLE}")

    def decorate(convert: Converter) -> Converter:
        if name in FORMATS:
            raise ValueError(f"format {name!r} is already registered")
        doc = (convert.__doc__ or "").strip().splitlines()
        FORMATS[name] = Adapter(
            name=name,
            convert=convert,
            extensions=tuple(extensions),
            csv_delimiter=csv_delimiter,
            uses_columns=uses_columns,
            description=doc[0] if doc else "",
            default_splits={**DEFAULT_SPLITS, **(default_splits or {})},
            fields=tuple(fields),
            finalize=finalize,
            csv_fieldnames=tuple(csv_fieldnames) if csv_fieldnames else None,
        )
        return convert

    return decorate


@dataclass
class LoadResult:
    """The examples of one source, with counts of what was left out and why."""

    examples: list[MCExample]
    skipped: int  # malformed rows skipped because skip_malformed=True
    source: str
    format: str
    dropped: int = 0  # rows dropped on purpose (drop_erroneous=True; classification rows without a label)
    files: list[str] = field(default_factory=list)  # local files matched, in reading order
    subset: str | None = None  # the subset (config) read, for hub datasets and repository folders
    split: str | None = None  # the split read, likewise


# --------------------------------------------------------------------------- field helpers


def _present(record: Mapping[str, Any], name: str) -> bool:
    value = record.get(name)
    return value is not None and not (isinstance(value, str) and not value.strip())


def _text(record: Mapping[str, Any], name: str) -> str:
    """A required text cell, stripped; numbers are accepted (choices are often numeric)."""
    if not _present(record, name):
        raise DataError("missing or empty", field=name)
    return _as_text(record[name], name)


def _as_text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"expected text, got {type(value).__name__}", field=name)


def _optional_text(record: Mapping[str, Any], name: str) -> str | None:
    return _as_text(record[name], name) if _present(record, name) else None


def _list(record: Mapping[str, Any], name: str) -> list[str]:
    """A required list-of-texts cell."""
    if not _present(record, name):
        raise DataError("missing or empty", field=name)
    return _text_list(record[name], name)


def _text_list(value: Any, name: str) -> list[str]:
    """A list of choice texts, given as a list or as the text of a list literal.

    CSV files can only hold text, so lists arrive as `['a', 'b']` (Python) or
    `["a", "b"]` (JSON); both parse with `ast.literal_eval`.
    """
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataError(f"expected a list literal, got {_preview(value)}", field=name) from None
    if not isinstance(value, (list, tuple)):
        raise DataError(f"expected a list of choices, got {type(value).__name__}", field=name)
    return [_as_text(item, name) for item in value]


def _preview(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _letters(n: int) -> str:
    return f"A-{chr(ord('A') + n - 1)}"


def _label(value: Any, choices: Sequence[str], name: str, *, allow_text: bool = False) -> int:
    """The 0-based index of the correct choice from an index, a letter or (optionally) text.

    Text matching is only offered where the schema allows it (generic formats): a
    label `"2"` with choices `["1", "2", "3"]` would otherwise be ambiguous, and such
    a row is rejected rather than silently labelled one way.
    """
    n = len(choices)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError("missing or empty", field=name)
    if isinstance(value, bool):
        raise DataError(f"expected an index or a letter, got {value!r}", field=name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < n:
            raise DataError(f"expected an index in 0..{n - 1}, got {value}", field=name)
        return value
    if not isinstance(value, str):
        raise DataError(f"expected an index or a letter, got {_preview(value)}", field=name)

    text = value.strip()
    positional: int | None = None
    if text.isascii() and text.isdigit():
        positional = int(text)
        kind = f"an index in 0..{n - 1}"
    elif len(text) == 1 and text.isascii() and text.isalpha():
        positional = ord(text.upper()) - ord("A")
        kind = f"one of {_letters(n)}"
    textual = choices.index(text) if allow_text and text in choices else None
    if positional is not None and not 0 <= positional < n:
        positional = None
        if textual is None:
            raise DataError(f"expected {kind}, got {value!r}", field=name)
    if positional is not None and textual is not None and positional != textual:
        raise DataError(
            f"ambiguous: {value!r} is both position {positional} and the text of choice {textual};"
            " use a 0-based integer index",
            field=name,
        )
    if positional is None and textual is None:
        also = ", or the text of a choice" if allow_text else ""
        raise DataError(
            f"expected an index in 0..{n - 1} or one of {_letters(n)}{also}, got {_preview(value)}",
            field=name,
        )
    return positional if positional is not None else textual  # type: ignore[return-value]


def _id(record: Mapping[str, Any], name: str, ctx: RowContext) -> str:
    return _as_text(record[name], name) if _present(record, name) else ctx.default_id


# --------------------------------------------------------------------------- formats


@register_format("pylaundering", extensions=(".jsonl",))
def _pylaundering(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """Our own JSONL: id, question, choices, label (0-based), optional context and subject."""
    return MCExample.from_dict(record)


@register_format("gpqa", default_splits={"benchmark": "train", "train": "train"})
def _gpqa(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """GPQA: `Question`, `Correct Answer`, `Incorrect Answer 1..3`, `High-level domain`.

    GPQA stores the correct answer first, so the choices must be shuffled; the order is
    a sort by a hash of (question, choice), the same on every run and every machine
    and independent of any random state.
    """
    question = _text(record, "Question")
    correct = _text(record, "Correct Answer")
    options = [correct] + [_text(record, f"Incorrect Answer {i}") for i in (1, 2, 3)]

    def key(i: int) -> bytes:
        return hashlib.sha256(f"{question}\x1f{options[i]}".encode()).digest()

    order = sorted(range(len(options)), key=key)
    return MCExample(
        id=_id(record, "Record ID", ctx),
        question=question,
        choices=tuple(options[i] for i in order),
        label=order.index(0),
        subject=_optional_text(record, "High-level domain"),
    )


@register_format("mmlu", default_splits={"benchmark": "test", "train": "auxiliary_train"})
def _mmlu(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """MMLU (cais/mmlu): `question`, `choices` (list), `answer` (index or letter), `subject`."""
    choices = _list(record, "choices")
    return MCExample(
        id=ctx.default_id,
        question=_text(record, "question"),
        choices=tuple(choices),
        label=_label(record.get("answer"), choices, "answer"),
        subject=_optional_text(record, "subject"),
    )


#: The original MMLU release (data/{dev,val,test}/<subject>_<split>.csv): no header row.
MMLU_CSV_COLUMNS = ("question", "A", "B", "C", "D", "answer")


@register_format("mmlu_csv", extensions=(".csv",), csv_fieldnames=MMLU_CSV_COLUMNS)
def _mmlu_csv(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """MMLU's original CSVs: no header; question, the four choices, the answer letter; the subject
    is the file name without its split (`abstract_algebra_test.csv` -> `abstract_algebra`)."""
    if record.get(None):  # DictReader's key for cells beyond the named columns
        raise DataError(f"expected {len(MMLU_CSV_COLUMNS)} cells, got {len(MMLU_CSV_COLUMNS) + len(record[None])}")
    choices = [_text(record, c) for c in "ABCD"]
    return MCExample(
        id=ctx.default_id,
        question=_text(record, "question"),
        choices=tuple(choices),
        label=_label(record.get("answer"), choices, "answer"),
        subject=re.sub(r"_(dev|val|test|train)$", "", ctx.group) if ctx.group else None,
    )


@register_format("mmlu_redux", csv_delimiter=";", default_splits={"benchmark": "test", "train": "test"})
def _mmlu_redux(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
    """MMLU-Redux: per-subject files (`;` CSV, choices as a list literal) with `error_type`.

    `error_type` is "ok" for items the re-annotation found sound; with drop_erroneous
    the others (wrong ground truth, unclear question, ...) are dropped. The subject is
    the file name (or the hub subset).
    """
    if ctx.drop_erroneous and _text(record, "error_type").lower() != "ok":
        return None
    choices = _list(record, "choices")
    return MCExample(
        id=ctx.default_id,
        question=_text(record, "question"),
        choices=tuple(choices),
        label=_label(record.get("answer"), choices, "answer"),
        subject=ctx.group,
    )


@register_format("medmcqa", default_splits={"benchmark": "validation", "train": "train"})
def _medmcqa(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """MedMCQA: `question`, `opa`..`opd`, `cop` (0-based), `subject_name`; `exp` is ignored.

    The hub's test split hides the answers (`cop` -1), so a benchmark defaults to `validation`.
    """
    choices = [_text(record, f"op{c}") for c in "abcd"]
    cop = record.get("cop")
    if cop in (-1, "-1"):
        raise DataError("no answer (-1): MedMCQA's test split hides answers; use validation", field="cop")
    return MCExample(
        id=_id(record, "id", ctx),
        question=_text(record, "question"),
        choices=tuple(choices),
        label=_label(cop, choices, "cop"),
        subject=_optional_text(record, "subject_name"),
    )


@register_format("race")
def _race(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """RACE: `article` (the context), `question`, `options` (list), `answer` (letter)."""
    choices = _list(record, "options")
    return MCExample(
        # example_id names the article, shared by its questions, so it is not an item id.
        id=ctx.default_id,
        question=_text(record, "question"),
        choices=tuple(choices),
        label=_label(record.get("answer"), choices, "answer"),
        context=_text(record, "article"),
    )


@register_format("arc")
def _arc(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """ARC-style: `question`, `choices` {"text": [...], "label": [...]}, `answerKey`."""
    raw = record.get("choices")
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raw = None
    if not isinstance(raw, Mapping) or "text" not in raw or "label" not in raw:
        raise DataError('expected {"text": [...], "label": [...]}', field="choices")
    texts = _text_list(raw["text"], "choices")
    keys = _text_list(raw["label"], "choices")
    if len(keys) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(keys)} labels", field="choices")
    answer = _text(record, "answerKey")
    if answer not in keys:
        raise DataError(f"expected one of {keys}, got {answer!r}", field="answerKey")
    return MCExample(
        id=_id(record, "id", ctx),
        question=_text(record, "question"),
        choices=tuple(texts),
        label=keys.index(answer),
    )


def _generic(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """Any table, given `columns` mapping our fields to its columns.

    `choices` names one column holding a list, or several comma-separated columns
    (empty trailing cells are dropped, so 4- and 5-choice items can share a table);
    the label may be a 0-based index, a letter or the text of the correct choice.
    """
    cols = ctx.columns
    spec = cols["choices"]
    if "," in spec:
        cells = [c.strip() for c in spec.split(",")]
        missing = [c for c in cells if c not in record]
        if missing:
            raise DataError("column not found", field=missing[0])
        values = [_optional_text(record, c) for c in cells]
        while values and values[-1] is None:
            values.pop()
        for c, v in zip(cells, values):
            if v is None:
                raise DataError("empty choice before a non-empty one", field=c)
        choices: list[str] = values  # type: ignore[assignment]
    else:
        choices = _list(record, spec)

    def optional(ours: str) -> str | None:
        theirs = cols[ours]
        if ours in ctx.explicit and theirs not in record:
            raise DataError("column not found", field=theirs)
        return _optional_text(record, theirs)

    if len(choices) < 2:
        raise DataError(f"need at least 2 choices, got {len(choices)}", field=spec)
    return MCExample(
        id=optional("id") or ctx.default_id,
        question=_text(record, cols["question"]),
        choices=tuple(choices),
        label=_label(record.get(cols["label"]), choices, cols["label"], allow_text=True),
        context=optional("context"),
        subject=optional("subject"),
    )


register_format("csv", extensions=(".csv", ".tsv"), uses_columns=True)(_generic)
register_format("json", extensions=(".json",), uses_columns=True)(_generic)
register_format("jsonl", extensions=(".jsonl",), uses_columns=True)(_generic)


# --------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class _Stream:
    """Rows of one file or hub split, with how to name them in errors and ids."""

    label: str  # for error messages
    id_prefix: str
    group: str | None
    rows: Iterator[tuple[int, Any]]  # (1-based row, record or DataError for an unreadable row)


def _not_utf8(err: UnicodeDecodeError, data: bytes) -> str:
    byte = data[err.start : err.start + 1].hex() if err.start < len(data) else "??"
    line = data.count(b"\n", 0, err.start) + 1
    return f"not UTF-8 text: byte 0x{byte} at line {line}; re-save the file as UTF-8"


def read_lines(path: Path) -> Iterator[tuple[int, str | DataError]]:
    """(line number, text without the line end) per line, streamed. Each line is decoded on its
    own (a leading BOM dropped), so a line that is not UTF-8 is one malformed row (a DataError)."""
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                byte = raw[err.start : err.start + 1].hex()
                yield lineno, DataError(f"not UTF-8 text: byte 0x{byte} at column {err.start + 1}")


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    for lineno, line in read_lines(path):
        if isinstance(line, DataError):
            yield lineno, line
            continue
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            yield lineno, DataError(f"invalid JSON: {err.msg} (column {err.colno})")


def _read_json(path: Path) -> Iterator[tuple[int, Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(_not_utf8(err, data), source=str(path)) from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON at line {err.lineno}: {err.msg}", source=str(path)) from None
    if not isinstance(parsed, list):
        raise DataError(f"expected a JSON list of objects, got {type(parsed).__name__}", source=str(path))
    yield from enumerate(parsed, 1)


def _read_csv(path: Path, delimiter: str, fieldnames: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row, record in enumerate(csv.DictReader(handle, fieldnames=fieldnames, delimiter=delimiter), 1):
                yield row, record
    except UnicodeDecodeError:
        # The reader decodes ahead of the rows it yields: locate the bad byte in the file.
        data = path.read_bytes()
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(
                _not_utf8(err, data), source=str(path),
                row=_csv_row_at(data, err.start, delimiter, header=fieldnames is None)
            ) from None
        raise


def _csv_row_at(data: bytes, offset: int, delimiter: str, header: bool = True) -> int | None:
    """The 1-based record (header excluded) holding byte `offset`; None for the header."""
    if not header:
        return _csv_row_at(b"\n" + data, offset + 1, delimiter)  # as if an empty header came first
    prefix = data[:offset].decode("utf-8-sig", errors="replace")
    try:
        records = sum(1 for _ in csv.reader(io.StringIO(prefix, newline=""), delimiter=delimiter))
    except csv.Error:
        return None
    if not prefix or prefix.endswith(("\n", "\r")):
        records += 1  # the bad byte starts a new record
    return records - 1 if records > 1 else None


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq  # ships with `datasets`; imported only when needed

    yield from enumerate(pq.read_table(path).to_pylist(), 1)


def _read_file(path: Path, adapter: Adapter) -> Iterator[tuple[int, Any]]:
    suffix = path.suffix.lower()
    if suffix in READABLE and suffix not in adapter.extensions:
        raise DataError(
            f"format {adapter.name!r} reads {', '.join(adapter.extensions)} files, not {suffix}",
            source=str(path),
        )
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path, adapter.csv_delimiter, adapter.csv_fieldnames)
    if suffix == ".tsv":
        return _read_csv(path, "\t")
    if suffix == ".parquet":
        return _read_parquet(path)
    readable = ", ".join(READABLE)
    raise DataError(f"cannot read {suffix or 'extension-less'} files; readable: {readable}", source=str(path))


# --------------------------------------------------------------------------- hub and repositories

#: Seconds the one connection probe may take before the hub counts as unreachable.
PROBE_TIMEOUT = 2.0
_TRUE = {"1", "on", "yes", "true"}


def _probe(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` (DNS included)."""
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo ignores socket timeouts, so the whole attempt runs in a thread we stop waiting for.
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


@functools.lru_cache(maxsize=1)
def hub_offline_reason() -> str | None:
    """Why the Hugging Face hub cannot be reached, or None when it can; decided once per process.

    Offline when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set, or when one TCP
    connection to the hub (HF_ENDPOINT, or through HTTPS_PROXY when set) does not open
    within PROBE_TIMEOUT seconds. `hub_offline_reason.cache_clear()` forgets the answer.
    """
    from urllib.parse import urlsplit

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlsplit(proxy if proxy and "://" in proxy else endpoint)
    host = target.hostname or "huggingface.co"
    port = target.port or (80 if target.scheme == "http" else 443)
    if _probe(host, port, PROBE_TIMEOUT):
        return None
    return f"no connection to {host}:{port} within {PROBE_TIMEOUT:g} s"


def _cached_on_disk(name: str) -> bool:
    """Whether `datasets` may find the hub dataset `name` in its local caches."""
    try:
        import datasets.config
        from huggingface_hub import constants
    except ImportError:
        return False
    candidates = [
        Path(constants.HF_HUB_CACHE) / ("datasets--" + name.replace("/", "--")),
        Path(datasets.config.HF_DATASETS_CACHE) / name.replace("/", "___"),
    ]
    return any(p.exists() or p.with_name(p.name.lower()).exists() for p in candidates)


@contextmanager
def _hub_mode(name: str) -> Iterator[None]:
    """Fail at once when the hub is unreachable, unless `datasets` has the dataset cached.

    A cached dataset is read in offline mode, so `datasets` does not spend ~30 s
    retrying the network first.
    """
    reason = hub_offline_reason()
    if reason is None:
        yield
        return
    if not _cached_on_disk(name):
        raise DataError(
            f"not a local file or folder, and the Hugging Face hub is unreachable ({reason});"
            " pass a local file or folder (a downloaded dataset repository works), or set"
            " HF_ENDPOINT to a reachable mirror",
            source=name,
        )
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Generating train split" progress bars while loading (callers draw their own)."""
    import datasets

    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _is_dataset_repo(path: Path) -> bool:
    """A folder laid out as a Hugging Face dataset repository (read with `datasets`).

    Either a README.md whose YAML header has `configs:`, or a `data/` folder of data
    files (the standard `data/<split>-*.parquet` layout). Other folders are plain.
    """
    if not path.is_dir():
        return False
    readme = path / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        header = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.S)
        if header and re.search(r"^configs\s*:", header.group(1), re.M):
            return True
    data = path / "data"
    return data.is_dir() and any(p.is_file() and p.suffix.lower() in READABLE for p in data.rglob("*"))


def _available(name: str, subset: str | None) -> tuple[list[str] | None, list[str] | None]:
    """(subsets, splits of `subset`) of a dataset, each None when it cannot be listed."""
    import datasets

    try:
        configs = list(datasets.get_dataset_config_names(name))
    except Exception:  # noqa: BLE001 - only used to improve an error message
        configs = None
    if subset is None and configs and len(configs) == 1:
        subset = configs[0]
    try:
        splits = list(datasets.get_dataset_split_names(name, subset))
    except Exception:  # noqa: BLE001 - likewise
        splits = None
    return configs, splits


def _private_cache_dir() -> str:
    """A temporary `datasets` cache folder, removed when the process exits."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="pylaundering-datasets-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _dataset_stream(
    name: str,
    subset: str | None,
    split: str | None,
    *,
    role: str | None,
    adapter: Adapter,
    local: bool,
) -> tuple[_Stream, str | None, str]:
    """Rows of one split via `datasets.load_dataset` (a hub name or a repository folder).

    Returns the stream, the subset and the split read. With no split, the format's
    default for `role` is used; when a dataset lacks it but has a single split, that one.
    """
    import datasets  # imported lazily: it is slow to import and unneeded for local files

    where = "the dataset folder" if local else "from the Hugging Face hub"
    if subset is None and not local:
        subset = HUB_DEFAULT_SUBSETS.get(name.lower())
    explicit = split is not None
    if split is None and role is not None:
        split = adapter.default_splits[role]
    # A local folder is read into a private, temporary cache every time: `datasets` keys its cache
    # on the folder, not on the files' contents, and served an edited file's old rows and schema
    # (seen: a renamed column still missing; force_redownload then failed on the stale schema).
    fresh = {"cache_dir": _private_cache_dir()} if local else {}
    with _quiet_datasets(), (_no_hub() if local else _hub_mode(name)):
        try:
            loaded = datasets.load_dataset(name, subset, split=split, **fresh)
        except Exception as err:  # noqa: BLE001 - re-raised with the hint a user needs
            retry = _diagnose(err, name, subset, split, explicit=explicit, local=local, role=role)
            if retry is None:
                raise DataError(
                    f"could not load {where} ({type(err).__name__}: {err})"
                    + ("" if local else "; if you meant a local path, it does not exist"),
                    source=name,
                ) from err
            split = retry
            loaded = datasets.load_dataset(name, subset, split=split, **fresh)
    if split is None:
        if len(loaded) != 1:
            raise DataError(
                f"pass a split (name:subset:split, split=, or a role); this dataset has {sorted(loaded)}",
                source=name,
            )
        [(split, loaded)] = loaded.items()
    parts = [p for p in (subset, split) if p]
    stem = Path(name).name if local else name.rsplit("/", 1)[-1]
    stream = _Stream(
        label=f"{name} ({', '.join(parts)})",
        id_prefix="/".join([stem, *parts]),
        group=subset,
        rows=enumerate(loaded, 1),
    )
    return stream, subset, split


@contextmanager
def _no_hub() -> Iterator[None]:
    yield


def _diagnose(
    err: Exception,
    name: str,
    subset: str | None,
    split: str | None,
    *,
    explicit: bool,
    local: bool,
    role: str | None,
) -> str | None:
    """For a failed load: raise a DataError naming what exists, or return a split to retry with.

    Only local folders, or hub errors that are ValueErrors (which is how `datasets`
    reports unknown configs and splits), are examined: listing a hub dataset needs the
    network that may just have failed.
    """
    if not (local or isinstance(err, ValueError)):
        return None
    configs, splits = _available(name, subset)
    if configs and (subset not in configs if subset is not None else len(configs) > 1):
        what = f"no subset {subset!r}" if subset is not None else "pass a subset (name:subset:split or subset=)"
        raise DataError(f"{what}; available subsets: {', '.join(configs)}", source=name) from err
    if splits and split is not None and split not in splits:
        if not explicit and len(splits) == 1:
            return splits[0]
        why = "" if explicit else f" (the default for {'a benchmark' if role == 'benchmark' else 'training data'})"
        raise DataError(
            f"no split {split!r}{why}; available splits: {', '.join(splits)}"
            + (f" of subset {subset!r}" if subset else ""),
            source=name,
        ) from err
    return None


def parse_source(spec: str) -> tuple[str, str | None, str | None]:
    """`name[:subset[:split]]` -> (name, subset, split); empty parts are None.

    An existing local path is never split (even with a colon in it), nor is a URL;
    `folder:config:split` works for a local dataset repository folder. Examples:
    `cais/mmlu:all:test`, `allenai/ai2_arc:ARC-Challenge`, `ehovy/race::validation`.
    """
    if ":" not in spec or "://" in spec or Path(spec).expanduser().exists() or re.match(r"^[A-Za-z]:[\\/]", spec):
        return spec, None, None
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise DataError("expected name[:subset[:split]]", source=spec)
    name, subset, split = (parts + [""] * 3)[:3]
    return name, subset or None, split or None


def _looks_like_path(source: str) -> bool:
    """Hub names are `name` or `owner/name`; anything else that does not exist is a missing path."""
    return (
        source.startswith((".", "/", "~"))
        or "\\" in source
        or source.count("/") > 1
        or Path(source).suffix.lower() in READABLE
    )


def _local_files(path: Path, format: str | None) -> list[Path]:
    if path.is_file():
        return [path]
    extensions = FORMATS[format].extensions if format else READABLE
    files = sorted(
        p for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
    )
    if not files:
        raise DataError(f"no {', '.join(extensions)} files in this folder", source=str(path))
    return files


#: The columns that identify a format in a local file's first record (a CSV's header), most
#: specific first: the first format whose columns are all present, and which reads the file's
#: type, is taken. The public layouts: GPQA's CSV, MedMCQA's and RACE's records, ARC's, MMLU's and
#: MMLU-Redux's hub parquet (MMLU-Redux's `;` CSVs too), SNLI's; then our own schema (JSONL, or a
#: CSV / JSON table with our column names) and text classification (`text`, `label`).
SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(columns)) for name, columns in (
        ("gpqa", ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")),
        ("medmcqa", ("question", "opa", "opb", "opc", "opd", "cop")),
        ("race", ("article", "question", "options", "answer")),
        ("arc", ("question", "choices", "answerKey")),
        ("mmlu_redux", ("question", "choices", "answer", "error_type")),
        ("pylaundering", ("question", "choices", "label")),
        ("csv", ("question", "choices", "label")),
        ("json", ("question", "choices", "label")),
        ("mmlu", ("question", "choices", "answer")),
        ("snli", ("premise", "hypothesis", "label")),
        ("classification", ("text", "label")),
    )
)


def _first_columns(path: Path, delimiter: str) -> frozenset[str] | None:
    """The column names of a file's first record (a CSV's header read with `delimiter`), or None
    when the file has none or cannot be read (loading it names the problem)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return frozenset(pq.read_schema(path).names)
        readers = {".csv": lambda: _read_csv(path, delimiter), ".tsv": lambda: _read_csv(path, "\t"),
                   ".jsonl": lambda: _read_jsonl(path), ".json": lambda: _read_json(path)}
        if suffix not in readers:
            return None
        for _, record in readers[suffix]():
            return frozenset(record) if isinstance(record, Mapping) else None
    except Exception:  # noqa: BLE001 - only a guess: an unreadable file is reported when it is loaded
        return None
    return None


def infer_format(path: Path) -> tuple[str | None, frozenset[str] | None]:
    """(the format `SIGNATURES` recognise in the file's columns or None, the columns seen)."""
    seen: dict[str, frozenset[str] | None] = {}
    suffix = path.suffix.lower()
    for name, needed in SIGNATURES:
        adapter = FORMATS.get(name)
        if adapter is None or suffix not in adapter.extensions:
            continue
        if adapter.csv_delimiter not in seen:
            seen[adapter.csv_delimiter] = _first_columns(path, adapter.csv_delimiter)
        columns = seen[adapter.csv_delimiter]
        if columns is not None and needed <= columns:
            return name, columns
    if suffix == ".csv" and _is_mmlu_csv(path):
        return "mmlu_csv", None
    return None, seen.get(",", next(iter(seen.values()), None))


def _is_mmlu_csv(path: Path) -> bool:
    """Whether the first row looks like one of MMLU's headerless rows: six cells, the last an
    answer letter (a header row would name its columns)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return len(first) == len(MMLU_CSV_COLUMNS) and first[-1].strip() in ("A", "B", "C", "D")


def _infer_local(source: str, files: list[Path]) -> str:
    """The format of local files, from the first file's columns; JSONL that matches nothing is taken
    for our own schema (its loader then names the missing field)."""
    name, columns = infer_format(files[0]) if files else (None, None)
    if name is not None:
        return name
    if files and all(p.suffix.lower() == ".jsonl" for p in files):
        return "pylaundering"
    shown = ""
    if columns:
        listed = sorted(columns)
        shown = f"; its columns: {', '.join(listed[:12])}{', ...' if len(listed) > 12 else ''}"
    raise DataError(
        f"cannot infer the format: the columns match no known layout{shown};"
        f" {FORMAT_HINT}, one of {', '.join(sorted(FORMATS))}",
        source=source,
    )


def _infer_hub(name: str) -> str:
    try:
        return HUB_FORMATS[name.lower()]
    except KeyError:
        raise DataError(
            "not a local file or folder, nor a hub dataset whose format is known;"
            f" to load it from the hub, {FORMAT_HINT}, one of {', '.join(sorted(FORMATS))}",
            source=name,
        ) from None


def _resolve_columns(
    adapter: Adapter, columns: Mapping[str, str] | None
) -> tuple[dict[str, str], frozenset[str]]:
    """Our field -> source column, defaulting to our own names; and the fields mapped explicitly."""
    if columns and not adapter.uses_columns:
        generic = sorted(n for n, a in FORMATS.items() if a.uses_columns)
        raise DataError(f"columns= only applies to the generic formats {generic}, not {adapter.name!r}")
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(adapter.fields))
    if unknown:
        raise DataError(f"columns: unknown field(s) {unknown}; ours are {list(adapter.fields)}")
    return {f: columns.get(f, f) for f in adapter.fields}, frozenset(columns)


# --------------------------------------------------------------------------- entry point


def load_examples(
    source: str,
    format: str | None = None,
    *,
    split: str | None = None,
    subset: str | None = None,
    role: str | None = None,
    columns: dict[str, str] | None = None,
    skip_malformed: bool = False,
    drop_erroneous: bool = False,
    limit: int | None = None,
) -> LoadResult:
    """Load multiple-choice examples from a local file or folder, or a hub dataset.

    `source` may carry its subset and split as `name:subset:split` (`parse_source`);
    explicit `subset=` / `split=` win over those. A source that exists on disk is
    local: a plain file or folder is read directly (and takes no subset or split); a
    folder laid out as a Hugging Face dataset repository (README.md with `configs:`,
    or `data/<split>-*` files) goes through `datasets.load_dataset` like a hub name.
    Otherwise a name like `owner/name` is looked up on the hub (failing at once when
    the hub is unreachable and the dataset is not cached; `hub_offline_reason`).

    Subsets and splits: a hub dataset that needs a subset gets the one in
    `HUB_DEFAULT_SUBSETS` (`cais/mmlu` -> `all`, `ehovy/race` -> `all`,
    `allenai/ai2_arc` -> `ARC-Challenge`, `Idavidrein/gpqa` -> `gpqa_main`). With no
    split, `role` ("benchmark" or "train") picks the format's default: `test` for a
    benchmark and `train` for training data, except MMLU (training: `auxiliary_train`),
    MedMCQA (benchmark: `validation`, because its test split has no answers), GPQA
    (only `train`) and MMLU-Redux (only `test`); a dataset lacking the default but with
    one split uses that one. With neither split nor role, a dataset must have one split.
    Unknown subsets or splits raise `DataError` naming the available ones.

    `format` is inferred for local files and dataset folders from their first record's
    columns (`SIGNATURES`; JSONL that matches none is taken for our own schema) and for
    well-known hub names (`HUB_FORMATS`); anything else needs it. Malformed rows raise `DataError` naming
    source, row and field, unless `skip_malformed` (then they are counted in
    `skipped`). Ids missing from the source are `<file name>:<row>` (or
    `<dataset>/<subset>/<split>:<row>`), stable across runs. Duplicate ids are malformed
    rows: teacher-logit caches key on them.
    """
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}; known: {', '.join(sorted(FORMATS))}", source=source)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")

    name, parsed_subset, parsed_split = parse_source(source)
    subset = subset if subset is not None else parsed_subset
    split = split if split is not None else parsed_split
    path = Path(name).expanduser()
    local = path.exists()
    if not local and _looks_like_path(name):
        raise DataError("no such file or folder", source=name)
    repo = local and _is_dataset_repo(path)
    if local and not repo and (subset is not None or split is not None):
        given = ", ".join(f"{k} {v!r}" for k, v in (("subset", subset), ("split", split)) if v is not None)
        raise DataError(
            f"{given} given, but this is a plain file or folder, not a dataset repository"
            " (a README.md listing configs:, or data/<split>-* files)",
            source=name,
        )
    files = _local_files(path, format) if local and not repo else []
    if format is None:
        if repo:
            format = _infer_local(name, _repo_files(path))
        else:
            format = _infer_local(name, files) if local else _infer_hub(name)
    adapter = FORMATS[format]
    cols, explicit = _resolve_columns(adapter, columns)  # before any (slow) hub download

    streams: Iterable[_Stream]
    if local and not repo:
        streams = (_Stream(str(f), f.name, f.stem, _read_file(f, adapter)) for f in files)
    else:
        stream, subset, split = _dataset_stream(
            str(path) if local else name, subset, split, role=role, adapter=adapter, local=local
        )
        streams = [stream]
        files = [path] if local else []
    result = LoadResult(
        [], 0, source, format, files=[str(f) for f in files], subset=subset if repo or not local else None,
        split=split if repo or not local else None,
    )
    # A format with `finalize` sees every row (its label set spans the whole source); limit applies after.
    _collect(result, streams, adapter, cols, explicit, skip_malformed, drop_erroneous,
             None if adapter.finalize else limit)
    if adapter.finalize is not None:
        try:
            result.examples = adapter.finalize(result.examples)[:limit]
        except DataError as err:
            raise err.located(source=source) from None
    return result


def _repo_files(path: Path) -> list[Path]:
    """The data files of a dataset repository folder (for format inference)."""
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in READABLE and not any(part.startswith(".") for part in p.parts)
    )


def convert_row(adapter: Adapter, record: Any, ctx: RowContext) -> MCExample | None:
    """One raw row (or the DataError its reader produced) as an example; None when the adapter
    drops it. Raises DataError (not yet located) for a malformed row."""
    if isinstance(record, DataError):
        raise record
    if not isinstance(record, Mapping):
        raise DataError(f"expected an object with named fields, got {type(record).__name__}")
    return adapter.convert(record, ctx)


def _collect(
    result: LoadResult,
    streams: Iterable[_Stream],
    adapter: Adapter,
    cols: dict[str, str],
    explicit: frozenset[str],
    skip_malformed: bool,
    drop_erroneous: bool,
    limit: int | None,
) -> None:
    """Convert every row into `result`, locating errors and counting skipped/dropped rows."""
    first_seen: dict[str, str] = {}
    first_error: DataError | None = None
    for stream in streams:
        for row, record in stream.rows:
            if limit is not None and len(result.examples) >= limit:
                return
            ctx = RowContext(f"{stream.id_prefix}:{row}", stream.group, cols, explicit, drop_erroneous)
            try:
                example = convert_row(adapter, record, ctx)
                if example is not None and example.id in first_seen:
                    first = first_seen[example.id]
                    raise DataError(f"duplicate id {example.id!r} (first at {first})", field="id")
            except DataError as err:
                located = err.located(source=stream.label, row=row)
                if not skip_malformed:
                    raise located from None
                result.skipped += 1
                first_error = first_error or located
                continue
            if example is None:
                result.dropped += 1
                continue
            first_seen[example.id] = f"{stream.label}, row {row}"
            result.examples.append(example)

    if not result.examples and limit != 0:
        detail = f"; skipped {result.skipped} malformed rows, the first: {first_error}" if first_error else ""
        raise DataError(f"no examples found (dropped {result.dropped}){detail}", source=result.source)
