"""Format inference: a local file's format from its first record's columns (or a headerless CSV's
first row), tried in the registry's signature order; a hub dataset's from its name."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from ..errors import DataError
from .readers import read_csv, read_json, read_jsonl
from .registry import FORMAT_HINT, FORMATS, Adapter, hub_format, signatures


def _first_columns(path: Path, delimiter: str) -> frozenset[str] | None:
    """The column names of a file's first record (a CSV's header read with `delimiter`), or None
    when the file has none or cannot be read (loading it names the problem)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # slow to import; only parquet files need it

            return frozenset(pq.read_schema(path).names)
        readers = {".csv": lambda: read_csv(path, delimiter), ".tsv": lambda: read_csv(path, "\t"),
                   ".jsonl": lambda: read_jsonl(path), ".json": lambda: read_json(path)}
        if suffix not in readers:
            return None
        for _, record in readers[suffix]():
            return frozenset(record) if isinstance(record, Mapping) else None
    except Exception:  # noqa: BLE001 - only a guess: an unreadable file is reported when it is loaded
        return None
    return None


def _first_row_matches(path: Path, adapter: Adapter) -> bool:
    """Whether a headerless CSV's first row passes the format's row test (False when unreadable)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle, delimiter=adapter.csv_delimiter), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return adapter.signature(first)  # type: ignore[operator]


def infer_format(path: Path) -> tuple[str | None, frozenset[str] | None]:
    """(the format whose signature the file matches or None, the columns seen); the first match wins."""
    seen: dict[str, frozenset[str] | None] = {}
    suffix = path.suffix.lower()
    for adapter in signatures():
        if suffix not in adapter.extensions:
            continue
        if callable(adapter.signature):
            if _first_row_matches(path, adapter):
                return adapter.name, None
            continue
        if adapter.csv_delimiter not in seen:
            seen[adapter.csv_delimiter] = _first_columns(path, adapter.csv_delimiter)
        columns = seen[adapter.csv_delimiter]
        if columns is not None and adapter.signature <= columns:
            return adapter.name, columns
    return None, seen.get(",", next(iter(seen.values()), None))


def infer_local(source: str, files: list[Path]) -> str:
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


def infer_hub(name: str) -> str:
    """The format of a well-known hub dataset (`register_format(hub_names=...)`)."""
    format = hub_format(name)
    if format is None:
        raise DataError(
            "not a local file or folder, nor a hub dataset whose format is known;"
            f" to load it from the hub, {FORMAT_HINT}, one of {', '.join(sorted(FORMATS))}",
            source=name,
        )
    return format
