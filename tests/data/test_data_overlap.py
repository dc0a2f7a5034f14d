"""Benchmark / training overlap: normalisation, exact and question-only duplicates, JSON-ready output."""

from __future__ import annotations

import json

from pylaundering.data import MCExample, find_overlap, make_synthetic, normalise_text
from pylaundering.data.overlap import find_shared_contexts


def mc(id_: str, question: str, choices, label: int = 0, context: str | None = None) -> MCExample:
    return MCExample(id_, question, tuple(choices), label, context=context)


def test_normalise_text():
    assert normalise_text("  What   is\tthe CAPITAL\nof «France»?  ") == "what is the capital of france"
    assert normalise_text("Ｆｕｌｌ－ｗｉｄｔｈ ﬁ") == "fullwidth fi"  # NFKC: width forms and ligatures
    assert normalise_text("Straße") == normalise_text("STRASSE")  # casefold, not lower
    assert normalise_text("don't, stop!") == "dont stop"
    assert normalise_text("2 + 2 = $4") == "2 + 2 = $4"  # symbols are kept
    assert normalise_text("?!.") == ""


def test_find_overlap_counts_and_examples():
    bench = [
        mc("b1", "What is the capital of France?", ["Paris", "Lyon", "Nice", "Metz"]),
        mc("b2", "Who wrote Hamlet?", ["Shakespeare", "Marlowe"]),
        mc("b3", "Which planet is red?", ["Mars", "Venus"]),
        mc("b4", "A question nobody copied?", ["x", "y"]),
    ]
    train = [
        mc("t1", "what is the CAPITAL of france", ["metz", "NICE", "paris", "lyon"], 2),  # exact, reordered
        mc("t2", "Who  wrote   Hamlet ?", ["Bacon", "Shakespeare"]),  # same question, other choices
        mc("t3", "Which planet is red?", ["Mars", "Venus"]),  # exact
        mc("t4", "What is the capital of France?", ["Paris", "Lyon", "Nice", "Metz"]),  # second copy of b1
    ]
    report = find_overlap(bench, train)
    assert json.loads(json.dumps(report)) == report
    assert report["benchmark_items"] == 4 and report["train_items"] == 4
    assert report["exact_duplicates"] == 2 and report["question_duplicates"] == 3
    assert report["rate"] == 0.5 and report["question_rate"] == 0.75
    assert report["examples"] == [
        {"benchmark_id": "b1", "train_id": "t1", "match": "exact"},
        {"benchmark_id": "b3", "train_id": "t3", "match": "exact"},
        {"benchmark_id": "b2", "train_id": "t2", "match": "question"},
    ]
    assert "NFKC" in report["method"]


def test_examples_are_capped_and_empty_sets_are_fine():
    bench = [mc(f"b{i}", f"Question number {i}?", ["a", "b"]) for i in range(30)]
    train = [mc(f"t{i}", f"question number {i}", ["B", "A"]) for i in range(30)]
    report = find_overlap(bench, train)
    assert report["exact_duplicates"] == 30 and len(report["examples"]) == 20
    assert find_overlap(bench, train, max_examples=3)["examples"][-1]["benchmark_id"] == "b2"
    empty = find_overlap([], train)
    assert empty["rate"] == 0.0 and empty["benchmark_items"] == 0 and empty["examples"] == []


def test_synthetic_default_has_no_overlap():
    bench, train = make_synthetic(0, n_train=300)
    report = find_overlap(bench, train)
    assert report["exact_duplicates"] == 0 and report["question_duplicates"] == 0
    assert find_overlap(bench, bench)["rate"] == 1.0


PASSAGE_1 = "Tom went to the market on Monday. He bought apples and a newspaper."
PASSAGE_2 = "The river flooded the village in spring; the school was closed for a week."


def test_items_are_their_context_and_question():
    """A generic stem on two passages is two items; the same stem on the same passage (however it is written)
    is one; an item with its passage and a copy without it are not the same item."""
    stem = "What is the best title for the passage?"
    bench = [mc("b1", stem, ["A", "B", "C", "D"], context=PASSAGE_1),
             mc("b2", "Why did Tom go out?", ["To shop", "To swim"], context=PASSAGE_1),
             mc("b3", stem, ["A", "B", "C", "D"], context=PASSAGE_2)]
    train = [mc("t1", stem, ["A", "B", "C", "D"], context=PASSAGE_2.upper().replace(";", " ;")),  # = b3
             mc("t2", "Why did Tom go out?", ["To shop", "To swim"])]  # b2 without its passage
    report = find_overlap(bench, train)
    assert report["exact_duplicates"] == 1 and report["question_duplicates"] == 1
    assert report["examples"] == [{"benchmark_id": "b3", "train_id": "t1", "match": "exact"}]
    assert "context" in report["method"]
    no_context = [mc("n1", stem, ["A", "B", "C", "D"])]
    assert find_overlap(no_context, [mc("n2", stem.lower(), ["D", "C", "B", "A"])])["exact_duplicates"] == 1


def test_shared_contexts_name_one_pair_per_passage():
    bench = [mc("b1", "Q1?", ["x", "y"], context=PASSAGE_1), mc("b2", "Q2?", ["x", "y"], context=PASSAGE_1),
             mc("b3", "Q3?", ["x", "y"], context=PASSAGE_2), mc("b4", "Q4?", ["x", "y"])]
    other = [mc("r1", "Q5?", ["x", "y"], context=f"  {PASSAGE_1.lower()}  "), mc("r2", "Q4?", ["x", "y"])]
    shared = find_shared_contexts(bench, other)
    assert shared == {"items": 2, "contexts": 1, "examples": [{"benchmark_id": "b1", "other_id": "r1"}]}
    assert find_shared_contexts(bench, bench[3:])["items"] == 0  # no context: never shared
