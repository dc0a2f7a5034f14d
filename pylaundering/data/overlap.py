"""Benchmark / training-set overlap: are benchmark items (nearly verbatim) in the training data?

Laundering is only a finding when the student's training data does not already contain
the benchmark. `find_overlap` checks that cheaply: every item is normalised
(`normalise_text`) and hashed, so the cost is linear in the two sets, not their product.

Two kinds of match are counted, per benchmark item:

* exact: the same question and the same set of choices (order-insensitive, since
  datasets shuffle choices), after normalisation;
* question: the same question, whatever the choices (includes the exact matches).

Contexts (RACE articles) are not compared. Paraphrases and partial copies need n-gram /
MinHash scans, which can reuse `normalise_text`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from .schema import MCExample

__all__ = ["MAX_EXAMPLES", "METHOD", "find_overlap", "normalise_text"]

#: How many matching pairs `find_overlap` lists.
MAX_EXAMPLES = 20

METHOD = (
    "exact match after normalisation (Unicode NFKC, casefold, punctuation removed, whitespace collapsed)"
    " of question + choices (order-insensitive), and of the question alone; hashed, contexts not compared"
)

_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Unicode NFKC, casefold, punctuation removed, whitespace collapsed to single spaces, stripped.

    Punctuation is every character of Unicode category P* (so `"don't"` becomes `dont`,
    `«Paris»` becomes `paris`); symbols such as `+`, `=`, `$` are kept, since they change
    the meaning of formulas and amounts.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return _SPACE.sub(" ", text).strip()


def _digest(parts: Iterable[str]) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).digest()


def _keys(example: MCExample) -> tuple[bytes | None, bytes | None]:
    """(exact key, question key); None where the normalised question is empty."""
    question = normalise_text(example.question)
    if not question:
        return None, None
    choices = sorted(normalise_text(c) for c in example.choices)
    return _digest([question, "\x1e", *choices]), _digest([question])


def find_overlap(
    benchmark: Sequence[MCExample], train: Sequence[MCExample], *, max_examples: int = MAX_EXAMPLES
) -> dict[str, Any]:
    """Count benchmark items duplicated in `train`; a JSON-ready dict.

    Keys: `method` (what was compared, in words), `benchmark_items`, `train_items`,
    `exact_duplicates` (benchmark items whose question and choice set occur in train),
    `question_duplicates` (items whose question occurs in train; includes the exact ones),
    `rate` (exact_duplicates / benchmark_items), `question_rate`, and `examples`: up to
    `max_examples` pairs `{"benchmark_id", "train_id", "match"}` ("exact" or "question"),
    exact ones first, each benchmark item once, paired with its first match in train.
    """
    exact_index: dict[bytes, str] = {}
    question_index: dict[bytes, str] = {}
    for example in train:
        exact, question = _keys(example)
        if exact is not None:
            exact_index.setdefault(exact, example.id)
            question_index.setdefault(question, example.id)  # type: ignore[arg-type]

    exact_pairs: list[dict[str, str]] = []
    question_pairs: list[dict[str, str]] = []
    n_exact = n_question = 0
    for example in benchmark:
        exact, question = _keys(example)
        if exact is None:
            continue
        if exact in exact_index:
            n_exact += 1
            if len(exact_pairs) < max_examples:
                exact_pairs.append({"benchmark_id": example.id, "train_id": exact_index[exact], "match": "exact"})
        if question in question_index:
            n_question += 1
            if exact not in exact_index and len(question_pairs) < max_examples:
                question_pairs.append(
                    {"benchmark_id": example.id, "train_id": question_index[question], "match": "question"}
                )
    n = len(benchmark)
    return {
        "method": METHOD,
        "benchmark_items": n,
        "train_items": len(train),
        "exact_duplicates": n_exact,
        "question_duplicates": n_question,
        "rate": n_exact / n if n else 0.0,
        "question_rate": n_question / n if n else 0.0,
        "examples": (exact_pairs + question_pairs)[:max_examples],
    }
