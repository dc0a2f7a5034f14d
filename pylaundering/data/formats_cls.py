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
viewer's columns): `imdb`, `snli`, `ag_news`, `emotion`, `banking77`, `tweet_eval`,
`rotten_tomatoes`, `20newsgroups` (SetFit layout), and `classification`, a generic
table whose columns are named with `columns=` like the generic multiple-choice formats.
Each registers its hub names, so `load_examples("stanfordnlp/imdb")` needs no format.
Labels may be given as an index (an integer or its text, as in CSV) or as the label's
name. Label sets live in `labels_cls`. Rows without a gold label (`-1`: IMDB's `unsupervised` split, SNLI
pairs without annotator agreement) are dropped and counted in `LoadResult.dropped`; any
other label outside the label set, and empty texts, are `DataError`s.
"""

from __future__ import annotations

import functools
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DataError
from .fields import preview, required_text
from .labels_cls import (
    AG_NEWS,
    BANKING77,
    EMOTION,
    FIXED_LABELS,
    IMDB,
    NEWSGROUPS20,
    ROTTEN_TOMATOES,
    SNLI,
    TWEET_EVAL,
    TWEET_EVAL_DEFAULT,
    label_names,
    named_tweet_eval_subset,
)
from .registry import FORMATS, RowContext, register_format
from .schema import MCExample

__all__ = ["CLASSIFICATION_FORMATS", "CLASSIFICATION_FIELDS", "label_names"]

#: Every classification format (the generic one included).
CLASSIFICATION_FORMATS: frozenset[str] = frozenset({*FIXED_LABELS, "tweet_eval", "classification"})

#: The fields a `columns` mapping may name for the generic `classification` format.
#: `label_names` is not a column: it is the comma-separated label names, in index order.
CLASSIFICATION_FIELDS = ("id", "text", "text_pair", "label", "label_names")


# --------------------------------------------------------------------------- labels

_INT = re.compile(r"[+-]?\d+")


def _int_like(value: Any) -> int | None:
    """An integer label from an int, an integral float or the text of an integer; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    return None


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
    hub_subset: str | None = None,
) -> None:
    """Register a `text`, `label` format with a fixed label set."""

    def convert(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
        if unlabelled_dropped and _unlabelled(record.get("label")):
            return None
        return MCExample(
            id=_id(record, ctx),
            question=required_text(record, "text"),
            choices=names,
            label=_class_index(record.get("label"), names, "label"),
        )

    convert.__doc__ = doc
    convert.__name__ = convert.__qualname__ = f"_{name}"
    register_format(name, hub_names=hub_names, hub_subset=hub_subset)(convert)


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


@register_format(
    "snli", signature=("premise", "hypothesis", "label"), infer_order=80, hub_names=("stanfordnlp/snli", "snli")
)
def _snli(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
    """SNLI (stanfordnlp/snli): `premise` (context), `hypothesis` (question), `label`; -1 dropped.

    Labels: 0 entailment, 1 neutral, 2 contradiction; -1 marks pairs without a gold
    label (no annotator majority), which are dropped and counted.
    """
    if _unlabelled(record.get("label")):
        return None
    return MCExample(
        id=_id(record, ctx),
        question=required_text(record, "hypothesis"),
        choices=SNLI,
        label=_class_index(record.get("label"), SNLI, "label"),
        context=required_text(record, "premise"),
    )


@register_format(
    "tweet_eval", hub_names=("cardiffnlp/tweet_eval", "tweet_eval"), hub_subset=TWEET_EVAL_DEFAULT
)
def _tweet_eval(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """TweetEval (cardiffnlp/tweet_eval): `text`, `label`; label names from the subset (sentiment).

    The subset is the hub subset, or for local files the file name when it names one
    (`emotion.jsonl`, `stance_abortion_test.csv`); otherwise sentiment.
    """
    named = named_tweet_eval_subset(ctx.group)
    names = TWEET_EVAL[named or TWEET_EVAL_DEFAULT]
    hint = "" if named else (
        f" (the default tweet_eval subset, {TWEET_EVAL_DEFAULT}: {ctx.group!r} names no subset;"
        " load another subset by name, or name the file after it, e.g. emotion_test.jsonl)"
    )
    return MCExample(
        id=_id(record, ctx),
        question=required_text(record, "text"),
        choices=names,
        label=_class_index(record.get("label"), names, "label", hint=hint),
    )


@register_format("20newsgroups", hub_names=("SetFit/20_newsgroups",))
def _newsgroups(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """20 Newsgroups (SetFit/20_newsgroups): `text`, `label`, `label_text` (checked against the label).

    Some posts are empty: an empty `text` is malformed (skip_malformed skips and counts it).
    Without a `label` column, `label_text` gives the class.
    """
    text = required_text(record, "text")
    label_text = record.get("label_text")
    if isinstance(label_text, str):
        label_text = label_text.strip() or None
    if record.get("label") is None and label_text is not None:
        label = _class_index(label_text, NEWSGROUPS20, "label_text")
    else:
        label = _class_index(record.get("label"), NEWSGROUPS20, "label")
        if label_text is not None and label_text != NEWSGROUPS20[label]:
            raise DataError(
                f"{preview(label_text)} does not match label {label} ({NEWSGROUPS20[label]!r})",
                field="label_text",
            )
    return MCExample(id=_id(record, ctx), question=text, choices=NEWSGROUPS20, label=label)


# --------------------------------------------------------------------------- generic format

#: Stands in for the label set until `_finalize` has seen every label of the source:
#: a provisional example has choices (raw label text, _PENDING) and label 0.
_PENDING = "\x00pending-label"


@functools.lru_cache(maxsize=64)
def _parse_label_names(spec: str) -> tuple[str, ...]:
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
    """Any text-classification table: text, optional text_pair, label, optional id (`columns=`).

    Integer labels name classes "0".."K-1" (K = the largest label + 1 in the whole
    source); text labels are classes in sorted order; `columns={"label_names": "neg,pos"}`
    names the classes in index order instead (labels are then indices or those names).
    With a text pair, `text` is the context and `text_pair` the question.
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
    if "label_names" in ctx.explicit:
        names = _parse_label_names(cols["label_names"])
        choices, label = names, _class_index(value, names, label_column)
    else:
        choices, label = (_raw_label(value, label_column), _PENDING), 0
    return MCExample(
        id=example_id,
        question=pair if pair is not None else text,
        choices=choices,
        label=label,
        context=text if pair is not None else None,
    )


def _finalize(examples: list[MCExample]) -> list[MCExample]:
    """Replace provisional labels with the source's label set (see `_classification`)."""
    pending = [e for e in examples if len(e.choices) == 2 and e.choices[1] == _PENDING]
    if not pending:
        return examples
    if len(pending) != len(examples):  # cannot happen: label_names is set for a whole load or not
        raise DataError("internal error: provisional and final labels mixed")
    raw = [e.choices[0] for e in examples]
    if all(r.isascii() and r.isdigit() for r in raw):  # `_raw_label` wrote integers as str(int)
        names = tuple(str(i) for i in range(max(int(r) for r in raw) + 1))
        index = {n: i for i, n in enumerate(names)}
    else:
        names = tuple(sorted(set(raw)))
        index = {n: i for i, n in enumerate(names)}
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
)(_classification)


assert CLASSIFICATION_FORMATS <= set(FORMATS)
