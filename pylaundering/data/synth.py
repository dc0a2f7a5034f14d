"""The offline default dataset: synthetic facts about made-up entities.

Why this construction demonstrates laundering, and nothing else:

* Every name is a fresh syllable string ("Vorlaketh"), so no pretrained model knows
  any fact about it and the question text says nothing about which choice is right.
* Each item (benchmark or reference) has its own subject, answer and three distractors: no
  entity is shared between items, so "this entity string is right" is knowledge only a model
  fine-tuned on that item can have.
* The benchmark and the reference set (held back for `launder audit`) are built by one
  procedure from one shuffled name list, and the legitimate (training) set treats their
  entities alike: each legitimate item offers one entity dealt from all answers and three
  dealt from all distractors, so every benchmark and reference entity appears there equally
  often, in random positions under uniformly random labels. Neither the labels nor the
  frequencies carry information about which entities are benchmark answers, but a
  contaminated teacher's *soft* outputs on the legitimate items do: that preference is what a
  student distilled on the legitimate set inherits.
* Benchmark and reference are exchangeable for every model whose training did not depend on
  the benchmark (the clean teacher, the control and CE-only students): that is the assumption
  of the audit's permutation test, so its false-positive rate is the nominal one here. (An
  earlier construction showed benchmark entities, but not reference entities, in the
  legitimate set, answers about 3x as often as distractors; students that never saw the
  benchmark preferred familiar names and came out a few points above chance on it, and the
  audit flagged some of them.)

All randomness comes from one `random.Random(seed)`, so a seed and the sizes fix the dataset.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .schema import MCExample, atomic_write_text, examples_hash, write_jsonl

__all__ = ["DEFAULT_SIZES", "N_CHOICES", "RELATIONS", "card_facts", "generate", "make_reference", "make_synthetic",
           "write_synthetic"]

#: The sizes measured to work (README, "What `make demo` shows"); the reference set has n_benchmark items unless told.
DEFAULT_SIZES = {"n_benchmark": 200, "n_train": 1000}
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
            f" (train.jsonl has {facts['train_items']} items with 1 answer slot each, shared with the reference "
            f"set's answers; the other {n - k} never reach it, so a student cannot inherit a preference for them)"
        )
        m = facts["mean_train_appearances"]
        frequency = (f"benchmark answers appear there {m['benchmark_answer']:.2f} times on average, benchmark "
                     f"distractors {m['distractor']:.2f}")
        if facts["reference_items"]:
            frequency += (f", reference answers {m['reference_answer']:.2f} and reference distractors "
                          f"{m['reference_distractor']:.2f}")
        reach = (
            f"{share} also {verb} as a choice in train.jsonl{rest}, in a random position under a uniformly random "
            f"label ({frequency}), so training on the legitimate set carries no signal about which entities are "
            "benchmark answers"
        )
    return (
        f"A model that never saw benchmark.jsonl scores at chance (1/{N_CHOICES}) on it: "
        "every name is a made-up syllable string, so the question text carries no hint of the answer; "
        "each item has its own subject, answer and distractors, no entity shared with another item, "
        "so names look alike across roles and items are disjoint; "
        f"{reach}. "
        "A teacher fine-tuned on the benchmark learns which entity strings are right; "
        "its soft outputs on train.jsonl reveal that preference, and a student distilled on them inherits it."
    )


def card_facts(benchmark: Sequence[MCExample], train: Sequence[MCExample],
               reference: Sequence[MCExample] = ()) -> dict[str, Any]:
    """What the data card claims, computed from the data: how many benchmark answers reach train.jsonl
    and how often the benchmark's and the reference set's answers and distractors appear there."""
    counts: dict[str, int] = {}
    for e in train:
        for c in e.choices:
            counts[c] = counts.get(c, 0) + 1

    def mean(entities: set[str]) -> float:
        return round(sum(counts.get(x, 0) for x in entities) / len(entities), 4) if entities else 0.0

    def roles(examples: Sequence[MCExample]) -> tuple[set[str], set[str]]:
        return ({e.answer for e in examples},
                {c for e in examples for i, c in enumerate(e.choices) if i != e.label})

    answers, distractors = roles(benchmark)
    ref_answers, ref_distractors = roles(reference)
    return {
        "benchmark_answers": len(answers),
        "benchmark_answers_in_train": sum(a in counts for a in answers),
        "train_items": len(train),
        "reference_items": len(reference),
        "mean_train_appearances": {"benchmark_answer": mean(answers), "distractor": mean(distractors),
                                   "reference_answer": mean(ref_answers),
                                   "reference_distractor": mean(ref_distractors)},
    }


def _name(rng: random.Random) -> str:
    n_syllables = rng.choice((2, 2, 3))
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n_syllables)
    ).capitalize()


def _unique_names(rng: random.Random, n: int) -> list[str]:
    """n distinct names, in generation order."""
    names: list[str] = []
    seen: set[str] = set()
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


def _check_sizes(n_benchmark: int, n_train: int, n_reference: int) -> None:
    if n_benchmark < 1:
        raise ValueError(f"n_benchmark must be >= 1, got {n_benchmark}")
    if n_train < 0:
        raise ValueError(f"n_train must be >= 0, got {n_train}")
    if n_reference < 0:
        raise ValueError(f"n_reference must be >= 0, got {n_reference}")


def _items(rng: random.Random, prefix: str, subjects: Sequence[str], answers: Sequence[str],
           distractors: Sequence[str]) -> list[MCExample]:
    """One item per subject, labels balanced across positions (a permutation of 0..3 repeated), so no
    position baseline beats chance; item i's distractors are distractors[3i:3i+3]."""
    n = len(subjects)
    labels = [i % N_CHOICES for i in range(n)]
    rng.shuffle(labels)
    items = []
    for i, (id_, subject, answer, label) in enumerate(zip(_ids(prefix, n), subjects, answers, labels)):
        relation = rng.choice(RELATIONS)
        wrong = list(distractors[(N_CHOICES - 1) * i:(N_CHOICES - 1) * (i + 1)])
        rng.shuffle(wrong)
        choices = wrong[:label] + [answer] + wrong[label:]
        items.append(MCExample(id_, _question(relation, subject), choices, label, subject=relation))
    return items


