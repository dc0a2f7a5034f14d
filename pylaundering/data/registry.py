"""The format registry: `register_format` declares a whole format (converter, inference signature,
hub names, default subset and splits) and `FORMATS` holds them by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .schema import MCExample

__all__ = [
    "FORMATS",
    "Adapter",
    "LabelSpec",
    "RowContext",
    "ROLES",
    "register_format",
    "hub_format",
    "hub_subset",
    "signatures",
]

#: File types the readers understand; a format may restrict itself to a subset.
READABLE = (".jsonl", ".json", ".csv", ".tsv", ".parquet")

#: What a dataset is loaded as; picks the default split where none is given.
ROLES = ("benchmark", "train")
DEFAULT_SPLITS = {"benchmark": "test", "train": "train"}

#: Our field names, as accepted in a generic format's `columns` mapping.
FIELDS = ("id", "question", "choices", "label", "context", "subject")

#: How to name a format, on the command line and in the API (used in error messages).
FORMAT_HINT = "pass the format (--benchmark-format / --train-format on the command line, format= in the API)"


@dataclass
class LabelSpec:
    """The label set of one load, shared by all its rows: what was declared before any row was read, and
    what the converters and `finalize` learn on the way (a classification dataset's label set belongs to
    the dataset, so it must not be guessed anew from each file's rows when something declares it)."""

    names: tuple[str, ...] | None = None  # declared names in id order (label_names=, a class file, ClassLabel)
    source: str | None = None  # where `names` came from, in words ("class file classes.txt", ...)
    base: int = 0  # what the source's integer ids count from; load shifts them to 0-based before converting
    base_source: str | None = None  # who said so ("label_base=1", "mapping.txt", "the format (AG News CSV)")
    base_given: bool = False  # label_base was passed: the 0-based convention is asserted, never second-guessed
    note: str | None = None  # what `finalize` adds to the recorded convention (e.g. classes absent from a file)
    seen: dict[str, Any] = field(default_factory=dict)  # converters' per-load scratch (e.g. id -> label_text)


@dataclass(frozen=True)
class RowContext:
    """What a converter may need besides the record itself."""

    default_id: str  # `<file name>:<row>` (or `<dataset>/<subset>/<split>:<row>`), stable across runs
    group: str | None  # file stem or hub subset: per-subject datasets use it as the subject
    columns: Mapping[str, str]  # generic formats: our field name -> the source's column(s)
    explicit: frozenset[str]  # fields the user mapped explicitly (these become required)
    drop_erroneous: bool
    labels: LabelSpec = field(default_factory=LabelSpec)  # the load's label set (classification formats)


Converter = Callable[[Mapping[str, Any], RowContext], "MCExample | None"]
#: Called once on all the examples of a load; may settle the label set (and say so in the LabelSpec).
Finalize = Callable[[list[MCExample], LabelSpec], list[MCExample]]
#: A further test of a file's first record, for layouts whose column names alone are ambiguous.
RecordTest = Callable[[Mapping[str, Any]], bool]
#: A headerless CSV's signature: a test of its first row's cells.
RowTest = Callable[[list[str]], bool]


@dataclass(frozen=True)
class Adapter:
    """A registered format: its converter, the file types it reads and how it is recognised."""

    name: str
    convert: Converter  # returns None for a row deliberately dropped (drop_erroneous, no gold label)
    extensions: tuple[str, ...]
    csv_delimiter: str
    uses_columns: bool
    description: str
    default_splits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    fields: tuple[str, ...] = FIELDS  # the fields a generic format's `columns` may map
    # Called once on all the examples of a load (e.g. to fix a label set seen only as a whole).
    finalize: Finalize | None = None
    # A CSV without a header row: the names of its columns, in order.
    csv_fieldnames: tuple[str, ...] | None = None
    # The columns a file's first record must all have to be read as this format (or, for a headerless
    # CSV, a test of its first row); None: never inferred from a file.
    signature: frozenset[str] | RowTest | None = None
    infer_order: int = 0  # signatures are tried lowest first, ties in registration order
    hub_names: tuple[str, ...] = ()  # lower-case hub dataset names read as this format
    hub_subset: str | None = None  # the subset those hub datasets are read with when none is given
    task: str = "multiple_choice"  # or "classification": the choices are the dataset's label names
    # The column holding an integer answer index or class id (our field name for generic formats), which
    # load checks from the whole column for 1-based ids and shifts by `label_base`; None: no integer ids.
    index_field: str | None = None
    label_base: int = 0  # what the format's documentation says those ids count from
    label_convention: str | None = None  # how the answer is written, for formats without `index_field`
    record_test: RecordTest | None = None  # must also pass on the first record for the signature to match
    refines: str | None = None  # a file inferred as this other format is read as this one when ...
    name_pattern: str | None = None  # ... "<its folder's name>/<its name>", lower-cased, matches this regex


FORMATS: dict[str, Adapter] = {}


def register_format(
    name: str,
    *,
    extensions: Sequence[str] = READABLE,
    csv_delimiter: str = ",",
    uses_columns: bool = False,
    default_splits: Mapping[str, str] | None = None,
    fields: Sequence[str] = FIELDS,
    finalize: Finalize | None = None,
    csv_fieldnames: Sequence[str] | None = None,
    signature: Sequence[str] | RowTest | None = None,
    infer_order: int = 0,
    hub_names: Sequence[str] = (),
    hub_subset: str | None = None,
    task: str = "multiple_choice",
    index_field: str | None = None,
    label_base: int = 0,
    label_convention: str | None = None,
    record_test: RecordTest | None = None,
    refines: str | None = None,
    name_pattern: str | None = None,
) -> Callable[[Converter], Converter]:
    """Register `convert(record, ctx) -> MCExample | None` as format `name`; a new format is one
    decorated function::

        @register_format("myformat", signature=("q", "options", "gold"), infer_order=65, hub_names=("me/mine",))
        def _myformat(record, ctx):
            '''My layout: `q`, `options`, `gold`.'''  # its first line is the format's description
            return MCExample(id=ctx.default_id, question=..., choices=..., label=...)

    `default_splits` maps a role ("benchmark", "train") to the split loaded from a hub
    dataset or dataset repository folder when none is given; unspecified roles use
    `test` for benchmarks and `train` for training data. `fields` are the names a
    `columns` mapping may use (uses_columns formats); `finalize(examples)`, when given,
    is applied once to all the examples of a load before they are returned.
    `csv_fieldnames` names the columns of CSV files that have no header row.

    Inference: a local file whose first record (a CSV's header) has every column of
    `signature` is read as this format; for a headerless CSV (`csv_fieldnames`) the signature
    is a test of the first row's cells. Signatures are tried by `infer_order` (lowest first,
    most specific layouts first; ties in registration order) and the first match wins.
    `record_test(first_record)`, when given, must also pass (a nested layout's column names say
    little). A format that `refines` another is chosen instead of it for files whose path matches
    `name_pattern` (searched in "<folder name>/<file name>", lower-cased: MultiNLI files have SNLI's columns).
    `hub_names` are the hub datasets read as this format without naming it (any case), and
    `hub_subset` the subset they are read with when none is given.

    Labels: `task="classification"` marks a format whose choices are label names. `index_field` names
    the column with an integer answer index or class id; `label_base` is what the format documents
    those ids to count from (1 for AG News' CSV release); `label_convention` says in words how formats
    without one write the answer (answer keys, a correct-answer column).
    """
    if task not in ("multiple_choice", "classification"):
        raise ValueError(f"format {name!r}: task must be multiple_choice or classification, got {task!r}")
    if label_base not in (0, 1):
        raise ValueError(f"format {name!r}: label_base must be 0 or 1, got {label_base}")
    unknown = set(extensions) - set(READABLE)
    if unknown:
        raise ValueError(f"format {name!r}: no reader for {sorted(unknown)}; readable: {READABLE}")
    if callable(signature) and not csv_fieldnames:
        raise ValueError(f"format {name!r}: a row-test signature is for headerless CSVs (csv_fieldnames)")
    lowered = tuple(n.lower() for n in hub_names)

    def decorate(convert: Converter) -> Converter:
        if name in FORMATS:
            raise ValueError(f"format {name!r} is already registered")
        clash = {n: hub_format(n) for n in lowered if hub_format(n) not in (None, name)}
        if clash:
            raise ValueError(f"hub names already mapped elsewhere: {clash}")
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
            signature=signature if signature is None or callable(signature) else frozenset(signature),
            infer_order=infer_order,
            hub_names=lowered,
            hub_subset=hub_subset,
            task=task,
            index_field=index_field,
            label_base=label_base,
            label_convention=label_convention,
            record_test=record_test,
            refines=refines,
            name_pattern=name_pattern,
        )
        return convert

    return decorate


def signatures() -> list[Adapter]:
    """The formats that can be inferred from a file, in the order their signatures are tried."""
    return sorted((a for a in FORMATS.values() if a.signature is not None), key=lambda a: a.infer_order)


def _hub_adapter(name: str) -> Adapter | None:
    lowered = name.lower()
    return next((a for a in FORMATS.values() if lowered in a.hub_names), None)


def hub_format(name: str) -> str | None:
    """The format of a well-known hub dataset (any case), or None."""
    adapter = _hub_adapter(name)
    return adapter.name if adapter else None


def hub_subset(name: str) -> str | None:
    """The subset a well-known hub dataset is read with when none is given, or None."""
    adapter = _hub_adapter(name)
    return adapter.hub_subset if adapter else None
