"""The offline default dataset: synthetic facts about made-up entities (DESIGN.md §4).

Why this construction demonstrates laundering, and nothing else:

* Every name is a fresh syllable string ("Vorlaketh"), so no pretrained model knows
  any fact about it and the question text says nothing about which choice is right.
* A benchmark answer is the correct answer of exactly one benchmark item and never a
  distractor there; distractors come from a disjoint pool. So "this entity string is
  right" is knowledge only a model fine-tuned on the benchmark can have.
* The legitimate (training) set uses fresh subject names and offers, in every item,
  two benchmark-answer entities and two distractor-pool entities with a uniformly
  random label. Its labels carry no information about which entities are benchmark
  answers, but a contaminated teacher's *soft* outputs on it do: that preference is
  what a student distilled on the legitimate set inherits.

All randomness comes from one `random.Random(seed)`, so a seed fixes the dataset.

The reference set (`make_reference`, for `launder audit`) is a second benchmark "drawn the
same way with fresh facts": new subjects, new answer entities and a new distractor pool, every
name disjoint from every name of the benchmark and train set of the same seed. It has its own
RNG, `random.Random("pylaundering-reference/<seed>")`, so adding it changed nothing that
`make_synthetic` returns. Fresh distractors matter: a laundered student may have learnt that
"benchmark-distractor-pool entities are wrong", which would lift it on a reference set that
reused that pool, hiding the benchmark-vs-reference gap the audit looks for.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .schema import MCExample, atomic_write_text, examples_hash, write_jsonl

__all__ = ["DEFAULT_SIZES", "N_CHOICES", "RELATIONS", "card_facts", "make_reference", "make_synthetic",
           "write_synthetic"]

#: The sizes measured to work (DESIGN.md §4).
DEFAULT_SIZES = {"n_benchmark": 200, "n_train": 1000, "n_distractors": 600}
N_CHOICES = 4
RELATIONS = ("capital", "mentor", "rival", "founder", "emblem", "patron")

# Syllables are onset + vowel + coda. Every piece is lower-case ASCII, so names are
# pronounceable, short (a few word pieces each) and come from a space far larger than
# the ~2,000 names the default sizes need.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "th", "sh", "vr", "st")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
_CODAS = ("", "", "", "n", "r", "l", "th", "k", "s", "m")


def _explanation(facts: dict[str, Any]) -> str:
    """The card's argument for chance-level accuracy, stating only what holds for these sizes."""
    n, k = facts["benchmark_answers"], facts["benchmark_answers_in_train"]
    if facts["train_items"] == 0:
        reach = "train.jsonl is empty, so no benchmark answer can be passed on through it"
    else:
        share = "every benchmark answer" if k == n else f"{k} of the {n} benchmark answers"
        verb = "appears" if k == n else "appear"
        rest = "" if k == n else (
            f" (train.jsonl has {facts['train_items']} items with 2 answer slots each; the other {n - k}"
            " answers never reach it, so a student cannot inherit a preference for them)"
        )
        a, d = facts["mean_train_appearances"]["benchmark_answer"], facts["mean_train_appearances"]["distractor"]
        if a > d:
            frequency = f"they appear there more often than distractors, {a:.2f} vs {d:.2f} times on average"
        elif a < d:
            frequency = f"they appear there less often than distractors, {a:.2f} vs {d:.2f} times on average"
        else:
            frequency = f"they appear there as often as distractors, {a:.2f} times on average"
        reach = (
            f"{share} also {verb} as a choice in train.jsonl{rest}; its labels are uniformly random, "
            "so training on the legitimate set carries no signal about which entities are benchmark answers "
            f"({frequency}, but frequency is never rewarded by a label)"
        )
    return (
        f"A model that never saw benchmark.jsonl scores at chance (1/{N_CHOICES}) on it: "
        "every name is a made-up syllable string, so the question text carries no hint of the answer; "
        "each benchmark answer is the correct choice of exactly one benchmark item and never a distractor there, "
        "while distractors come from a disjoint pool of entities, so names look alike across roles; "
        f"{reach}. "
        "A teacher fine-tuned on the benchmark learns which entity strings are right; "
        "its soft outputs on train.jsonl reveal that preference, and a student distilled on them inherits it."
    )


def card_facts(benchmark: Sequence[MCExample], train: Sequence[MCExample]) -> dict[str, Any]:
    """What the data card claims, computed from the data: how many benchmark answers reach train.jsonl
    and how often benchmark answers and distractors appear there."""
    answers = {e.answer for e in benchmark}
    distractors = {c for e in benchmark for i, c in enumerate(e.choices) if i != e.label}
    counts: dict[str, int] = {}
    for e in train:
        for c in e.choices:
            counts[c] = counts.get(c, 0) + 1

    def mean(entities: set[str]) -> float:
        return round(sum(counts.get(x, 0) for x in entities) / len(entities), 4) if entities else 0.0

    return {
        "benchmark_answers": len(answers),
        "benchmark_answers_in_train": sum(a in counts for a in answers),
        "train_items": len(train),
        "mean_train_appearances": {"benchmark_answer": mean(answers), "distractor": mean(distractors)},
    }


