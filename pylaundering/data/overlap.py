"""Benchmark / training-set overlap: are benchmark items (nearly verbatim) in the training data?

Laundering is only a finding when the student's training data does not already contain
the benchmark. `find_overlap` checks that cheaply: every item is normalised
(`normalise_text`) and hashed, so the cost is linear in the two sets, not their product.

Two kinds of match are counted, per benchmark item:

* exact: the same question and the same set of choices (order-insensitive, since
  datasets shuffle choices), after normalisation;
* question: the same question, whatever the choices (includes the exact matches).

An item is its (context, question): a context (a RACE article) is part of both keys, so two items
match only when their normalised contexts match too (both absent counts as a match). Reading-
comprehension benchmarks reuse generic stems ("What is the best title for the passage?") on many
passages: without the context they would all be "duplicates" of each other, and a benchmark item
with its passage and a training item without it are not the same item. `find_shared_contexts`
finds items of two sets on the same passage (`launder audit` refuses a benchmark and reference
set that share one; `launder data split` keeps each passage on one side).

Paraphrases and partial copies need n-gram / MinHash scans, which use the same `normalise_text`
(`pylaundering.audit.scan`). It is built to defeat cheap evasion: invisible characters, look-alike
letters, width forms, Arabic marks, and text without spaces (see its doc).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from .confusables import ARABIC_FOLD, ARABIC_REMOVED, CONFUSABLES
from .schema import MCExample

__all__ = ["MAX_EXAMPLES", "METHOD", "context_key", "find_overlap", "find_shared_contexts", "normalise_text"]

#: How many matching pairs `find_overlap` lists.
MAX_EXAMPLES = 20

METHOD = (
    "exact match after normalisation (normalise_text: invisible format characters removed, Unicode NFKD, casefold,"
    " Cyrillic/Greek look-alikes folded to Latin, Arabic marks removed and letter variants folded, punctuation"
    " removed, NFKC, scripts written without spaces split into characters, whitespace collapsed) of context +"
    " question + choices (order-insensitive), and of context + question alone; hashed (an absent context is"
    " empty, so two items match only on the same passage or both without one)"
)

_SPACE = re.compile(r"\s+")
_ASCII_PUNCT = {c: None for c in range(128) if unicodedata.category(chr(c)).startswith("P")}

#: Invisible characters that are not Unicode format characters (Cf) but are as easily slipped into a word:
#: combining grapheme joiner, Mongolian free variation selectors, variation selectors, Hangul fillers.
_IGNORABLE_RANGES = ((0x034F, 0x034F), (0x180B, 0x180D), (0x180F, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF),
                     (0x115F, 0x1160), (0x3164, 0x3164), (0xFFA0, 0xFFA0))

#: Scripts written without spaces between words: Thai, Lao, Tibetan, Myanmar, Khmer, New Tai Lue, Tai Tham,
#: Balinese, Javanese, Tai Viet; CJK radicals, ideographic iteration and number marks, Hiragana, Katakana,
#: Bopomofo, CJK ideographs (with their extensions and compatibility forms), Yi, kana supplements.
_UNSPACED_RANGES = ((0x0E00, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1980, 0x19FF),
                    (0x1A20, 0x1AAF), (0x1B00, 0x1B7F), (0xA980, 0xA9FF), (0xAA60, 0xAADF), (0x2E80, 0x2FDF),
                    (0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303C), (0x3040, 0x30FF), (0x3100, 0x312F),
                    (0x31A0, 0x31BF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA000, 0xA4CF),
                    (0xF900, 0xFAFF), (0x1B000, 0x1B16F), (0x20000, 0x2FA1F), (0x30000, 0x323AF))
#: Combining marks of any script (they may follow a letter of the scripts above).
_MARK_RANGES = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))


def _in(ranges: tuple[tuple[int, int], ...], c: int) -> bool:
    return any(lo <= c <= hi for lo, hi in ranges)


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(lo)) + ("-" + re.escape(chr(hi)) if hi > lo else "") for lo, hi in ranges)


def _unspaced_pattern() -> re.Pattern[str]:
    """One "word" per letter of the scripts written without spaces: the letter and the marks that follow it
    (Thai vowel and tone marks, kana voicing marks stay with their letter)."""
    letters: list[tuple[int, int]] = []
    marks: list[tuple[int, int]] = list(_MARK_RANGES)
    for lo, hi in _UNSPACED_RANGES:
        if hi - lo > 0x2000:  # the large ideograph blocks have no marks
            letters.append((lo, hi))
            continue
        for c in range(lo, hi + 1):
            out = marks if unicodedata.category(chr(c)).startswith("M") else letters
            if out and out[-1][1] == c - 1:
                out[-1] = (out[-1][0], c)
            else:
                out.append((c, c))
    return re.compile(f"[{_char_class(letters)}][{_char_class(marks)}]*")


_UNSPACED = _unspaced_pattern()


class _Table(dict):
    """A `str.translate` table filled on first sight of each character (Unicode has too many to list)."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def __missing__(self, c: int) -> str | None:
        self[c] = out = self.rule(c)
        return out


