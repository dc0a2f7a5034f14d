"""The entry point: `load_examples` reads a source (local file or folder, dataset repository folder,
hub name; `parse_source` splits `name:subset:split`) and converts its rows, naming the source, row
and field of every malformed one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .conventions import (
    BaseCheck,
    check_names,
    class_file_labels,
    describe,
    int_like,
    parquet_class_labels,
    shift_ids,
)
from .hub import dataset_stream, is_dataset_repo, repo_files
from .infer import infer_hub, infer_local
from .layouts import TWEET_EVAL_FORMAT, LocalLayout, local_layout, tweet_eval_stream
from .readers import Stream, read_file
from .registry import FORMATS, READABLE, ROLES, Adapter, LabelSpec, RowContext
from .schema import MCExample

__all__ = ["LoadResult", "load_examples", "parse_source"]


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
    split: str | None = None  # the split read, likewise (and for local folders of split files)
    format_inferred: bool = False  # the format came from the columns (or hub name), not from the caller
    # Classification: the label set (the choices of every example, in id order) and where it came from
    # ("class file classes.txt", "label_text column", "the sst2 format's names", ...); None otherwise.
    label_names: tuple[str, ...] | None = None
    label_source: str | None = None
    label_convention: str | None = None  # how the source wrote the answers ("0-based class ids", "answer letters")
    splits: list[str] = field(default_factory=list)  # the splits a local folder of split files holds

    @property
    def task(self) -> str:
        return FORMATS[self.format].task if self.format in FORMATS else "multiple_choice"


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


def looks_like_path(source: str) -> bool:
    """Hub names are `name` or `owner/name`; anything else that does not exist is a missing path."""
    return (
        source.startswith((".", "/", "~"))
        or "\\" in source
        or source.count("/") > 1
        or Path(source).suffix.lower() in READABLE
    )


def resolve_columns(
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
    label_names: Sequence[str] | None = None,
    label_base: int | None = None,
) -> LoadResult:
    """Load multiple-choice examples from a local file or folder, or a hub dataset.

    `source` may carry its subset and split as `name:subset:split` (`parse_source`);
    explicit `subset=` / `split=` win over those. A source that exists on disk is
    local: a plain file or folder is read directly (and takes no subset or split); a
    folder laid out as a Hugging Face dataset repository (README.md with `configs:`,
    or `data/<split>-*` files) goes through `datasets.load_dataset` like a hub name.
    A folder of split files (`train.jsonl`, `test.csv`, `dev_rand_split.jsonl`, TweetEval's
    `<split>_text.txt` + `<split>_labels.txt`) is read one split at a time (`layouts`).
    Otherwise a name like `owner/name` is looked up on the hub (failing at once when
    the hub is unreachable and the dataset is not cached; `hub_offline_reason`).

    Subsets and splits: a hub dataset that needs a subset gets its format's
    `hub_subset` (`cais/mmlu` -> `all`, `ehovy/race` -> `all`,
    `allenai/ai2_arc` -> `ARC-Challenge`, `Idavidrein/gpqa` -> `gpqa_main`). With no
    split, `role` ("benchmark" or "train") picks the format's default: `test` for a
    benchmark and `train` for training data, except MMLU (training: `auxiliary_train`),
    MedMCQA (benchmark: `validation`, because its test split has no answers), GPQA
    (only `train`) and MMLU-Redux (only `test`); a dataset lacking the default but with
    one split uses that one. With neither split nor role, a dataset must have one split.
    Unknown subsets or splits raise `DataError` naming the available ones.

    `format` is inferred for local files and dataset folders from their first record's
    columns (the formats' signatures; JSONL that matches none is taken for our own schema) and
    for well-known hub names (the formats' `hub_names`); anything else needs it. Malformed rows raise `DataError` naming
    source, row and field, unless `skip_malformed` (then they are counted in
    `skipped`). Ids missing from the source are `<file name>:<row>` (or
    `<dataset>/<subset>/<split>:<row>`), stable across runs. Duplicate ids are malformed
    rows: teacher-logit caches key on them.

    Labels. A classification dataset's label set is the dataset's, not the rows a file happens to
    hold: `label_names` (the names in id order) wins, then a generic table's
    `columns={"label_names": ...}`, a class file beside local data (`conventions.CLASS_FILES`),
    a `ClassLabel` feature (hub datasets, repository folders, parquet metadata), and last the
    format's own names (the generic format: the source's own values). Integer answer indices
    and class ids count from the format's documented base (0, or 1 for AG News' CSV release);
    `label_base` (0 or 1) asserts it instead. A column read as 0-based that looks 1-based (no 0
    anywhere, and rows one past the last choice or class) is refused, never loaded shifted.
    The result records the label set, its source and the convention used.
    """
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}; known: {', '.join(sorted(FORMATS))}", source=source)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if label_base not in (None, 0, 1):
        raise ValueError(f"label_base must be 0 or 1, got {label_base!r}")

    name, parsed_subset, parsed_split = parse_source(source)
    subset = subset if subset is not None else parsed_subset
    split = split if split is not None else parsed_split
    path = Path(name).expanduser()
    local = path.exists()
    if not local and looks_like_path(name):
        raise DataError("no such file or folder", source=name)
    repo = local and is_dataset_repo(path)
    layout = local_layout(path, format) if local and not repo else None
    inferred = format is None
    if format is None:
        if repo:
            format = infer_local(name, repo_files(path))
        elif layout is not None:
            every = [f for files in layout.groups.values() for f in files]
            format = TWEET_EVAL_FORMAT if layout.kind == "tweet_eval" else infer_local(name, every)
        else:
            format = infer_hub(name, subset)
    adapter = FORMATS[format]
    if layout is not None:
        layout.choose(name, split, subset, role, adapter)
    cols, explicit = resolve_columns(adapter, columns)  # before any (slow) hub download

    streams: list[Stream] | Iterator[Stream]
    declared: Mapping[str, tuple[str, ...]] = {}  # ClassLabel features: column -> names
    if layout is not None:
        files = layout.files
        streams = _local_streams(layout, adapter)
        if files and files[0].suffix.lower() == ".parquet":
            declared = parquet_class_labels(files[0])
    else:
        stream, subset, split = dataset_stream(
            str(path) if local else name, subset, split, role=role, adapter=adapter, local=local
        )
        streams = [stream]
        files = [path] if local else []
        declared = stream.class_labels or {}
    labels = label_spec(adapter, cols, explicit, label_names, label_base, layout, declared)
    result = LoadResult(
        [], 0, source, format, files=[str(f) for f in files], subset=subset if repo or not local else None,
        split=layout.split if layout is not None else split, format_inferred=inferred,
        splits=layout.splits if layout is not None else [],
    )
    index_column = cols.get(adapter.index_field, adapter.index_field) if adapter.index_field else None
    check = BaseCheck(index_column, active=labels.base == 0 and not labels.base_given)
    # A format with `finalize` sees every row (its label set spans the whole source); limit applies after.
    _collect(result, streams, adapter, cols, explicit, skip_malformed, drop_erroneous,
             None if adapter.finalize else limit, labels, check)
    if adapter.finalize is not None:
        try:
            result.examples = adapter.finalize(result.examples, labels)[:limit]
        except DataError as err:
            raise err.located(source=source) from None
    _record_labels(result, adapter, labels, check)
    return result


def _local_streams(layout: LocalLayout, adapter: Adapter) -> Iterator[Stream]:
    if layout.kind == "tweet_eval":
        yield tweet_eval_stream(*layout.files)
        return
    for f in layout.files:
        yield Stream(str(f), f.name, f.stem, read_file(f, adapter))


def label_spec(
    adapter: Adapter,
    cols: Mapping[str, str],
    explicit: frozenset[str],
    label_names: Sequence[str] | None,
    label_base: int | None,
    layout: LocalLayout | None,
    declared: Mapping[str, tuple[str, ...]],
) -> LabelSpec:
    """What is known of the label set before any row is read (see `load_examples`)."""
    spec = LabelSpec()
    if label_base is not None:
        spec.base, spec.base_source, spec.base_given = label_base, f"label_base={label_base}", True
    elif adapter.label_base:
        spec.base, spec.base_source = adapter.label_base, f"the {adapter.name} format's convention"
    if adapter.task != "classification":
        if label_names is not None:
            raise DataError(f"label_names applies to classification formats, not {adapter.name!r} (multiple choice)")
        return spec
    column = cols.get(adapter.index_field or "label", adapter.index_field or "label")
    from_columns = None
    if "label_names" in explicit:
        from .formats_cls import parse_label_names  # the generic format's own spelling of them

        from_columns = parse_label_names(cols["label_names"])
    if label_names is not None:
        spec.names, spec.source = check_names(label_names, "label_names"), "given (label_names)"
        if from_columns is not None and from_columns != spec.names:
            raise DataError(f"label_names {spec.names} and columns label_names {from_columns} differ; give one")
    elif from_columns is not None:
        spec.names, spec.source = from_columns, "given (columns label_names)"
    elif layout is not None and (found := class_file_labels(layout.folder)) is not None:
        spec.names, first_id, spec.source = found
        if first_id is not None and label_base is None:  # the file numbers the classes: that is their base
            spec.base, spec.base_source = first_id, f"as {spec.source.removeprefix('class file ')} numbers them"
    elif column in declared:
        spec.names, spec.source = declared[column], f"the dataset's ClassLabel feature {column!r}"
        if label_base is None:
            spec.base_source = "ClassLabel ids"
    return spec


def _record_labels(result: LoadResult, adapter: Adapter, labels: LabelSpec, check: BaseCheck) -> None:
    result.label_convention = describe(adapter, check, labels)
    if adapter.task != "classification" or not result.examples:
        return
    sets = {e.choices for e in result.examples}
    if len(sets) != 1:  # every converter gives a load one label set; anything else would be a silent mix-up
        raise DataError(f"internal error: {len(sets)} different label sets in one load", source=result.source)
    result.label_names = result.examples[0].choices
    result.label_source = labels.source or f"the {adapter.name} format's names"


def convert_row(adapter: Adapter, record: Any, ctx: RowContext) -> MCExample | None:
    """One raw row (or the DataError its reader produced) as an example; None when the adapter
    drops it. Raises DataError (not yet located) for a malformed row."""
    if isinstance(record, DataError):
        raise record
    if not isinstance(record, Mapping):
        raise DataError(f"expected an object with named fields, got {type(record).__name__}")
    return adapter.convert(record, ctx)


def _rows(streams: Iterable[Stream]) -> Iterator[tuple[Stream, int, Any]]:
    for stream in streams:
        for row, record in stream.rows:
            yield stream, row, record


def _collect(
    result: LoadResult,
    streams: Iterable[Stream],
    adapter: Adapter,
    cols: dict[str, str],
    explicit: frozenset[str],
    skip_malformed: bool,
    drop_erroneous: bool,
    limit: int | None,
    labels: LabelSpec | None = None,
    check: BaseCheck | None = None,
) -> None:
    """Convert every row into `result`, locating errors and counting skipped/dropped rows.

    Past `limit`, rows are still read while `check` is undecided (no 0 seen in the id column yet), only
    to tell a 1-based column from a 0-based one: a limit must not hide a shifted file.
    """
    labels = labels if labels is not None else LabelSpec()
    check = check if check is not None else BaseCheck(None, active=False)
    first_seen: dict[str, str] = {}
    first_error: DataError | None = None
    held_in_limit: list[DataError] = []  # rows one past the end, read before the limit

    def malformed(located: DataError) -> None:
        nonlocal first_error
        if not skip_malformed:
            raise located
        result.skipped += 1
        first_error = first_error or located

    for stream, row, record in _rows(streams):
        full = limit is not None and len(result.examples) >= limit
        if full and (limit == 0 or not check.undecided):
            break
        ctx = RowContext(f"{stream.id_prefix}:{row}", stream.group, cols, explicit, drop_erroneous, labels)
        raw = check.raw(record)
        was_undecided = check.undecided
        check.note_row(raw)
        if was_undecided and not check.undecided:  # a 0: the held rows are plain malformed rows after all
            check.held.clear()
            for err in held_in_limit:
                malformed(err)
            held_in_limit.clear()
        try:
            example = convert_row(adapter, shift_ids(record, check.column, labels), ctx)
            if example is not None and example.id in first_seen:
                first = first_seen[example.id]
                raise DataError(f"duplicate id {example.id!r} (first at {first})", field="id")
        except DataError as err:
            located = err.located(source=stream.label, row=row)
            n = check.one_past_end(err, record, lambda r, ctx=ctx: convert_row(adapter, r, ctx))
            if n is not None:
                check.held.append((located, int_like(raw) or 0, n))
                if not full:
                    held_in_limit.append(located)
            elif not full:
                malformed(located)
            continue
        if full:
            continue
        if example is None:
            result.dropped += 1
            continue
        first_seen[example.id] = f"{stream.label}, row {row}"
        result.examples.append(example)
        check.note_example(raw, letters_possible=adapter.task != "classification")

    if check.held:
        raise check.refusal(result.source, "class" if adapter.task == "classification" else "choice")
    if not result.examples and limit != 0:
        detail = f"; skipped {result.skipped} malformed rows, the first: {first_error}" if first_error else ""
        raise DataError(f"no examples found (dropped {result.dropped}){detail}", source=result.source)