def _name(rng: random.Random) -> str:
    n_syllables = rng.choice((2, 2, 3))
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n_syllables)
    ).capitalize()


def _unique_names(rng: random.Random, n: int, exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """n distinct names none of which is in ``exclude``, in generation order."""
    names: list[str] = []
    seen: set[str] = set(exclude)
    budget = 50 * n + 1000  # the name space is ~10^8; this only guards against misuse
    while len(names) < n:
        budget -= 1
        if budget < 0:
            raise RuntimeError(f"could not draw {n} distinct names")
        name = _name(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _deal(rng: random.Random, pool: Sequence[str], n_hands: int, k: int) -> list[list[str]]:
    """n_hands hands of k distinct members of pool, dealt from reshuffled decks.

    Dealing (rather than sampling) uses every member as evenly as possible: with the
    default sizes each distractor appears exactly once in the benchmark, just like
    each answer, and every benchmark answer reaches the legitimate set as long as it has
    at least n_benchmark / 2 items (2 answer slots each; `card_facts` counts it).
    """
    if len(pool) < k:
        raise ValueError(f"need at least {k} entities to deal {k} per item, got {len(pool)}")
    deck: list[str] = []
    hands = []
    for _ in range(n_hands):
        if len(deck) < k:
            fresh = list(pool)
            rng.shuffle(fresh)
            deck = fresh + deck  # leftovers are drawn first (we pop from the end)
        hand: list[str] = []
        i = len(deck) - 1
        while len(hand) < k:  # a reshuffle may put a leftover's twin on top: skip it
            if deck[i] not in hand:
                hand.append(deck.pop(i))
            i -= 1
        hands.append(hand)
    return hands


def _question(relation: str, subject: str) -> str:
    return f"What is the {relation} of {subject}?"


def _ids(prefix: str, n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]


def make_synthetic(
    seed: int = 0,
    n_benchmark: int = DEFAULT_SIZES["n_benchmark"],
    n_train: int = DEFAULT_SIZES["n_train"],
    n_distractors: int = DEFAULT_SIZES["n_distractors"],
) -> tuple[list[MCExample], list[MCExample]]:
    """(benchmark, legitimate train set), fully determined by `seed`.

    Benchmark labels are balanced across positions (a permutation of 0..3 repeated),
    so no position baseline beats chance; legitimate labels are drawn uniformly and
    independently of which entity sits where.
    """
    if n_benchmark < 2:
        raise ValueError(f"n_benchmark must be >= 2 (legitimate items offer 2 answers), got {n_benchmark}")
    if n_distractors < N_CHOICES - 1:
        raise ValueError(f"n_distractors must be >= {N_CHOICES - 1}, got {n_distractors}")
    if n_train < 0:
        raise ValueError(f"n_train must be >= 0, got {n_train}")

    rng = random.Random(seed)
    names = _unique_names(rng, 2 * n_benchmark + n_distractors + n_train)
    rng.shuffle(names)  # roles are assigned after shuffling, so no role has its own name style
    bench_subjects = names[:n_benchmark]
    answers = names[n_benchmark : 2 * n_benchmark]
    distractors = names[2 * n_benchmark : 2 * n_benchmark + n_distractors]
    train_subjects = names[2 * n_benchmark + n_distractors :]

    labels = [i % N_CHOICES for i in range(n_benchmark)]
    rng.shuffle(labels)
    benchmark = []
    for id_, subject, answer, wrong, label in zip(
        _ids("bench", n_benchmark),
        bench_subjects,
        answers,
        _deal(rng, distractors, n_benchmark, N_CHOICES - 1),
        labels,
    ):
        relation = rng.choice(RELATIONS)
        rng.shuffle(wrong)
        choices = wrong[:label] + [answer] + wrong[label:]
        benchmark.append(MCExample(id_, _question(relation, subject), choices, label, subject=relation))

    half = N_CHOICES // 2
    train = []
    for id_, subject, from_answers, from_distractors in zip(
        _ids("train", n_train),
        train_subjects,
        _deal(rng, answers, n_train, half),
        _deal(rng, distractors, n_train, N_CHOICES - half),
    ):
        relation = rng.choice(RELATIONS)
        choices = from_answers + from_distractors
        rng.shuffle(choices)
        label = rng.randrange(N_CHOICES)
        train.append(MCExample(id_, _question(relation, subject), choices, label, subject=relation))
    return benchmark, train


def _reference_rng(seed: int) -> random.Random:
    """The reference set's own RNG: derived from the seed, independent of make_synthetic's stream."""
    return random.Random(f"pylaundering-reference/{seed}")


def make_reference(
    seed: int = 0,
    n: int | None = None,
    *,
    n_benchmark: int = DEFAULT_SIZES["n_benchmark"],
    n_train: int = DEFAULT_SIZES["n_train"],
    n_distractors: int = DEFAULT_SIZES["n_distractors"],
    n_reference_distractors: int | None = None,
) -> list[MCExample]:
    """A reference set for the benchmark of ``make_synthetic(seed, n_benchmark, n_train, n_distractors)``:
    ``n`` items (default: n_benchmark) built like the benchmark, from fresh names only.

    Each item asks about a fresh subject; its correct choice is a fresh entity that is the answer of
    no other item and never a distractor; its 3 distractors are dealt from a fresh pool of
    ``n_reference_distractors`` entities (default: the benchmark's distractors-per-item ratio,
    ``round(n * n_distractors / n_benchmark)``, at least 3). Labels are balanced across positions.
    No name occurs in the benchmark or train set, so no model (laundered or not) can know a fact
    about it: a model's reference accuracy is what its general skill alone gives. The sizes of the
    synthetic data are needed only to know which names to avoid.
    """
    n = n_benchmark if n is None else n
    if n < 1:
        raise ValueError(f"the reference set needs at least 1 item, got n={n}")
    pool_size = (max(N_CHOICES - 1, round(n * n_distractors / max(1, n_benchmark)))
                 if n_reference_distractors is None else n_reference_distractors)
    if pool_size < N_CHOICES - 1:
        raise ValueError(f"n_reference_distractors must be >= {N_CHOICES - 1}, got {pool_size}")
    benchmark, train = make_synthetic(seed, n_benchmark, n_train, n_distractors)
    taken = {name for e in benchmark + train for name in (*e.choices, _subject_name(e.question))}

    rng = _reference_rng(seed)
    names = _unique_names(rng, 2 * n + pool_size, exclude=taken)
    subjects, answers, distractors = names[:n], names[n:2 * n], names[2 * n:]
    labels = [i % N_CHOICES for i in range(n)]
    rng.shuffle(labels)
    reference = []
    for id_, subject, answer, wrong, label in zip(
        _ids("ref", n), subjects, answers, _deal(rng, distractors, n, N_CHOICES - 1), labels
    ):
        relation = rng.choice(RELATIONS)
        rng.shuffle(wrong)
        choices = wrong[:label] + [answer] + wrong[label:]
        reference.append(MCExample(id_, _question(relation, subject), choices, label, subject=relation))
    return reference


def _subject_name(question: str) -> str:
    """The made-up subject of "What is the <relation> of <Name>?"."""
    return question.rsplit(" of ", 1)[-1].rstrip("?")


def write_synthetic(out_dir: str | os.PathLike[str], seed: int = 0, *, n_reference: int | None = None,
                    **sizes: int) -> dict[str, Any]:
    """Write benchmark.jsonl, train.jsonl, reference.jsonl and datacard.json into out_dir; return the card.

    reference.jsonl (``make_reference``, n_reference items, default n_benchmark) is the held-back
    set `launder audit` compares the benchmark with; it is never used for training.

    `sizes` are make_synthetic's n_benchmark, n_train, n_distractors. The card records
    the seed, sizes and the sha256 of each file (equal to `examples_hash`), so a run
    can prove which data it used, and `facts` (`card_facts`): its explanation states
    only what is true of the files written (at small sizes, not every benchmark
    answer reaches train.jsonl).
    """
    resolved = {**DEFAULT_SIZES, **sizes}
    benchmark, train = make_synthetic(seed, **resolved)
    facts = card_facts(benchmark, train)
    out = Path(out_dir)
    write_jsonl(benchmark, out / "benchmark.jsonl")
    write_jsonl(train, out / "train.jsonl")
    reference = make_reference(seed, n_reference, **resolved)
    write_jsonl(reference, out / "reference.jsonl")
    card: dict[str, Any] = {
        "name": "pylaundering-synthetic",
        "generator": "pylaundering.data.synth.make_synthetic",
        "seed": seed,
        "sizes": resolved,
        "n_choices": N_CHOICES,
        "chance_accuracy": 1 / N_CHOICES,
        "relations": list(RELATIONS),
        "files": {
            "benchmark.jsonl": {"n": len(benchmark), "sha256": examples_hash(benchmark)},
            "train.jsonl": {"n": len(train), "sha256": examples_hash(train)},
            "reference.jsonl": {"n": len(reference), "sha256": examples_hash(reference)},
        },
        "reference": {
            "generator": "pylaundering.data.synth.make_reference",
            "use": "held back for `launder audit`: same construction as the benchmark with fresh subjects, "
                   "answers and distractors (no name shared with benchmark.jsonl or train.jsonl); never train on it",
        },
        "facts": facts,
        "why_chance": _explanation(facts),
    }
    atomic_write_text(out / "datacard.json", json.dumps(card, indent=2) + "\n")
    return card
