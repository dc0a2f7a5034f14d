"""Text-classification benchmarks as `MCExample`s.

A classification item is a multiple-choice item whose choices are the dataset's label
names. The contract the pipeline relies on:

- `question` is the text; for a text pair (SNLI) it is the second text (the hypothesis);
- `context` is None for single texts, and the first text of a pair (the SNLI premise);
- `choices` are the label names in label-index order, the same tuple for every row of a
  dataset (IMDB: `("neg", "pos")`); `label` is the class index;
- `id` is the source's `id` column where it has one, else `RowContext.default_id`;
- `subject` is None.

Formats read the public layout of the Hugging Face hub datasets (parquet / the dataset
viewer's columns): `imdb`, `snli`, `mnli`, `sst2`, `ag_news`, `emotion`, `banking77`, `tweet_eval`,
`rotten_tomatoes`, `20newsgroups` (SetFit layout), and `classification`, a generic
table whose columns are named with `columns=` like the generic multiple-choice formats;
and two original releases: AG News' header-less CSV (`ag_news_csv`, 1-based class ids, `classes.txt`)
and TweetEval's text and label files (`tweet_eval_txt`, `mapping.txt`).
Each registers its hub names, so `load_examples("stanfordnlp/imdb")` needs no format.
Labels may be given as an index (an integer or its text, as in CSV) or as the label's
name. Label sets live in `labels_cls`; a label set the source declares (`LabelSpec.names`: label_names=,
a class file, a ClassLabel feature) replaces the format's own. Rows without a gold label (`-1`: IMDB's
`unsupervised` split, SNLI pairs without annotator agreement, GLUE's hidden test labels) are dropped and
counted in `LoadResult.dropped`; any other label outside the label set, and empty texts, are `DataError`s.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DataError
from .conventions import int_like as _int_like
from .fields import optional_text, preview, required_text
from .labels_cls import (
    AG_NEWS,
    BANKING77,
    EMOTION,
    FIXED_LABELS,
    IMDB,
    NEWSGROUPS20,
    ROTTEN_TOMATOES,
    SNLI,
    SST2,
    TWEET_EVAL,
    TWEET_EVAL_DEFAULT,
    label_names,
    named_tweet_eval_subset,
)
from .layouts import TWEET_EVAL_FORMAT
from .registry import FORMATS, LabelSpec, RowContext, register_format
from .schema import MCExample

__all__ = ["CLASSIFICATION_FORMATS", "CLASSIFICATION_FIELDS", "label_names", "parse_label_names"]

#: The fields a `columns` mapping may name for the generic `classification` format.
#: `label_names` is not a column: it is the comma-separated label names, in index order.
CLASSIFICATION_FIELDS = ("id", "text", "text_pair", "label", "label_names", "label_text")

#: What the classification formats register with.
CLS = {"task": "classification", "index_field": "label"}


# --------------------------------------------------------------------------- labels


def _known(names: Sequence[str]) -> str:
    return ", ".join(f"{i} {n!r}" for i, n in enumerate(names))


def _class_index(value: Any, names: Sequence[str], field: str, *, hint: str = "") -> int:
    """The class index of `value`: an index (integer or its text) or a label name."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError("missing or empty", field=field)
    index = _int_like(value)
    if index is not None and 0 <= index < len(names):
        return index
    if index is None and isinstance(value, str) and value.strip() in names:
        return names.index(value.strip())
    raise DataError(f"unknown label {preview(value)}; known labels: {_known(names)}{hint}", field=field)


def _unlabelled(value: Any) -> bool:
    """The hub's marker for a row without a gold label (-1)."""
    return _int_like(value) == -1


# --------------------------------------------------------------------------- fixed formats


def _id(record: Mapping[str, Any], ctx: RowContext, column: str = "id") -> str:
    """The source's id (text or integer) where the row has one, else the default `<file>:<row>`."""
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return ctx.default_id
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise DataError(f"expected text or an integer, got {type(value).__name__}", field=column)
    return str(value).strip()