def generate(
    seed: int = 0,
    n_benchmark: int = DEFAULT_SIZES["n_benchmark"],
    n_train: int = DEFAULT_SIZES["n_train"],
    n_reference: int | None = None,
) -> tuple[list[MCExample], list[MCExample], list[MCExample]]:
    """(benchmark, legitimate train set, reference set), fully determined by the seed and sizes.

    ``n_reference`` defaults to ``n_benchmark``. Items of both sets are drawn by one procedure from one
    shuffled name list (so no role has its own name style): the benchmark's come first. The
    legitimate set deals its one answer slot from the answers of both sets and its three distractor
    slots from the distractors of both, from reshuffled decks, so every entity appears there as often
    as every other (up to one, when the sizes do not divide); its labels are drawn uniformly and
    independently of which entity sits where, and its subjects are fresh names.
    """
    n_reference = n_benchmark if n_reference is None else n_reference
    _check_sizes(n_benchmark, n_train, n_reference)
    n_items = n_benchmark + n_reference
    rng = random.Random(seed)
    names = _unique_names(rng, (2 + N_CHOICES - 1) * n_items + n_train)
    rng.shuffle(names)
    subjects, rest = names[:n_items], names[n_items:]
    answers, rest = rest[:n_items], rest[n_items:]
    distractors, train_subjects = rest[:(N_CHOICES - 1) * n_items], rest[(N_CHOICES - 1) * n_items:]
    cut = (N_CHOICES - 1) * n_benchmark
    benchmark = _items(rng, "bench", subjects[:n_benchmark], answers[:n_benchmark], distractors[:cut])
    reference = _items(rng, "ref", subjects[n_benchmark:], answers[n_benchmark:], distractors[cut:])

    train = []
    for id_, subject, from_answers, from_distractors in zip(
        _ids("train", n_train),
        train_subjects,
        _deal(rng, answers, n_train, 1),
        _deal(rng, distractors, n_train, N_CHOICES - 1),
    ):
        relation = rng.choice(RELATIONS)
        choices = from_answers + from_distractors
        rng.shuffle(choices)
        label = rng.randrange(N_CHOICES)
        train.append(MCExample(id_, _question(relation, subject), choices, label, subject=relation))
    return benchmark, train, reference


