"""Local files as raw records: JSONL, JSON, CSV/TSV and Parquet readers yielding (row, record), the files
of a plain folder, and the exact file, line or row of a byte that is not UTF-8."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from .registry import FORMATS, READABLE, Adapter


@dataclass(frozen=True)
class Stream:
    """Rows of one file or hub split, with how to name them in errors and ids."""

    label: str  # for error messages
    id_prefix: str
    group: str | None
    rows: Iterator[tuple[int, Any]]  # (1-based row, record or DataError for an unreadable row)
    class_labels: Mapping[str, tuple[str, ...]] | None = None  # column -> names, where the source declares them


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


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
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


def read_json(path: Path) -> Iterator[tuple[int, Any]]:
    """A JSON list of records; or JSON Lines, which several original releases ship as `.json`: a file
    whose first object is followed by more on later lines (or that holds one object on its one line) is
    read line by line, as `read_jsonl` reads it (rows are line numbers)."""
    data = path.read_bytes()
    if _is_json_lines(data):
        yield from read_jsonl(path)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(_not_utf8(err, data), source=str(path)) from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON at line {err.lineno}: {err.msg}", source=str(path)) from None
    if not isinstance(parsed, list):
        raise DataError(f"expected a JSON list of objects (or JSON Lines), got {type(parsed).__name__}",
                        source=str(path))
    yield from enumerate(parsed, 1)


def _is_json_lines(data: bytes) -> bool:
    """Whether the text is one JSON object per line: its first line holds a whole object, and nothing
    but more lines follow it (a JSON list or a pretty-printed object spans lines differently)."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    start = len(data) - len(body.lstrip())
    if data[start:start + 1] != b"{":
        return False
    end = data.find(b"\n", start)
    first, rest = (data[start:], b"") if end < 0 else (data[start:end], data[end + 1:end + 4097].lstrip())
    try:
        return isinstance(json.loads(first.decode("utf-8")), dict) and (not rest or rest.startswith(b"{"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def read_csv(path: Path, delimiter: str, fieldnames: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from enumerate(csv.DictReader(handle, fieldnames=fieldnames, delimiter=delimiter), 1)
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
    import pyarrow.parquet as pq  # ships with `datasets`; imported here because it is slow to import

    yield from enumerate(pq.read_table(path).to_pylist(), 1)


def read_file(path: Path, adapter: Adapter) -> Iterator[tuple[int, Any]]:
    suffix = path.suffix.lower()
    if suffix in READABLE and suffix not in adapter.extensions:
        raise DataError(
            f"format {adapter.name!r} reads {', '.join(adapter.extensions)} files, not {suffix}",
            source=str(path),
        )
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".csv":
        return read_csv(path, adapter.csv_delimiter, adapter.csv_fieldnames)
    if suffix == ".tsv":
        return read_csv(path, "\t")
    if suffix == ".parquet":
        return _read_parquet(path)
    readable = ", ".join(READABLE)
    raise DataError(f"cannot read {suffix or 'extension-less'} files; readable: {readable}", source=str(path))


def local_files(path: Path, format: str | None) -> list[Path]:
    """A plain file, or the files of a folder that `format` reads (any readable type without one), by name."""
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
