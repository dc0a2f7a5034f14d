"""The entry point: `load_examples` reads a source (local file or folder, dataset repository folder,
hub name; `parse_source` splits `name:subset:split`) and converts its rows, naming the source, row
and field of every malformed one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .hub import dataset_stream, is_dataset_repo, repo_files
from .infer import infer_hub, infer_local
from .readers import Stream, local_files, read_file
from .registry import FORMATS, READABLE, ROLES, Adapter, RowContext
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
    split: str | None = None  # the split read, likewise


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
) -> LoadResult:
    """Load multiple-choice examples from a local file or folder, or a hub dataset.

    `source` may carry its subset and split as `name:subset:split` (`parse_source`);
    explicit `subset=` / `split=` win over those. A source that exists on disk is
    local: a plain file or folder is read directly (and takes no subset or split); a
    folder laid out as a Hugging Face dataset repository (README.md with `configs:`,
    or `data/<split>-*` files) goes through `datasets.load_dataset` like a hub name.
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
    if not local and looks_like_path(name):
        raise DataError("no such file or folder", source=name)
    repo = local and is_dataset_repo(path)
    if local and not repo and (subset is not None or split is not None):
        given = ", ".join(f"{k} {v!r}" for k, v in (("subset", subset), ("split", split)) if v is not None)
        raise DataError(
            f"{given} given, but this is a plain file or folder, not a dataset repository"
            " (a README.md listing configs:, or data/<split>-* files)",
            source=name,
        )
    files = local_files(path, format) if local and not repo else []
    if format is None:
        if repo:
            format = infer_local(name, repo_files(path))
        else:
            format = infer_local(name, files) if local else infer_hub(name)
    adapter = FORMATS[format]
    cols, explicit = resolve_columns(adapter, columns)  # before any (slow) hub download

    streams: Iterable[Stream]
    if local and not repo:
        streams = (Stream(str(f), f.name, f.stem, read_file(f, adapter)) for f in files)
    else:
        stream, subset, split = dataset_stream(
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
    streams: Iterable[Stream],
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
