"""Training rows for the scan, streamed one at a time (never the whole set in memory).

A TRAIN_SOURCE is read as one of:

* multiple-choice data, in any format `pylaundering.data` knows (local files and
  folders, dataset repository folders, hub names); a row's text is its context, question and
  choices;
* plain text: a `.txt` file (one row per line), or JSONL / Parquet / CSV / hub rows whose
  `text` column (`text_field`) holds the row's text.

`format=None` infers: `.txt` is text; a JSONL/Parquet/CSV row with the text field and no
`question`/`choices` is text; other `.jsonl` is our MC schema; anything else needs a format
(`"text"` or an MC format name). Rows carry what `--write-clean` needs to write them back in
the format they were read in (`TrainRow.write_kind`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pylaundering.data.hub import dataset_stream, is_dataset_repo, repo_files
from pylaundering.data.infer import infer_format, infer_hub, infer_local
from pylaundering.data.layouts import TWEET_EVAL_FORMAT, local_layout, tweet_eval_stream
from pylaundering.data.load import convert_row, label_spec, looks_like_path, parse_source, resolve_columns
from pylaundering.data.readers import Stream, read_file, read_jsonl, read_lines
from pylaundering.data.registry import FORMATS, Adapter, LabelSpec, RowContext
from pylaundering.data.schema import MCExample
from pylaundering.errors import DataError

__all__ = ["TEXT_FORMAT", "TrainRow", "SourceStats", "iter_rows", "check_train_format"]

#: The --train-format value for plain text rows.
TEXT_FORMAT = "text"
TEXT_SUFFIXES = (".txt",)
RECORD_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")

# How a clean row is written back: MC examples as our JSONL, text lines as lines, text records
# (JSONL/Parquet/hub rows with a text column) as JSONL records.
WRITE_MC, WRITE_LINES, WRITE_RECORDS = "mc_jsonl", "text_lines", "text_records_jsonl"


@dataclass
class TrainRow:
    source: str  # the file or dataset the row came from (as named in errors)
    row: int  # 1-based row (line number in JSONL and text files, record number otherwise)
    id: str  # the example's id; `<file name>:<row>` for text rows
    text: str  # what is scanned
    write_kind: str
    payload: Any  # MCExample, the original line (text) or the original record


@dataclass
class SourceStats:
    source: str
    kind: str  # "mc" or "text"
    format: str
    rows: int = 0
    skipped: int = 0  # malformed rows skipped with skip_malformed


def check_train_format(fmt: str | None) -> None:
    if fmt is not None and fmt != TEXT_FORMAT and fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; known: {TEXT_FORMAT} (plain text), {', '.join(sorted(FORMATS))}")


def _classification_formats() -> frozenset:
    from ..data.formats_cls import CLASSIFICATION_FORMATS

    return CLASSIFICATION_FORMATS


def example_text(example: MCExample) -> str:
    """Context (when present), question and choices, space-separated (then normalised by the scan)."""
    parts = [example.context] if example.context else []
    return " ".join([*parts, example.question, *example.choices])


def _read_parquet_stream(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def _records(path: Path, adapter: Adapter) -> Iterator[tuple[int, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet_stream(path)
    return read_file(path, adapter)


def _peek(rows: Iterator[tuple[int, Any]]) -> tuple[Any, Iterator[tuple[int, Any]]]:
    """The first readable record, and an iterator over all rows (the first included)."""
    buffered = []
    first = None
    for item in rows:
        buffered.append(item)
        if not isinstance(item[1], DataError):
            first = item[1]
            break

    def chain():
        yield from buffered
        yield from rows

    return first, chain()


class _Reader:
    def __init__(self, fmt: str | None, text_field: str, skip_malformed: bool, stats: list[SourceStats]):
        self.fmt, self.text_field, self.skip, self.stats = fmt, text_field, skip_malformed, stats

    # ------------------------------------------------------------------ one source
    def source(self, spec: str) -> Iterator[TrainRow]:
        name, subset, split = parse_source(spec)
        path = Path(name).expanduser()
        if path.exists() and not is_dataset_repo(path):
            layout = local_layout(path, None) if path.is_dir() else None
            if layout is not None and layout.kind != "plain":
                # a folder of split files (or TweetEval's) is one dataset: one split is read, never the test split
                # mixed into the training rows (that would report the benchmark as contaminating itself)
                layout.choose(name, split, subset, role=None, adapter=None)
                if layout.kind == "tweet_eval":
                    # text and labels files read as a pair: labelled rows, which --write-clean keeps with their
                    # labels (the text file alone wrote bare lines, a training set without a label)
                    adapter = FORMATS[TWEET_EVAL_FORMAT]
                    cols, explicit = resolve_columns(adapter, None)
                    labels = label_spec(adapter, cols, explicit, None, None, layout, {})
                    stream = tweet_eval_stream(*layout.files)
                    stats = SourceStats(stream.label, "mc", TWEET_EVAL_FORMAT)
                    self.stats.append(stats)
                    yield from self._mc_rows(stream.rows, stats, adapter, stream.id_prefix, stream.group, labels)
                    return
                for f in layout.files:
                    yield from self.file(f)
                return
            if subset is not None or split is not None:
                raise DataError("a subset or split was given, but this is a plain file or folder", source=name)
            if path.is_file():
                files = [path]
            else:
                files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                               and p.suffix.lower() in TEXT_SUFFIXES + RECORD_SUFFIXES)
                if not files:
                    raise DataError(f"no {', '.join(TEXT_SUFFIXES + RECORD_SUFFIXES)} files in this folder",
                                    source=name)
            for f in files:
                yield from self.file(f)
            return
        if not path.exists() and looks_like_path(name):
            raise DataError("no such file or folder", source=name)
        yield from self.dataset(name, subset, split, local=path.exists())

    def file(self, path: Path) -> Iterator[TrainRow]:
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            if self.fmt not in (None, TEXT_FORMAT):
                raise DataError(f"a {suffix} file is plain text; --train-format {self.fmt} does not apply",
                                source=str(path))
            stats = SourceStats(str(path), "text", TEXT_FORMAT)
            self.stats.append(stats)
            yield from self._text_rows(read_lines(path), stats, path.name, WRITE_LINES, field=None)
            return
        if suffix not in RECORD_SUFFIXES:
            readable = ", ".join(TEXT_SUFFIXES + RECORD_SUFFIXES)
            raise DataError(f"cannot read {suffix or 'extension-less'} files; readable: {readable}", source=str(path))
        adapter = FORMATS[self.fmt] if self.fmt not in (None, TEXT_FORMAT) else FORMATS["csv"]
        rows = _records(path, adapter)
        fmt = self.fmt
        if fmt is None:
            first, rows = _peek(rows)
            text_rows = (isinstance(first, Mapping) and self.text_field in first
                         and not {"question", "choices"} <= set(first))
            known = None if text_rows else infer_format(path)[0]  # the header is read only when needed
            if text_rows:
                fmt = TEXT_FORMAT
            elif known is not None:
                fmt = known
                rows = _records(path, FORMATS[known])  # its own reader (MMLU-Redux's CSVs use `;`)
            elif suffix == ".jsonl":
                fmt = "pylaundering"
            else:
                raise DataError(f"cannot infer the format: no {self.text_field!r} column (--text-field), and the "
                                f"columns match no known layout; pass --train-format ({TEXT_FORMAT} or one of "
                                f"{', '.join(sorted(FORMATS))})", source=str(path))
        if fmt == TEXT_FORMAT:
            stats = SourceStats(str(path), "text", f"{TEXT_FORMAT} ({self.text_field!r} column)")
            self.stats.append(stats)
            yield from self._text_rows(rows, stats, path.name, WRITE_RECORDS, field=self.text_field)
        else:
            stats = SourceStats(str(path), "mc", fmt)
            self.stats.append(stats)
            yield from self._mc_rows(rows, stats, FORMATS[fmt], path.name, path.stem)

    def dataset(self, name: str, subset: str | None, split: str | None, *, local: bool) -> Iterator[TrainRow]:
        fmt = self.fmt
        stream = None
        if fmt is None:
            try:
                fmt = infer_local(name, repo_files(Path(name))) if local else infer_hub(name)
                if fmt == "classification":  # text rows with labels: their text is what is scanned
                    raise DataError("cannot infer the format (text-classification rows)", source=name)
            except DataError as err:
                if not local:
                    raise DataError(f"{err.message}, or {TEXT_FORMAT} (a {self.text_field!r} column)",
                                    source=name) from None
                # a dataset repository folder of text rows: look at its first row
                stream, subset, split = dataset_stream(name, subset, split, role="train",
                                                       adapter=FORMATS["pylaundering"], local=True)
                first, rows = _peek(stream.rows)
                if not (isinstance(first, Mapping) and self.text_field in first):
                    raise DataError(f"{err.message}, or {TEXT_FORMAT} (a {self.text_field!r} column)",
                                    source=name) from None
                stream = Stream(stream.label, stream.id_prefix, stream.group, rows)
                fmt = TEXT_FORMAT
        adapter = FORMATS["pylaundering" if fmt == TEXT_FORMAT else fmt]
        if stream is None:
            stream, subset, split = dataset_stream(name, subset, split, role="train", adapter=adapter,
                                                   local=local)
        if fmt == TEXT_FORMAT:
            stats = SourceStats(stream.label, "text", f"{TEXT_FORMAT} ({self.text_field!r} column)")
            self.stats.append(stats)
            yield from self._text_rows(stream.rows, stats, stream.id_prefix, WRITE_RECORDS, field=self.text_field)
        else:
            stats = SourceStats(stream.label, "mc", fmt)
            self.stats.append(stats)
            yield from self._mc_rows(stream.rows, stats, adapter, stream.id_prefix, stream.group)

    # ------------------------------------------------------------------ rows
    def _bad(self, err: DataError, stats: SourceStats, row: int) -> None:
        if not self.skip:
            raise err.located(source=stats.source, row=row) from None
        stats.skipped += 1

    def _text_rows(self, rows, stats: SourceStats, id_prefix: str, write_kind: str, *, field: str | None):
        for row, record in rows:
            try:
                if isinstance(record, DataError):
                    raise record
                if field is None:
                    text = record
                else:
                    if not isinstance(record, Mapping):
                        raise DataError(f"expected an object with named fields, got {type(record).__name__}")
                    if field not in record:
                        raise DataError(f"no {field!r} column (name another with --text-field)")
                    text = record[field]
                    if text is None:
                        text = ""
                    if not isinstance(text, str):
                        raise DataError(f"expected text, got {type(text).__name__}", field=field)
            except DataError as err:
                self._bad(err, stats, row)
                continue
            stats.rows += 1
            yield TrainRow(stats.source, row, f"{id_prefix}:{row}", text, write_kind, record)

    def _mc_rows(self, rows, stats: SourceStats, adapter: Adapter, id_prefix: str, group: str | None,
                 labels: LabelSpec | None = None):
        cols, explicit = resolve_columns(adapter, None)
        labels = labels if labels is not None else LabelSpec()
        # a classification row's "choices" are the label set (provisional until a whole-file finalize for
        # the generic format): only its texts are scanned
        texts_only = adapter.finalize is not None or adapter.name in _classification_formats()
        for row, record in rows:
            ctx = RowContext(f"{id_prefix}:{row}", group, cols, explicit, False, labels)
            try:
                example = convert_row(adapter, record, ctx)
            except DataError as err:
                self._bad(err, stats, row)
                continue
            if example is None:
                continue
            stats.rows += 1
            text = " ".join(filter(None, [example.context, example.question])) if texts_only else example_text(example)
            yield TrainRow(stats.source, row, example.id, text, WRITE_MC, example)


def iter_rows(
    sources: list[str],
    format: str | None = None,
    *,
    text_field: str = "text",
    skip_malformed: bool = False,
    stats: list[SourceStats] | None = None,
) -> Iterator[TrainRow]:
    """Every row of every source, in order; `stats` (if given) receives one entry per file read."""
    check_train_format(format)
    for spec in sources:  # a missing file fails before anything is read
        name = parse_source(spec)[0]
        if not Path(name).expanduser().exists() and looks_like_path(name):
            raise DataError("no such file or folder", source=name)
    reader = _Reader(format, text_field, skip_malformed, stats if stats is not None else [])
    for spec in sources:
        yield from reader.source(spec)


def record_line(row: TrainRow) -> str:
    """The row as written by --write-clean (no newline)."""
    if row.write_kind == WRITE_MC:
        from pylaundering.data.schema import canonical_line

        return canonical_line(row.payload)
    if row.write_kind == WRITE_LINES:
        return row.payload
    return json.dumps(row.payload, ensure_ascii=False, default=str)
