"""The synthetic default: determinism, role disjointness, label balance, no text shortcut."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from pylaundering.data import examples_hash, load_examples, make_synthetic, write_synthetic
from pylaundering.data.synth import DEFAULT_SIZES, RELATIONS, make_reference

QUESTION = re.compile(r"^What is the (\w+) of ([A-Z][a-z]+)\?$")


@pytest.fixture(scope="module")
def default():
    return make_synthetic(0)


def subject_of(example):
    return QUESTION.match(example.question).group(2)


def test_deterministic_per_seed(default):
    assert make_synthetic(0) == default
    other = make_synthetic(1)
    assert other != default
    assert examples_hash(other[0]) != examples_hash(default[0])


def test_sizes_ids_and_shape(default):
    bench, train = default
    assert (len(bench), len(train)) == (200, 1000)
    assert [e.id for e in bench[:2]] == ["bench-0001", "bench-0002"]
    assert train[-1].id == "train-1000"
    for e in bench + train:
        match = QUESTION.match(e.question)
        assert match, e.question
        assert match.group(1) == e.subject and e.subject in RELATIONS
        assert len(e.choices) == 4 and len(set(e.choices)) == 4
        assert all(re.fullmatch(r"[A-Z][a-z]{3,}", c) for c in e.choices)
        assert max(len(e.question) + len(c) for c in e.choices) < 80  # short: fits 48 tokens


def test_role_disjointness(default):
    bench, train = default
    answers = [e.answer for e in bench]
    assert len(set(answers)) == len(answers)  # each answer is the answer of exactly one item
    bench_distractors = {c for e in bench for c in e.choices if c != e.answer}
    assert not bench_distractors & set(answers)  # never a distractor in the benchmark

    bench_subjects = {subject_of(e) for e in bench}
    train_subjects = {subject_of(e) for e in train}
    assert len(bench_subjects) == 200 and len(train_subjects) == 1000
    assert not bench_subjects & train_subjects
    assert not (bench_subjects | train_subjects) & (set(answers) | bench_distractors)

    train_choices = Counter(c for e in train for c in e.choices)
    for e in train:  # 2 benchmark answers + 2 distractor-pool entities per item
        assert sum(c in set(answers) for c in e.choices) == 2
    assert set(answers) <= set(train_choices)  # every benchmark answer reaches the legitimate set
    train_distractors = set(train_choices) - set(answers)
    assert not train_distractors & train_subjects
    assert len(bench_distractors | train_distractors) <= DEFAULT_SIZES["n_distractors"]
    # dealt evenly: each answer appears 2 * 1000 / 200 = 10 times (+-1)
    assert {train_choices[a] for a in answers} <= {9, 10, 11}


def test_label_distribution(default):
    bench, train = default
    assert Counter(e.label for e in bench) == {0: 50, 1: 50, 2: 50, 3: 50}
    counts = Counter(e.label for e in train)
    assert all(200 <= counts[k] <= 300 for k in range(4)), counts
    answers = {e.answer for e in bench}
    # labels are independent of roles: about half the legitimate labels point at a benchmark answer
    on_answer = sum(e.answer in answers for e in train) / len(train)
    assert 0.44 <= on_answer <= 0.56


BASELINES = {
    "longest": lambda e: max(range(4), key=lambda i: (len(e.choices[i]), i)),
    "shortest": lambda e: min(range(4), key=lambda i: (len(e.choices[i]), i)),
    "first alphabetically": lambda e: min(range(4), key=lambda i: e.choices[i]),
    "last alphabetically": lambda e: max(range(4), key=lambda i: e.choices[i]),
    "shares most letters with the question": lambda e: max(
        range(4), key=lambda i: len(set(e.choices[i].lower()) & set(subject_of(e).lower()))
    ),
    "same first letter as the subject": lambda e: max(
        range(4), key=lambda i: e.choices[i][0] == subject_of(e)[0]
    ),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_no_text_only_shortcut(name, seed):
    bench, _ = make_synthetic(seed)
    accuracy = sum(BASELINES[name](e) == e.label for e in bench) / len(bench)
    assert 0.15 <= accuracy <= 0.35, f"{name}: {accuracy:.3f}"


def test_small_sizes_and_validation():
    bench, train = make_synthetic(3, n_benchmark=2, n_train=5, n_distractors=3)
    assert len(bench) == 2 and len(train) == 5
    for bad in ({"n_benchmark": 1}, {"n_distractors": 2}, {"n_train": -1}):
        with pytest.raises(ValueError):
            make_synthetic(0, **bad)


def test_write_synthetic(tmp_path):
    card = write_synthetic(tmp_path / "synth", seed=4, n_benchmark=20, n_train=40, n_distractors=60)
    out = tmp_path / "synth"
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.jsonl", "datacard.json", "reference.jsonl",
                                                     "train.jsonl"]
    assert json.loads((out / "datacard.json").read_text()) == card
    assert card["seed"] == 4
    assert card["sizes"] == {"n_benchmark": 20, "n_train": 40, "n_distractors": 60}
    for name in ("benchmark.jsonl", "train.jsonl", "reference.jsonl"):
        assert card["files"][name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    bench, train = make_synthetic(4, n_benchmark=20, n_train=40, n_distractors=60)
    assert load_examples(str(out / "benchmark.jsonl")).examples == bench
    assert load_examples(str(out / "train.jsonl")).examples == train
    assert load_examples(str(out / "reference.jsonl")).examples == make_reference(4, n_benchmark=20, n_train=40,
                                                                                   n_distractors=60)
    assert card["files"]["reference.jsonl"]["n"] == 20
    assert "chance" in card["why_chance"] and "disjoint" in card["why_chance"]


def test_card_states_what_is_true_at_tiny_sizes(tmp_path):
    card = write_synthetic(tmp_path / "tiny", seed=1, n_benchmark=20, n_train=5, n_distractors=30)
    bench, train = make_synthetic(1, n_benchmark=20, n_train=5, n_distractors=30)
    in_train = {c for e in train for c in e.choices}
    reached = sum(e.answer in in_train for e in bench)
    assert reached == 10  # 5 items x 2 answer slots: half the answers never reach train.jsonl
    assert card["facts"]["benchmark_answers"] == 20
    assert card["facts"]["benchmark_answers_in_train"] == reached
    assert card["facts"]["mean_train_appearances"] == {"benchmark_answer": 0.5, "distractor": round(10 / 30, 4)}
    why = card["why_chance"]
    assert "every benchmark answer also appears" not in why
    assert "10 of the 20 benchmark answers also appear as a choice in train.jsonl" in why
    assert "more often than distractors, 0.50 vs 0.33 times on average, but" in why

    empty = write_synthetic(tmp_path / "empty", seed=1, n_benchmark=4, n_train=0, n_distractors=3)
    assert "train.jsonl is empty" in empty["why_chance"] and "every benchmark answer" not in empty["why_chance"]


def test_card_at_default_sizes_says_every_answer_reaches_train(tmp_path):
    card = write_synthetic(tmp_path / "default", seed=0)
    assert card["facts"]["benchmark_answers_in_train"] == card["facts"]["benchmark_answers"] == 200
    assert "every benchmark answer also appears as a choice in train.jsonl" in card["why_chance"]
    assert "more often than distractors" in card["why_chance"]


# ----------------------------------------------------------------------------- reference set

# make_synthetic's output before the reference set existed (computed from the commit before it):
# adding make_reference must not move a single byte of the benchmark or train set.
BEFORE_REFERENCE = {
    (0, None): ("d702c7e32a2c009e8f93c18cc140d14bb13bc6d5a87c09de029443bf9dfb3706",
                "a3a8fc6d33fd8cb09a3ab05c36b7461d6c527df4f76f647dbc015332991059f9"),
    (3, (32, 128)): ("3a71f5a931dd202c694ffcf1b4e338dfb649b838c5fecee2ba4738f9e5d75367",
                     "b53bb7007310150fbdf47c89fdcec19e4a91958b433dcf86f4c9a0ce5787d1fb"),
}


def test_make_synthetic_unchanged_by_the_reference_set(default):
    assert (examples_hash(default[0]), examples_hash(default[1])) == BEFORE_REFERENCE[(0, None)]
    bench, train = make_synthetic(3, n_benchmark=32, n_train=128)
    assert (examples_hash(bench), examples_hash(train)) == BEFORE_REFERENCE[(3, (32, 128))]


def _names(examples):
    return {name for e in examples for name in (*e.choices, subject_of(e))}


@pytest.mark.parametrize("seed, sizes", [(0, {}), (3, {"n_benchmark": 32, "n_train": 128}),
                                         (5, {"n_benchmark": 8, "n_train": 16, "n_distractors": 24})])
def test_reference_names_are_fresh(seed, sizes):
    bench, train = make_synthetic(seed, **sizes)
    ref = make_reference(seed, **sizes)
    assert len(ref) == len(bench)
    assert not _names(ref) & _names(bench + train)
    subjects = [subject_of(e) for e in ref]
    answers = [e.answer for e in ref]
    distractors = {c for e in ref for i, c in enumerate(e.choices) if i != e.label}
    assert len(set(subjects)) == len(ref) and len(set(answers)) == len(ref)  # one fact per subject and answer
    assert not set(answers) & distractors and not set(subjects) & (set(answers) | distractors)
    # drawn the same way: a distractor pool of the benchmark's ratio, dealt evenly
    bench_pool = {c for e in bench for i, c in enumerate(e.choices) if i != e.label}
    assert len(distractors) == len(bench_pool)


def test_reference_shape_balance_and_determinism():
    ref = make_reference(0, 40, n_benchmark=20, n_train=40, n_distractors=60)
    assert len(ref) == 40 and ref[0].id == "ref-0001"
    assert make_reference(0, 40, n_benchmark=20, n_train=40, n_distractors=60) == ref
    assert make_reference(1, 40, n_benchmark=20, n_train=40, n_distractors=60) != ref
    assert Counter(e.label for e in ref) == {0: 10, 1: 10, 2: 10, 3: 10}
    for e in ref:
        assert QUESTION.match(e.question).group(1) in RELATIONS and e.subject in RELATIONS
        assert len(e.choices) == 4 and len(set(e.choices)) == 4
    with pytest.raises(ValueError):
        make_reference(0, 0)
