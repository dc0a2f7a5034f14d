"""How a source writes its labels, decided before and after its rows are read.

Before: the label set a dataset declares (a class file beside the data: `classes.txt`, `labels.txt`,
`label_names.txt`, or TweetEval's `mapping.txt` with "index<TAB>name" lines; a `ClassLabel` feature of
a hub dataset or of a parquet file's metadata) and what its integer ids count from.

While reading: `BaseCheck` watches the integer answer index / class id column. A 1-based file read as
0-based would load with every label shifted by one, which no later check can see; so for a format
whose ids count from 0, a column with no 0 anywhere whose rows fail only because an id is one past the
last choice or class (they convert with id - 1) is refused as a whole, never loaded shifted. After:
`describe` states the convention used, in words, for `LoadResult.label_convention` and the data card.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .fields import preview
from .registry import Adapter, LabelSpec

__all__ = ["CLASS_FILES", "BaseCheck", "class_file_labels", "class_label_names", "describe", "int_like",
           "parquet_class_labels", "read_class_file", "shift_ids"]

#: Files beside the data that declare its label set, one name per line (or "index<TAB>name").
CLASS_FILES = ("label_names.txt", "labels.txt", "classes.txt", "mapping.txt")

_INT = re.compile(r"[+-]?\d+")
_INDEXED = re.compile(r"^([+-]?\d+)\t([^\t]*)(\t.*)?$")


def int_like(value: Any) -> int | None:
    """An integer id from an int, an integral float or the text of an integer; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- declared label sets