def _ignorable(c: int) -> bool:
    return unicodedata.category(chr(c)) == "Cf" or _in(_IGNORABLE_RANGES, c)


def _fold(c: int) -> str | None:
    ch = chr(c)
    if _ignorable(c) or unicodedata.category(ch).startswith("P") or _in(ARABIC_REMOVED, c):
        return None
    return CONFUSABLES.get(ch) or ARABIC_FOLD.get(ch) or ch


_REMOVE_IGNORABLE = _Table(lambda c: None if _ignorable(c) else chr(c))
_FOLD = _Table(_fold)


def normalise_text(text: str) -> str:
    """The text as compared for overlap: its words, lower case, without what does not change them; stripped.

    In order: invisible characters removed (Unicode format characters, category Cf: zero-width space and
    joiners, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD, bidirectional controls; and variation
    selectors, the combining grapheme joiner, Hangul fillers); Unicode NFKD (full- and half-width forms,
    ligatures, mathematical alphanumerics, presentation forms; accents split off); casefold; Cyrillic and
    Greek look-alikes of Latin letters folded to Latin, Arabic marks and tatweel removed, Arabic letter
    variants folded (`confusables.py`: the tables, and the false merges they accept); punctuation removed
    (every character of Unicode category P*: `"don't"` becomes `dont`, `«Paris»` becomes `paris`;
    symbols such as `+`, `=`, `$` are kept, since they change the meaning of formulas and amounts); NFKC
    (accents composed again); every letter of a script written without spaces (Han, kana, Thai, Lao,
    Khmer, Myanmar, ...) made a word of its own, with its combining marks, so that word n-grams of such
    text are character n-grams; whitespace collapsed to single spaces.

    It never joins across whitespace: `normalise_text(t).split()` is the concatenation of
    `normalise_text(w).split()` over `t.split()` (the scanner's word cache relies on it): every step
    maps characters, or composes a mark with the letter before it, and no whitespace is removed.
    """
    if text.isascii():  # the same steps, for ASCII: only case and punctuation change
        return _SPACE.sub(" ", text.lower().translate(_ASCII_PUNCT)).strip()
    text = unicodedata.normalize("NFKD", text.translate(_REMOVE_IGNORABLE)).casefold().translate(_FOLD)
    text = _UNSPACED.sub(r" \g<0> ", unicodedata.normalize("NFKC", text))
    return _SPACE.sub(" ", text).strip()


def _digest(parts: Iterable[str]) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).digest()


def context_key(example: MCExample) -> bytes | None:
    """The hash of the item's normalised context (passage); None when it has none (or only punctuation)."""
    context = normalise_text(example.context) if example.context else ""
    return _digest([context]) if context else None


def question_key(example: MCExample) -> bytes | None:
    """The hash of the item's normalised (context, question), the key `find_overlap` counts a question
    duplicate by; None where the normalised question is empty."""
    return _keys(example)[1]


def _keys(example: MCExample) -> tuple[bytes | None, bytes | None]:
    """(exact key, question key) of the item's (context, question); None where the normalised question is
    empty."""
    question = normalise_text(example.question)
    if not question:
        return None, None
    context = normalise_text(example.context) if example.context else ""
    choices = sorted(normalise_text(c) for c in example.choices)
    return _digest([context, "\x1d", question, "\x1e", *choices]), _digest([context, "\x1d", question])


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


def find_shared_contexts(
    benchmark: Sequence[MCExample], other: Sequence[MCExample], *, max_examples: int = MAX_EXAMPLES
) -> dict[str, Any]:
    """Items of ``benchmark`` whose context (passage, after `normalise_text`) is also the context of an item
    of ``other``: ``items`` (how many benchmark items), ``contexts`` (how many distinct passages) and
    ``examples``, up to ``max_examples`` pairs ``{"benchmark_id", "other_id"}`` (one per passage, with the
    first item of each set on it). Items without a context never match."""
    first: dict[bytes, str] = {}
    for example in other:
        key = context_key(example)
        if key is not None:
            first.setdefault(key, example.id)
    n_items, seen, pairs = 0, set(), []
    for example in benchmark:
        key = context_key(example)
        if key is None or key not in first:
            continue
        n_items += 1
        if key not in seen:
            seen.add(key)
            if len(pairs) < max_examples:
                pairs.append({"benchmark_id": example.id, "other_id": first[key]})
    return {"items": n_items, "contexts": len(seen), "examples": pairs}
