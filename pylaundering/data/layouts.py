"""Local sources laid out by split: a folder of split files (`train.jsonl`, `test.csv`,
`dev_rand_split.jsonl`, `train-00000-of-00002.parquet`) and TweetEval's original release
(`<split>_text.txt` + `<split>_labels.txt` + `mapping.txt`, line N of one pairing with line N of
the other).

Such a folder is one dataset with several splits, so it is read one split at a time, chosen like a
hub dataset's: `split=` (or `folder::split`), else the format's default for the role, else the only
split. Reading every split together would mix a benchmark's test items with its training items.
A folder whose files do not all name a split is a plain folder: all its files are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .readers import Stream, local_files, read_lines
from .registry import READABLE, Adapter

__all__ = ["TWEET_EVAL_FORMAT", "LocalLayout", "local_layout", "split_of", "tweet_eval_stream"]

#: The format that reads TweetEval's text and label files (registered in formats_cls).
TWEET_EVAL_FORMAT = "tweet_eval_txt"

_SPLIT = re.compile(r"^(train|test|validation|valid|val|dev)(?:$|[_\-.])", re.I)
#: Names the validation split goes by; a request for one finds a folder's file named by another.
_VALIDATION = ("validation", "valid", "val", "dev")
_TWEET_TEXT = re.compile(r"^(.+)_text\.txt$")
_TWEET_LABELS = re.compile(r"^(.+)_labels\.txt$")


def split_of(stem: str) -> str | None:
    """The split a file's stem names (`train`, `dev_rand_split` -> `dev`, `test-00000-of-00001` ->
    `test`), lower-cased; None when it names none."""
    match = _SPLIT.match(stem)
    return match.group(1).lower() if match else None


@dataclass
class LocalLayout:
    """A local file or folder: its kind ("plain", "splits" or "tweet_eval") and its files by split."""

    kind: str
    groups: dict[str, list[Path]]  # split -> its files ("" for a plain source); TweetEval: [text, labels]
    folder: Path  # where class files are looked for
    split: str | None = None  # set by `choose`
    files: list[Path] = field(default_factory=list)  # the chosen split's files

    @property
    def splits(self) -> list[str]:
        return sorted(s for s in self.groups if s)

    def first_file(self) -> Path | None:
        """A file to infer the format from (every split of a dataset shares its layout)."""
        return next((files[0] for files in self.groups.values() if files), None)

    def choose(self, source: str, split: str | None, subset: str | None, role: str | None,
               adapter: Adapter | None) -> None:
        """Pick the split to read (setting `split` and `files`), or raise naming the splits there are."""
        if self.kind == "plain":
            if subset is not None or split is not None:
                given = ", ".join(f"{k} {v!r}" for k, v in (("subset", subset), ("split", split)) if v is not None)
                raise DataError(
                    f"{given} given, but this is a plain file or folder, not a dataset repository"
                    " (a README.md listing configs:, or data/<split>-* files) nor a folder of split files"
                    " (train.jsonl, test.jsonl, ...)",
                    source=source,
                )
            self.files = self.groups[""]
            return
        available = ", ".join(self.splits)
        if subset is not None:
            raise DataError(f"subset {subset!r} given, but this folder holds split files ({available}),"
                            " not a dataset repository with subsets", source=source)
        if split is not None:
            found = _find(split, self.splits)
            if found is None:
                raise DataError(f"no split {split!r}; available splits: {available}", source=source)
        elif len(self.splits) == 1:
            found = self.splits[0]
        elif role is not None and adapter is not None:
            default = adapter.default_splits[role]
            found = _find(default, self.splits)
            if found is None:
                what = "a benchmark" if role == "benchmark" else "training data"
                raise DataError(f"no split {default!r} (the default for {what}); available splits: {available};"
                                " pass one (split=, or SOURCE::split)", source=source)
        else:
            raise DataError(f"pass a split (split=, or SOURCE::split); this folder has splits: {available}",
                            source=source)
        self.split, self.files = found, self.groups[found]


def _find(split: str, splits: list[str]) -> str | None:
    wanted = split.lower()
    if wanted in splits:
        return wanted
    if wanted in _VALIDATION:
        matches = [s for s in splits if s in _VALIDATION]
        return matches[0] if len(matches) == 1 else None
    return None


def _tweet_eval_groups(folder: Path, only: Path | None = None) -> dict[str, list[Path]]:
    """split -> [text file, labels file] for each `<split>_text.txt` with its `<split>_labels.txt`."""
    groups = {}
    for text in sorted(folder.glob("*_text.txt")):
        split = _TWEET_TEXT.match(text.name).group(1)  # type: ignore[union-attr]
        labels = folder / f"{split}_labels.txt"
        if labels.is_file() and (only is None or only in (text, labels)):
            groups[split] = [text, labels]
    return groups


def local_layout(path: Path, format: str | None) -> LocalLayout:
    """How a local file or folder (not a dataset repository) is laid out."""
    folder = path if path.is_dir() else path.parent
    if path.is_file() and (_TWEET_TEXT.match(path.name) or _TWEET_LABELS.match(path.name)):
        groups = _tweet_eval_groups(folder, only=path)
        if groups:
            return LocalLayout("tweet_eval", groups, folder)
    if path.is_dir() and format in (None, TWEET_EVAL_FORMAT):
        readable = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in READABLE]
        groups = _tweet_eval_groups(path) if not readable or format == TWEET_EVAL_FORMAT else {}
        if groups:
            return LocalLayout("tweet_eval", groups, folder)
    if format == TWEET_EVAL_FORMAT:
        raise DataError(f"format {TWEET_EVAL_FORMAT!r} reads TweetEval's <split>_text.txt and <split>_labels.txt"
                        " files (with mapping.txt beside them); none here", source=str(path))
    files = local_files(path, format)
    if path.is_dir():
        splits = [split_of(f.stem) for f in files]
        if all(splits):
            groups: dict[str, list[Path]] = {}
            for f, s in zip(files, splits):
                groups.setdefault(s, []).append(f)  # type: ignore[arg-type]
            return LocalLayout("splits", groups, folder)
    return LocalLayout("plain", {"": files}, folder)


def tweet_eval_stream(text: Path, labels: Path) -> Stream:
    """The rows of a TweetEval split: {"text": line N of the text file, "label": line N of the labels file}."""

    def lines(path: Path) -> list[tuple[int, str | DataError]]:
        read = list(read_lines(path))
        while read and isinstance(read[-1][1], str) and not read[-1][1].strip():
            read.pop()  # blank lines at the very end pair with nothing
        return read

    texts, ids = lines(text), lines(labels)
    if len(texts) != len(ids):
        raise DataError(f"{len(texts)} lines, but {labels.name} has {len(ids)}: the two files must pair line by"
                        " line", source=str(text))

    def rows() -> Iterator[tuple[int, Mapping[str, str] | DataError]]:
        for (row, t), (_, label) in zip(texts, ids):
            bad = t if isinstance(t, DataError) else label if isinstance(label, DataError) else None
            yield row, bad if bad is not None else {"text": t, "label": label}  # type: ignore[misc]

    return Stream(f"{text} (+ {labels.name})", text.name, text.parent.name, rows())
