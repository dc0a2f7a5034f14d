"""Multiple-choice formats: GPQA, MMLU (hub and original CSVs), MMLU-Redux, MedMCQA, RACE, ARC, OpenBookQA,
CommonsenseQA, the original releases' nested JSONL, our own JSONL and the generic csv / json / jsonl tables
(`columns=`).

Signatures are tried most specific first (`infer_order`): gpqa 10, medmcqa 20, race 30, openbookqa 36,
commonsense_qa 38, arc 40, mc_nested 46, mmlu_redux 50, our schema and the csv / json tables 60, mmlu 70,
then the classification formats (mnli 79, snli 80, sst2 85, classification 90) and last the headerless CSVs
(mmlu_csv 100, ag_news_csv 101).

`index_field` names each format's integer answer-index column (0-based everywhere here), which
`load_examples` checks from the whole column for a 1-based file; formats that name the answer by
a key or by its own column say how in `label_convention`.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from ..errors import DataError
from .fields import as_text, as_text_list, choice_index, id_or_default, optional_text, required_list, required_text
from .registry import RowContext, register_format
from .schema import MCExample


@register_format(
    "pylaundering", extensions=(".jsonl",), signature=("question", "choices", "label"), infer_order=60,
    index_field="label",
)
def _pylaundering(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """Our own JSONL: id, question, choices, label (0-based), optional context and subject."""
    return MCExample.from_dict(record)


@register_format(
    "gpqa",
    default_splits={"benchmark": "train", "train": "train"},
    signature=("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
    infer_order=10,
    hub_names=("Idavidrein/gpqa",),
    label_convention="the correct answer's own column (choices shuffled by a hash)",
    hub_subset="gpqa_main",  # the main set (diamond is a subset of it)
)
def _gpqa(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """GPQA: `Question`, `Correct Answer`, `Incorrect Answer 1..3`, `High-level domain`.

    GPQA stores the correct answer first, so the choices must be shuffled; the order is
    a sort by a hash of (question, choice), the same on every run and every machine
    and independent of any random state.
    """
    question = required_text(record, "Question")
    correct = required_text(record, "Correct Answer")
    options = [correct] + [required_text(record, f"Incorrect Answer {i}") for i in (1, 2, 3)]

    def key(i: int) -> bytes:
        return hashlib.sha256(f"{question}\x1f{options[i]}".encode()).digest()

    order = sorted(range(len(options)), key=key)
    return MCExample(
        id=id_or_default(record, "Record ID", ctx),
        question=question,
        choices=tuple(options[i] for i in order),
        label=order.index(0),
        subject=optional_text(record, "High-level domain"),
    )


@register_format(
    "mmlu",
    default_splits={"benchmark": "test", "train": "auxiliary_train"},
    signature=("question", "choices", "answer"),
    infer_order=70,
    index_field="answer",
    hub_names=("cais/mmlu",),
    hub_subset="all",  # every subject (and the auxiliary_train split)
)
def _mmlu(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """MMLU (cais/mmlu): `question`, `choices` (list), `answer` (index or letter), `subject`."""
    choices = required_list(record, "choices")
    return MCExample(
        id=ctx.default_id,
        question=required_text(record, "question"),
        choices=tuple(choices),
        label=choice_index(record.get("answer"), choices, "answer"),
        subject=optional_text(record, "subject"),
    )


#: The original MMLU release (data/{dev,val,test}/<subject>_<split>.csv): no header row.
MMLU_CSV_COLUMNS = ("question", "A", "B", "C", "D", "answer")


def _mmlu_first_row(cells: list[str]) -> bool:
    """Whether a headerless first row looks like MMLU's: six cells, the last an answer letter (a header
    row would name its columns)."""
    return len(cells) == len(MMLU_CSV_COLUMNS) and cells[-1].strip() in ("A", "B", "C", "D")


# Tried after every column signature: a headerless row can only be recognised by its cells.
@register_format(
    "mmlu_csv", extensions=(".csv",), csv_fieldnames=MMLU_CSV_COLUMNS, signature=_mmlu_first_row, infer_order=100,
    index_field="answer",
)
def _mmlu_csv(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """MMLU's original CSVs: no header; question, the four choices, the answer letter; the subject
    is the file name without its split (`abstract_algebra_test.csv` -> `abstract_algebra`)."""
    if record.get(None):  # DictReader's key for cells beyond the named columns
        raise DataError(f"expected {len(MMLU_CSV_COLUMNS)} cells, got {len(MMLU_CSV_COLUMNS) + len(record[None])}")
    choices = [required_text(record, c) for c in "ABCD"]
    return MCExample(
        id=ctx.default_id,
        question=required_text(record, "question"),
        choices=tuple(choices),
        label=choice_index(record.get("answer"), choices, "answer"),
        subject=re.sub(r"_(dev|val|test|train)$", "", ctx.group) if ctx.group else None,
    )


@register_format(
    "mmlu_redux",
    csv_delimiter=";",
    default_splits={"benchmark": "test", "train": "test"},
    signature=("question", "choices", "answer", "error_type"),
    infer_order=50,
    index_field="answer",
    hub_names=("edinburgh-dawg/mmlu-redux", "edinburgh-dawg/mmlu-redux-2.0"),
)
def _mmlu_redux(record: Mapping[str, Any], ctx: RowContext) -> MCExample | None:
    """MMLU-Redux: per-subject files (`;` CSV, choices as a list literal) with `error_type`.

    `error_type` is "ok" for items the re-annotation found sound; with drop_erroneous
    the others (wrong ground truth, unclear question, ...) are dropped. The subject is
    the file name (or the hub subset).
    """
    if ctx.drop_erroneous and required_text(record, "error_type").lower() != "ok":
        return None
    choices = required_list(record, "choices")
    return MCExample(
        id=ctx.default_id,
        question=required_text(record, "question"),
        choices=tuple(choices),
        label=choice_index(record.get("answer"), choices, "answer"),
        subject=ctx.group,
    )


@register_format(
    "medmcqa",
    default_splits={"benchmark": "validation", "train": "train"},
    signature=("question", "opa", "opb", "opc", "opd", "cop"),
    infer_order=20,
    index_field="cop",
    hub_names=("openlifescienceai/medmcqa",),
)
def _medmcqa(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """MedMCQA: `question`, `opa`..`opd`, `cop` (0-based), `subject_name`; `exp` is ignored.

    The hub's test split hides the answers (`cop` -1), so a benchmark defaults to `validation`.
    """
    choices = [required_text(record, f"op{c}") for c in "abcd"]
    cop = record.get("cop")
    if cop in (-1, "-1"):
        raise DataError("no answer (-1): MedMCQA's test split hides answers; use validation", field="cop")
    return MCExample(
        id=id_or_default(record, "id", ctx),
        question=required_text(record, "question"),
        choices=tuple(choices),
        label=choice_index(cop, choices, "cop"),
        subject=optional_text(record, "subject_name"),
    )


@register_format(
    "race",
    signature=("article", "question", "options", "answer"),
    infer_order=30,
    index_field="answer",
    hub_names=("ehovy/race",),
    hub_subset="all",  # middle and high school together
)
def _race(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """RACE: `article` (the context), `question`, `options` (list), `answer` (letter)."""
    choices = required_list(record, "options")
    return MCExample(
        # example_id names the article, shared by its questions, so it is not an item id.
        id=ctx.default_id,
        question=required_text(record, "question"),
        choices=tuple(choices),
        label=choice_index(record.get("answer"), choices, "answer"),
        context=required_text(record, "article"),
    )


#: How the keyed layouts (ARC, OpenBookQA, CommonsenseQA) name the answer.
KEYED = "answer keys (each item's own choice labels, e.g. A-E or 1-4)"


def _keyed_choices(raw: Any, field: str) -> tuple[list[str], list[str]]:
    """(texts, keys) from {"text": [...], "label": [...]} (the hub layouts) or [{"label": .., "text": ..}, ...]
    (the original releases); a CSV cell holding either as a literal is parsed first."""
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raw = None
    if isinstance(raw, (list, tuple)) and all(isinstance(c, Mapping) for c in raw):
        missing = next((i for i, c in enumerate(raw) if "text" not in c or "label" not in c), None)
        if missing is not None:
            raise DataError(f'choice {missing}: expected {{"label": ..., "text": ...}}', field=field)
        texts = [as_text(c["text"], field) for c in raw]
        keys = [as_text(c["label"], field) for c in raw]
    elif isinstance(raw, Mapping) and "text" in raw and "label" in raw:
        texts = as_text_list(raw["text"], field)
        keys = as_text_list(raw["label"], field)
    else:
        raise DataError('expected {"text": [...], "label": [...]} or [{"label": ..., "text": ...}, ...]', field=field)
    if len(keys) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(keys)} labels", field=field)
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise DataError(f"duplicate choice labels {duplicates}", field=field)
    return texts, keys


def _keyed(record: Mapping[str, Any], ctx: RowContext, question: str, raw_choices: Any, field: str) -> MCExample:
    texts, keys = _keyed_choices(raw_choices, field)
    answer = required_text(record, "answerKey")
    if answer not in keys:
        raise DataError(f"expected one of {keys}, got {answer!r}", field="answerKey")
    return MCExample(id=id_or_default(record, "id", ctx), question=question, choices=tuple(texts),
                     label=keys.index(answer))


@register_format(
    "arc",
    signature=("question", "choices", "answerKey"),
    infer_order=40,
    hub_names=("allenai/ai2_arc",),
    hub_subset="ARC-Challenge",  # the set usually reported
    label_convention=KEYED,
)
def _arc(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """ARC-style: `question`, `choices` {"text": [...], "label": [...]}, `answerKey`."""
    return _keyed(record, ctx, required_text(record, "question"), record.get("choices"), "choices")


@register_format(
    "openbookqa",
    signature=("question_stem", "choices", "answerKey"),
    infer_order=36,
    hub_names=("allenai/openbookqa", "openbookqa"),
    hub_subset="main",  # "additional" adds the facts, same items
    label_convention=KEYED,
)
def _openbookqa(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """OpenBookQA (allenai/openbookqa): `question_stem`, `choices` {"text", "label"}, `answerKey`."""
    return _keyed(record, ctx, required_text(record, "question_stem"), record.get("choices"), "choices")


def _nested(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """`question` {`stem`, `choices` [{label, text}]} with `answerKey` beside it."""
    question = record.get("question")
    if not isinstance(question, Mapping):
        raise DataError('expected {"stem": ..., "choices": [...]}', field="question")
    try:
        stem = required_text(question, "stem")
    except DataError as err:
        raise DataError(err.message, field="question.stem") from None
    return _keyed(record, ctx, stem, question.get("choices"), "question.choices")


def _csqa_record(record: Mapping[str, Any]) -> bool:
    question = record.get("question")
    return "question_concept" in record or isinstance(question, Mapping) and "question_concept" in question


@register_format(
    "commonsense_qa",
    signature=("question", "answerKey"),
    record_test=_csqa_record,
    infer_order=38,
    hub_names=("tau/commonsense_qa", "commonsense_qa"),
    default_splits={"benchmark": "validation", "train": "train"},  # the test split has no answers
    label_convention=KEYED,
)
def _commonsense_qa(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """CommonsenseQA, as released (nested `question`) or on the hub (tau/commonsense_qa, flat).

    The original release: `question` {`stem`, `choices` [{label, text}], `question_concept`}, `answerKey`;
    the hub's: `question`, `question_concept`, `choices` {label, text}, `answerKey`.
    """
    if isinstance(record.get("question"), Mapping):
        return _nested(record, ctx)
    return _keyed(record, ctx, required_text(record, "question"), record.get("choices"), "choices")


@register_format(
    "mc_nested",
    signature=("question", "answerKey"),
    record_test=lambda record: isinstance(record.get("question"), Mapping),
    infer_order=46,
    label_convention=KEYED,
)
def _mc_nested(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """The original ARC / OpenBookQA / CommonsenseQA JSONL: `question` {`stem`, `choices`}, `answerKey`.

    `choices` is a list of {label, text}; `answerKey` names one of the labels.
    """
    return _nested(record, ctx)


def _generic(record: Mapping[str, Any], ctx: RowContext) -> MCExample:
    """Any table, given `columns` mapping our fields to its columns.

    `choices` names one column holding a list, or several comma-separated columns
    (empty trailing cells are dropped, so 4- and 5-choice items can share a table);
    the label may be a 0-based index, a letter or the text of the correct choice.
    """
    cols = ctx.columns
    spec = cols["choices"]
    if "," in spec:
        cells = [c.strip() for c in spec.split(",")]
        missing = [c for c in cells if c not in record]
        if missing:
            raise DataError("column not found", field=missing[0])
        values = [optional_text(record, c) for c in cells]
        while values and values[-1] is None:
            values.pop()
        for c, v in zip(cells, values):
            if v is None:
                raise DataError("empty choice before a non-empty one", field=c)
        choices: list[str] = values  # type: ignore[assignment]
    else:
        choices = required_list(record, spec)

    def optional(ours: str) -> str | None:
        theirs = cols[ours]
        if ours in ctx.explicit and theirs not in record:
            raise DataError("column not found", field=theirs)
        return optional_text(record, theirs)

    if len(choices) < 2:
        raise DataError(f"need at least 2 choices, got {len(choices)}", field=spec)
    return MCExample(
        id=optional("id") or ctx.default_id,
        question=required_text(record, cols["question"]),
        choices=tuple(choices),
        label=choice_index(record.get(cols["label"]), choices, cols["label"], allow_text=True),
        context=optional("context"),
        subject=optional("subject"),
    )


# A CSV or JSON table with our own column names is read as the generic format.
register_format(
    "csv", extensions=(".csv", ".tsv"), uses_columns=True, signature=("question", "choices", "label"), infer_order=60,
    index_field="label",
)(_generic)
register_format(
    "json", extensions=(".json",), uses_columns=True, signature=("question", "choices", "label"), infer_order=60,
    index_field="label",
)(_generic)
register_format("jsonl", extensions=(".jsonl",), uses_columns=True, index_field="label")(_generic)