def read_class_file(path: Path) -> tuple[tuple[str, ...], int | None]:
    """(names in id order, the first id when the file numbers its lines, else None).

    Either one name per line, or "index<TAB>name[<TAB>anything]" on every line (TweetEval's
    mapping.txt); numbered lines must number 0..K-1 or 1..K, in any order.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text (byte {err.start})", source=str(path)) from None
    lines = [(i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        raise DataError("empty class file: expected one label name per line", source=str(path))
    numbered = [_INDEXED.match(line) for _, line in lines]
    if any(numbered) and not all(numbered):
        row = next(i for (i, _), m in zip(lines, numbered) if not m)
        raise DataError('expected "index<TAB>name" like the other lines', source=str(path), row=row)
    if all(numbered):
        ids = [int(m.group(1)) for m in numbered]  # type: ignore[union-attr]
        names_by_id = {i: m.group(2).strip() for i, m in zip(ids, numbered)}  # type: ignore[union-attr]
        first = min(ids)
        if first not in (0, 1) or sorted(ids) != list(range(first, first + len(ids))):
            raise DataError(f"ids {sorted(ids)[:8]}...: expected 0..K-1 or 1..K, each once", source=str(path))
        names = tuple(names_by_id[i] for i in sorted(ids))
        base: int | None = first
    else:
        names, base = tuple(line.strip() for _, line in lines), None
    empty = [i for i, n in enumerate(names) if not n]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if empty or duplicates or len(names) < 2:
        what = (f"an empty name (class {empty[0]})" if empty else f"duplicate names {duplicates[:5]}" if duplicates
                else "a single name")
        raise DataError(f"{what}; a class file lists the dataset's label names, one per line, in id order"
                        " (move it away, or pass label_names=, if it is something else)", source=str(path))
    return names, base


def class_file_labels(folder: Path) -> tuple[tuple[str, ...], int | None, str] | None:
    """The label set the class files in `folder` declare: (names, first id or None, their source); None
    when there is none. Several class files must agree."""
    found = [(folder / name, read_class_file(folder / name)) for name in CLASS_FILES if (folder / name).is_file()]
    if not found:
        return None
    (first_path, (names, base)), *others = found
    for path, (other, other_base) in others:
        if other != names:
            raise DataError(f"{first_path.name} and {path.name} name different label sets"
                            f" ({preview(names, 60)} vs {preview(other, 60)}); keep one, or pass label_names=",
                            source=str(folder))
        base = base if base is not None else other_base
    return names, base, f"class file {', '.join(p.name for p, _ in found)}"


def class_label_names(features: Any) -> dict[str, tuple[str, ...]]:
    """The `ClassLabel` columns of a `datasets` Features mapping: column -> names."""
    out: dict[str, tuple[str, ...]] = {}
    for column, feature in dict(features or {}).items():
        names = getattr(feature, "names", None)
        if type(feature).__name__ == "ClassLabel" and names:
            out[column] = tuple(str(n) for n in names)
    return out


def parquet_class_labels(path: Path) -> dict[str, tuple[str, ...]]:
    """The `ClassLabel` columns a parquet file written by `datasets` records in its schema metadata."""
    try:
        import pyarrow.parquet as pq  # slow to import; only parquet files need it

        meta = (pq.read_schema(path).metadata or {}).get(b"huggingface")
        features = json.loads(meta)["info"]["features"] if meta else {}
    except Exception:  # noqa: BLE001 - metadata is optional: a file without it declares nothing
        return {}
    return {c: tuple(str(n) for n in f["names"]) for c, f in features.items()
            if isinstance(f, dict) and f.get("_type") == "ClassLabel" and f.get("names")}


# --------------------------------------------------------------------------- shifting and checking ids


def shift_ids(record: Any, column: str | None, labels: LabelSpec) -> Any:
    """The record with its integer id in `column` counted from 0 (names and letters untouched)."""
    if not labels.base or column is None or not isinstance(record, Mapping):
        return record
    value = int_like(record.get(column))
    if value is None or value < 0:  # names, letters; -1 marks a row without a gold label
        return record
    if value < labels.base:
        raise DataError(f"id {value}, but ids here count from {labels.base} ({labels.base_source})", field=column)
    shifted = value - labels.base
    return {**record, column: shifted if not isinstance(record[column], str) else str(shifted)}


@dataclass
class BaseCheck:
    """Watches the id column of one load for the signs of a 1-based file read as 0-based."""

    column: str | None  # the source's id column; None: the format has no integer ids
    active: bool  # ids are taken to count from 0 by convention (not asserted with label_base)
    zero_seen: bool = False
    held: list[tuple[DataError, int, int]] = field(default_factory=list)  # (error, id, choices) one past the end
    kinds: dict[str, int] = field(default_factory=dict)  # how the converted rows wrote the answer

    @property
    def undecided(self) -> bool:
        """Whether more rows could still change the verdict (no 0 seen yet)."""
        return self.active and not self.zero_seen

    def raw(self, record: Any) -> Any:
        return record.get(self.column) if self.column is not None and isinstance(record, Mapping) else None

    def note_row(self, raw: Any) -> None:
        if int_like(raw) == 0:
            self.zero_seen = True

    def note_example(self, raw: Any, letters_possible: bool) -> None:
        if self.column is None or raw is None:
            return
        if int_like(raw) is not None:
            kind = "ids"
        elif isinstance(raw, str) and letters_possible and len(raw.strip()) == 1 and raw.strip().isalpha():
            kind = "letters"
        else:
            kind = "names"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def one_past_end(self, err: DataError, record: Any, retry: Callable[[Any], Any]) -> int | None:
        """The number of choices or classes when `err` is only an id one past the last of them (the row
        converts with id - 1), else None."""
        if not self.undecided or err.field != self.column or not isinstance(record, Mapping):
            return None
        value = int_like(record.get(self.column))
        if value is None or value < 1:
            return None
        raw = record[self.column]
        try:
            example = retry({**record, self.column: str(value - 1) if isinstance(raw, str) else value - 1})
        except DataError:
            return None
        if example is None or not example.label == value - 1 == len(example.choices) - 1:
            return None
        return len(example.choices)

    def refusal(self, source: str, what: str) -> DataError:
        err, value, n = self.held[0]
        rows = f"{len(self.held)} rows are" if len(self.held) > 1 else "a row is"
        whats = "classes" if what == "class" else f"{what}s"
        return DataError(
            f"the {self.column!r} column looks 1-based: no row has 0, and {rows} one past the last {what}"
            f" ({err.source or source}, row {err.row}: {value} with {n} {whats}); the ids are read from 0 here,"
            " so the file is not loaded shifted. If it counts from 1, convert it once (launder data convert"
            f" {err.source or source} --label-base 1 --out FILE.jsonl; from Python: label_base=1) or subtract 1"
            f" from every {self.column}; if it counts from 0, those rows are wrong",
            source=source,
        )


def describe(adapter: Adapter, check: BaseCheck, labels: LabelSpec) -> str:
    """The label convention a load used, in words."""
    if check.column is None or not check.kinds:
        return adapter.label_convention or "not recorded"
    classification = adapter.task == "classification"
    parts = []
    for kind in ("ids", "letters", "names"):
        if kind not in check.kinds:
            continue
        if kind == "ids":
            ids = "class ids" if classification else "answer indices"
            said = f" ({labels.base_source})" if labels.base_source else ""
            parts.append(f"{labels.base}-based {ids}{said}" + (", read as 0-based" if labels.base else ""))
        elif kind == "letters":
            parts.append("answer letters")
        else:
            parts.append("label names" if classification else "choice text")
    text = " and ".join(parts)
    return f"{text}; {labels.note}" if labels.note else text


def check_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    """A declared label set: at least two distinct, non-empty names."""
    cleaned = tuple(str(n).strip() for n in names)
    if len(cleaned) < 2 or any(not n for n in cleaned) or len(set(cleaned)) != len(cleaned):
        raise DataError(f"{what}: expected at least 2 distinct, non-empty names, got {preview(tuple(names), 60)}")
    return cleaned
