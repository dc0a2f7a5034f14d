"""Format inference: a local file's format from its first record's columns (or a headerless CSV's
first row), tried in the registry's signature order; a hub dataset's from its name."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError
from .readers import read_csv, read_json, read_jsonl
from .registry import FORMAT_HINT, FORMATS, Adapter, hub_format, signatures


def _first_record(path: Path, delimiter: str) -> Mapping[str, Any] | None:
    """A file's first record (a CSV's header read with `delimiter` names its columns; a parquet file's
    schema gives its columns, with no values), or None when the file has none or cannot be read
    (loading it names the problem)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # slow to import; only parquet files need it

            return dict.fromkeys(pq.read_schema(path).names)
        readers = {".csv": lambda: read_csv(path, delimiter), ".tsv": lambda: read_csv(path, "\t"),
                   ".jsonl": lambda: read_jsonl(path), ".json": lambda: read_json(path)}
        if suffix not in readers:
            return None
        for _, record in readers[suffix]():
            return record if isinstance(record, Mapping) else None
    except Exception:  # noqa: BLE001 - only a guess: an unreadable file is reported when it is loaded
        return None
    return None


def _first_columns(path: Path, delimiter: str) -> frozenset[str] | None:
    record = _first_record(path, delimiter)
    return frozenset(record) if record is not None else None


def _first_row_matches(path: Path, adapter: Adapter) -> bool:
    """Whether a headerless CSV's first row passes the format's row test (False when unreadable)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle, delimiter=adapter.csv_delimiter), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return adapter.signature(first)  # type: ignore[operator]


def infer_format(path: Path) -> tuple[str | None, frozenset[str] | None]:
    """(the format whose signature the file matches or None, the columns seen); the first match wins,
    then gives way to a format that `refines` it when the file's path names that one."""
    name, columns = _match_signature(path)
    if name is not None:
        lowered = f"{path.absolute().parent.name}/{path.name}".lower()  # the file and its folder, not the whole path
        for adapter in FORMATS.values():
            if adapter.refines == name and adapter.name_pattern and re.search(adapter.name_pattern, lowered):
                return adapter.name, columns
    return name, columns


def _match_signature(path: Path) -> tuple[str | None, frozenset[str] | None]:
    seen: dict[str, Mapping[str, Any] | None] = {}
    suffix = path.suffix.lower()
    for adapter in signatures():
        if suffix not in adapter.extensions:
            continue
        if callable(adapter.signature):
            if _first_row_matches(path, adapter):
                return adapter.name, None
            continue
        if adapter.csv_delimiter not in seen:
            seen[adapter.csv_delimiter] = _first_record(path, adapter.csv_delimiter)
        record = seen[adapter.csv_delimiter]
        if record is not None and adapter.signature <= frozenset(record):
            if adapter.record_test is None or adapter.record_test(record):
                return adapter.name, frozenset(record)
    first = seen.get(",", next(iter(seen.values()), None))
    return None, frozenset(first) if first is not None else None


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


def infer_hub(name: str, subset: str | None = None) -> str:
    """The format of a well-known hub dataset (`register_format(hub_names=...)`); a multi-task dataset's
    subsets are registered as `name:subset` (`nyu-mll/glue:sst2`)."""
    format = (hub_format(f"{name}:{subset}") if subset else None) or hub_format(name)
    if format is None:
        raise DataError(
            "not a local file or folder, nor a hub dataset whose format is known;"
            f" to load it from the hub, {FORMAT_HINT}, one of {', '.join(sorted(FORMATS))}",
            source=name,
        )
    return format