def _single_text(
    name: str, names: tuple[str, ...], *, unlabelled_dropped: bool, doc: str, hub_names: Sequence[str],
    hub_subset: str | None = None, text: str = "text", signature: Sequence[str] | None = None, infer_order: int = 0,
    default_splits: Mapping[str, str] | None = None,
) -> None:
    """Register a `text`, `label` format with a fixed label set (a declared one replaces it)."""

    def convert(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
        if unlabelled_dropped and _unlabelled(record.get("label")):
            return None
        declared = ctx.labels.names or names
        return MCExample(
            id=_id(record, ctx),
            question=required_text(record, text),
            choices=declared,
            label=_class_index(record.get("label"), declared, "label"),
        )

    convert.__doc__ = doc
    convert.__name__ = convert.__qualname__ = f"_{name}"
    register_format(name, hub_names=hub_names, hub_subset=hub_subset, signature=signature, infer_order=infer_order,
                    default_splits=default_splits, **CLS)(convert)


_single_text(
    "imdb", IMDB, unlabelled_dropped=True,
    doc="IMDB (stanfordnlp/imdb): `text`, `label` (0 neg, 1 pos); -1 (the unsupervised split) is dropped.",
    hub_names=("stanfordnlp/imdb", "imdb"),
)
_single_text(
    "ag_news", AG_NEWS, unlabelled_dropped=False,
    doc="AG News (fancyzhx/ag_news): `text`, `label` (World, Sports, Business, Sci/Tech).",
    hub_names=("fancyzhx/ag_news", "ag_news"),
)
_single_text(
    "emotion", EMOTION, unlabelled_dropped=False,
    doc="Emotion (dair-ai/emotion): `text`, `label` (sadness, joy, love, anger, fear, surprise).",
    hub_names=("dair-ai/emotion", "emotion"),
    hub_subset="split",
)
_single_text(
    "banking77", BANKING77, unlabelled_dropped=False,
    doc="BANKING77 (PolyAI/banking77): `text`, `label` (77 intents, the dataset's names).",
    hub_names=("PolyAI/banking77", "banking77"),
)
_single_text(
    "rotten_tomatoes", ROTTEN_TOMATOES, unlabelled_dropped=False,
    doc="Rotten Tomatoes (cornell-movie-review-data/rotten_tomatoes): `text`, `label` (0 neg, 1 pos).",
    hub_names=("cornell-movie-review-data/rotten_tomatoes", "rotten_tomatoes"),
)
_single_text(
    "sst2", SST2, unlabelled_dropped=True, text="sentence",
    doc="SST-2 (stanfordnlp/sst2, GLUE sst2): `sentence`, `label` (0 negative, 1 positive), optional `idx`;"
        " -1 (the hub's hidden test labels) is dropped, so a benchmark defaults to validation.",
    hub_names=("stanfordnlp/sst2", "sst2", "nyu-mll/glue:sst2", "glue:sst2"),
    signature=("sentence", "label"), infer_order=85,
    default_splits={"benchmark": "validation", "train": "train"},  # the hub's test split has no labels
)


def _nli(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
    """SNLI (stanfordnlp/snli): `premise` (context), `hypothesis` (question), `label`; -1 dropped.

    Labels: 0 entailment, 1 neutral, 2 contradiction (ids or these names); -1 marks pairs
    without a gold label (no annotator majority), which are dropped and counted.
    """
    if _unlabelled(record.get("label")):
        return None
    names = ctx.labels.names or SNLI
    return MCExample(
        id=_id(record, ctx),
        question=required_text(record, "hypothesis"),
        choices=names,
        label=_class_index(record.get("label"), names, "label"),
        context=required_text(record, "premise"),
    )


register_format(
    "snli", signature=("premise", "hypothesis", "label"), infer_order=80, hub_names=("stanfordnlp/snli", "snli"), **CLS
)(_nli)


def _mnli(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
    """MultiNLI (nyu-mll/multi_nli, GLUE mnli): as SNLI, whose label names and order it shares.

    Entailment, neutral, contradiction; a file with SNLI's columns is read as MultiNLI when its name
    or its folder's says mnli (only the format's name differs).
    """
    return _nli(record, ctx)


register_format(
    "mnli",
    signature=("premise", "hypothesis", "label", "genre"),  # the hub layout; GLUE's has SNLI's columns
    infer_order=79,
    refines="snli",
    name_pattern=r"(^|[^a-z])(mnli|multi_?nli)",
    hub_names=("nyu-mll/multi_nli", "multi_nli", "nyu-mll/glue:mnli", "glue:mnli"),
    default_splits={"benchmark": "validation_matched", "train": "train"},  # no labelled test split
    **CLS,
)(_mnli)


@register_format(
    "tweet_eval", hub_names=("cardiffnlp/tweet_eval", "tweet_eval"), hub_subset=TWEET_EVAL_DEFAULT, **CLS
)
def _tweet_eval(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """TweetEval (cardiffnlp/tweet_eval): `text`, `label`; label names from the subset (sentiment).

    The subset is the hub subset, or for local files the file name when it names one
    (`emotion.jsonl`, `stance_abortion_test.csv`); otherwise sentiment.
    """
    named = named_tweet_eval_subset(ctx.group)
    names = ctx.labels.names or TWEET_EVAL[named or TWEET_EVAL_DEFAULT]
    hint = "" if named or ctx.labels.names else (
        f" (the default tweet_eval subset, {TWEET_EVAL_DEFAULT}: {ctx.group!r} names no subset;"
        " load another subset by name, or name the file after it, e.g. emotion_test.jsonl)"
    )
    return MCExample(
        id=_id(record, ctx),
        question=required_text(record, "text"),
        choices=names,
        label=_class_index(record.get("label"), names, "label", hint=hint),
    )


@register_format("20newsgroups", hub_names=("SetFit/20_newsgroups",), **CLS)
def _newsgroups(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """20 Newsgroups (SetFit/20_newsgroups): `text`, `label`, `label_text` (checked against the label).

    Some posts are empty: an empty `text` is malformed (skip_malformed skips and counts it).
    Without a `label` column, `label_text` gives the class.
    """
    text = required_text(record, "text")
    names = ctx.labels.names or NEWSGROUPS20
    label_text = record.get("label_text")
    if isinstance(label_text, str):
        label_text = label_text.strip() or None
    if record.get("label") is None and label_text is not None:
        label = _class_index(label_text, names, "label_text")
    else:
        label = _class_index(record.get("label"), names, "label")
        _check_label_text(label_text, names, label, "label_text")
    return MCExample(id=_id(record, ctx), question=text, choices=names, label=label)


def _check_label_text(label_text: Any, names: Sequence[str], label: int, field: str) -> None:
    if label_text is not None and label_text != names[label]:
        raise DataError(f"{preview(label_text)} does not match label {label} ({names[label]!r})", field=field)


# --------------------------------------------------------------------------- original releases

#: AG News' original CSV release (train.csv, test.csv): no header.
AG_NEWS_CSV_COLUMNS = ("class", "title", "description")


def _ag_news_first_row(cells: list[str]) -> bool:
    """Three cells, the first a class number (a header row would name its columns)."""
    return len(cells) == len(AG_NEWS_CSV_COLUMNS) and cells[0].strip().isascii() and cells[0].strip().isdigit()


@register_format(
    "ag_news_csv", extensions=(".csv",), csv_fieldnames=AG_NEWS_CSV_COLUMNS, signature=_ag_news_first_row,
    infer_order=101, task="classification", index_field="class", label_base=1,
)
def _ag_news_csv(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """AG News' original CSV: no header; class (1-based: 1 World .. 4 Sci/Tech, or classes.txt), title, description.

    The text is title and description joined by a space, as the hub's ag_news builds it; load shifts
    the 1-based class to 0-based (a class 0 is an error).
    """
    if record.get(None) or record.get("description") is None:  # DictReader: cells beyond / short of the columns
        cells = len(AG_NEWS_CSV_COLUMNS) + len(record.get(None) or ()) - (record.get("description") is None)
        raise DataError(f"expected {len(AG_NEWS_CSV_COLUMNS)} cells (class, title, description), got {cells}")
    names = ctx.labels.names or AG_NEWS
    text = " ".join(t for t in (optional_text(record, "title"), optional_text(record, "description")) if t)
    if not text:
        raise DataError("title and description are both empty", field="description")
    return MCExample(id=ctx.default_id, question=text, choices=names,
                     label=_class_index(record.get("class"), names, "class"))


@register_format(TWEET_EVAL_FORMAT, extensions=(), **CLS)
def _tweet_eval_txt(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """TweetEval's original release: <split>_text.txt with <split>_labels.txt, and mapping.txt naming the ids.

    Line N of one file pairs with line N of the other; mapping.txt ("index<TAB>name") names the
    classes (without it, the folder's name must name the subset, e.g. emotion).
    """
    names = ctx.labels.names or TWEET_EVAL.get(named_tweet_eval_subset(ctx.group) or "")
    if names is None:
        raise DataError(f"no mapping.txt beside the files, and the folder name {ctx.group!r} names no TweetEval"
                        " subset: pass label_names=", field="label")
    return MCExample(id=ctx.default_id, question=required_text(record, "text"), choices=names,
                     label=_class_index(record.get("label"), names, "label"))


# --------------------------------------------------------------------------- generic format

#: Stands in for the label set until `_finalize` has seen every label of the source:
#: a provisional example has choices (raw label text, _PENDING) and label 0.
_PENDING = "\x00pending-label"


@functools.lru_cache(maxsize=64)
def parse_label_names(spec: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in spec.split(","))
    if any(not n for n in names):
        raise DataError(f"empty name in {spec!r} (expected comma-separated names)", field="label_names")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"duplicate names {duplicates}", field="label_names")
    if len(names) < 2:
        raise DataError(f"need at least 2 label names, got {len(names)}", field="label_names")
    return names


def _raw_label(value: Any, field: str) -> str:
    """A provisional label: the text of an integer (>= 0) or of a string label."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError("missing or empty", field=field)
    index = _int_like(value)
    if index is not None:
        if index < 0:
            raise DataError(
                f"negative label {index}: integer labels are class indices 0..K-1 (hub datasets mark"
                " rows without a gold label with -1: remove them, or pass skip_malformed)",
                field=field,
            )
        return str(index)
    if isinstance(value, str):
        return value.strip()
    raise DataError(f"expected an integer or a text label, got {preview(value)}", field=field)


def _classification(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """Any text-classification table: text, optional text_pair, label, optional id and label_text (`columns=`).

    Integer labels name classes "0".."K-1" (K = the largest label + 1 in the whole
    source; a column of exactly 1..K with no 0 is refused as ambiguous); text labels are
    classes in sorted order; a `label_text` column (the SetFit layout) names each id, and must
    name it the same on every row; a declared label set (`columns={"label_names": "neg,pos"}`,
    label_names=, a class file) names the classes in index order instead (labels are then
    indices or those names). With a text pair, `text` is the context and `text_pair` the question.
    """
    cols = ctx.columns

    def column(ours: str) -> str:
        theirs = cols[ours]
        if ours in ctx.explicit and theirs not in record:
            raise DataError("column not found", field=theirs)
        return theirs

    text = required_text(record, column("text"))
    pair_column = column("text_pair")
    pair = required_text(record, pair_column) if pair_column in record else None
    example_id = _id(record, ctx, column("id"))
    label_column = column("label")
    value = record.get(label_column)
    text_column = column("label_text")
    label_text = optional_text(record, text_column)
    names = ctx.labels.names or (parse_label_names(cols["label_names"]) if "label_names" in ctx.explicit else None)
    if names is not None:
        choices, label = names, _class_index(value, names, label_column)
        _check_label_text(label_text, names, label, text_column)
    elif label_text is not None:
        raw = _raw_label(value, label_column)
        _pair_label_text(raw, label_text, ctx, text_column)
        choices, label = (raw, label_text, _PENDING), 0
    else:
        choices, label = (_raw_label(value, label_column), _PENDING), 0
    return MCExample(
        id=example_id,
        question=pair if pair is not None else text,
        choices=choices,
        label=label,
        context=text if pair is not None else None,
    )


def _pair_label_text(raw: str, label_text: str, ctx: RowContext, field: str) -> None:
    """Every row must pair an id with the same label_text, and a label_text with the same id."""
    if not (raw.isascii() and raw.isdigit()):
        if label_text != raw:
            raise DataError(f"{preview(label_text)} does not match the label {raw!r}", field=field)
        return
    seen = ctx.labels.seen.setdefault("label_text", ({}, {}))
    by_id, by_name = seen
    first_name, where = by_id.setdefault(raw, (label_text, ctx.default_id))
    if first_name != label_text:
        raise DataError(f"{preview(label_text)} for label {raw}, which {where} names {first_name!r}", field=field)
    first_id, where = by_name.setdefault(label_text, (raw, ctx.default_id))
    if first_id != raw:
        raise DataError(f"{preview(label_text)} for label {raw}, but {where} gives it label {first_id}", field=field)


def _finalize(examples: list[MCExample], labels: LabelSpec) -> list[MCExample]:
    """Replace provisional labels with the source's label set (see `_classification`), saying in
    `labels` where it came from."""
    pending = [e for e in examples if e.choices[-1] == _PENDING]
    if not pending:
        return examples
    if len(pending) != len(examples):  # cannot happen: label_names is set for a whole load or not
        raise DataError("internal error: provisional and final labels mixed")
    raw = [e.choices[0] for e in examples]
    named = {e.choices[0]: e.choices[1] for e in examples if len(e.choices) == 3}
    if all(r.isascii() and r.isdigit() for r in raw):  # `_raw_label` wrote integers as str(int)
        ids = sorted({int(r) for r in raw})
        if named:  # label_text names the ids: the label set is those names, in id order
            unnamed = [i for i in ids if str(i) not in named]
            if unnamed:
                raise DataError(f"no row names label(s) {unnamed[:8]} in label_text; pass label_names=",
                                field="label_text")
            names = tuple(named[str(i)] for i in ids)
            index = {str(i): k for k, i in enumerate(ids)}
            labels.source = "label_text column"
            absent = [i for i in range(ids[-1] + 1) if i not in set(ids)]
            if absent:
                labels.note = (f"ids {absent[:8]} have no rows here: the label set holds only the classes present"
                               " (declare the dataset's, or take the union with its other splits)")
        else:
            if not labels.base_given and len(ids) >= 2 and ids == list(range(1, ids[-1] + 1)):
                raise DataError(
                    f"integer labels 1..{ids[-1]} with no 0 in the whole source: 1-based class ids, or 0-based"
                    " with class 0 absent? Refused rather than guessed: pass label_base=1 (ids count from 1),"
                    " label_base=0 (0 is a class this source lacks), or the label names in id order"
                    " (label_names=, or a labels.txt beside the data)",
                    field="label",
                )
            names = tuple(str(i) for i in range(ids[-1] + 1))
            index = {n: i for i, n in enumerate(names)}
            labels.source = "the source's own ids (0..K-1, K = the largest id + 1)"
    else:
        names = tuple(sorted(set(raw)))
        index = {n: i for i, n in enumerate(names)}
        labels.source = "the source's own label names (sorted)"
    if len(names) < 2:
        raise DataError(
            f"a single class {names[0]!r} in the whole source; classification needs at least 2"
            " (name them with columns={'label_names': 'a,b,...'})",
            field="label",
        )
    return [
        MCExample(id=e.id, question=e.question, choices=names, label=index[e.choices[0]],
                  context=e.context, subject=e.subject)
        for e in examples
    ]


register_format(
    "classification",
    uses_columns=True,
    fields=CLASSIFICATION_FIELDS,
    finalize=_finalize,
    signature=("text", "label"),  # the least specific layout: tried last
    infer_order=90,
    **CLS,
)(_classification)


#: Every classification format (the generic one included).
CLASSIFICATION_FORMATS: frozenset[str] = frozenset(n for n, a in FORMATS.items() if a.task == "classification")
assert {*FIXED_LABELS, "tweet_eval", "classification"} <= CLASSIFICATION_FORMATS