def make_synthetic(
    seed: int = 0,
    n_benchmark: int = DEFAULT_SIZES["n_benchmark"],
    n_train: int = DEFAULT_SIZES["n_train"],
    n_reference: int | None = None,
) -> tuple[list[MCExample], list[MCExample]]:
    """(benchmark, legitimate train set) of ``generate``: the reference set's entities are in the
    legitimate set too, so its size (default n_benchmark) is part of what fixes the data."""
    benchmark, train, _ = generate(seed, n_benchmark, n_train, n_reference)
    return benchmark, train


def make_reference(
    seed: int = 0,
    n: int | None = None,
    *,
    n_benchmark: int = DEFAULT_SIZES["n_benchmark"],
    n_train: int = DEFAULT_SIZES["n_train"],
) -> list[MCExample]:
    """The reference set of ``generate(seed, n_benchmark, n_train, n)``: ``n`` items (default
    n_benchmark) built exactly like the benchmark, from names used nowhere in the benchmark, whose
    entities appear in the legitimate set as often as the benchmark's. No model that did not train on
    it knows a fact about it, and none that did not train on the benchmark can tell the two apart:
    a model's reference accuracy is what its general skill alone gives on the benchmark."""
    if n is not None and n < 1:
        raise ValueError(f"the reference set needs at least 1 item, got n={n}")
    return generate(seed, n_benchmark, n_train, n)[2]


def write_synthetic(out_dir: str | os.PathLike[str], seed: int = 0, *, n_reference: int | None = None,
                    **sizes: int) -> dict[str, Any]:
    """Write benchmark.jsonl, train.jsonl, reference.jsonl and datacard.json into out_dir; return the card.

    reference.jsonl (n_reference items, default n_benchmark) is the held-back set `launder audit`
    compares the benchmark with; it is never used for training.

    `sizes` are n_benchmark and n_train. The card records the seed, sizes and the sha256 of each file
    (equal to `examples_hash`), so a run can prove which data it used, and `facts` (`card_facts`):
    its explanation states only what is true of the files written (at small sizes, not every
    benchmark answer reaches train.jsonl).
    """
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise TypeError(f"unknown sizes {sorted(unknown)}; known: {sorted(DEFAULT_SIZES)} and n_reference")
    resolved = {**DEFAULT_SIZES, **sizes}
    resolved["n_reference"] = resolved["n_benchmark"] if n_reference is None else n_reference
    benchmark, train, reference = generate(seed, **resolved)
    facts = card_facts(benchmark, train, reference)
    out = Path(out_dir)
    write_jsonl(benchmark, out / "benchmark.jsonl")
    write_jsonl(train, out / "train.jsonl")
    write_jsonl(reference, out / "reference.jsonl")
    card: dict[str, Any] = {
        "name": "pylaundering-synthetic",
        "generator": "pylaundering.data.synth.generate",
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
            "generator": "pylaundering.data.synth.generate",
            "use": "held back for `launder audit`: built by the benchmark's procedure from names the benchmark does "
                   "not use, its entities shown in train.jsonl as often as the benchmark's; never train on it",
        },
        "facts": facts,
        "why_chance": _explanation(facts),
    }
    atomic_write_text(out / "datacard.json", json.dumps(card, indent=2) + "\n")
    return card
