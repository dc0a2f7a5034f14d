"""`launder audit`'s input checks that need no trained model: a --train set that overlaps the
benchmark is refused, and sets too small for the verdict's thresholds give "insufficient data"."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from pylaundering.audit.verdict import (
    INSUFFICIENT,
    P_STRONG,
    RESAMPLES,
    decide,
    level_at_least,
    min_attainable_p,
    smallest_sizes,
)
from pylaundering.data.schema import MCExample, write_jsonl
from pylaundering.stats import permutation_test

runner = CliRunner()


def _mc(prefix: str, i: int) -> MCExample:
    return MCExample(f"{prefix}-{i}", f"Which colour is the {prefix} item number {i}?",
                     [f"red {i}", f"blue {i}", f"green {i}", f"grey {i}"], i % 4)


def test_train_overlapping_the_benchmark_is_refused_in_one_line(tmp_path):
    from pylaundering.cli.app import app

    bench = [_mc("bench", i) for i in range(10)]
    write_jsonl(bench, tmp_path / "bench.jsonl")
    write_jsonl([_mc("ref", i) for i in range(10)], tmp_path / "ref.jsonl")
    # two benchmark items in the legitimate set, one under another id and with a zero-width space
    leaked = [bench[3], MCExample("renamed", bench[7].question.replace("colour", "col\u200bour"), bench[7].choices,
                                  bench[7].label)]
    write_jsonl([_mc("train", i) for i in range(20)] + leaked, tmp_path / "train.jsonl")
    model = tmp_path / "model"
    model.mkdir()  # check_mc_model reads only config.json: the refusal comes before any model is loaded
    (model / "config.json").write_text(json.dumps({"architectures": ["BertForMultipleChoice"]}))
    r = runner.invoke(app, ["audit", "student", str(model), "-b", str(tmp_path / "bench.jsonl"), "-r",
                            str(tmp_path / "ref.jsonl"), "--train", str(tmp_path / "train.jsonl"), "--out",
                            str(tmp_path / "out")], env={"COLUMNS": "300"})
    assert r.exit_code == 1, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1, r.output
    assert "--train" in lines[0] and "2 benchmark item" in lines[0], lines[0]
    assert "bench-3" in lines[0] and "bench-7" in lines[0] and "renamed" in lines[0], lines[0]
    assert not (tmp_path / "out" / "control").exists()  # refused before training


def _extreme_p(nb: int, nr: int) -> float:
    """The core test's p on the most extreme data (every benchmark score above every reference score)."""
    return permutation_test(np.linspace(0.9, 1.0, nb), np.linspace(0.1, 0.2, nr), resamples=RESAMPLES,
                            seed=0)["p_value"]


@pytest.mark.parametrize("nb, nr", [(5, 1), (5, 3), (5, 4), (8, 8), (1, 120)])
def test_min_attainable_p_is_the_tests_own(nb, nr):
    # independent reference: the permutation test itself, run on the most extreme split
    assert min_attainable_p(nb, nr) == pytest.approx(_extreme_p(nb, nr), abs=0.003)


def test_smallest_sizes_are_the_first_that_reach_the_threshold():
    s = smallest_sizes(5, 1)
    assert s == {"reference_for_this_benchmark": 4, "benchmark_for_this_reference": 100, "equal": 5}
    assert _extreme_p(5, 4) < P_STRONG <= _extreme_p(5, 3)
    assert _extreme_p(5, 5) < P_STRONG <= _extreme_p(4, 4)
    assert min_attainable_p(100, 1) < P_STRONG <= min_attainable_p(99, 1)


def _decide(nb, nr, p=0.2):
    tests = {"p_correct": {"p_value": p, "z": 0.5}, "accuracy": {"p_value": 0.3}}
    return decide("teacher", tests, SimpleNamespace(accuracy=1.0, chance=np.full(nb, 0.25)),
                  SimpleNamespace(accuracy=0.0, chance=np.full(nr, 0.25)), sizes=(nb, nr))


def test_too_few_items_give_insufficient_data_not_clean():
    d = _decide(5, 1)
    assert d["verdict"] == INSUFFICIENT == "insufficient_data"
    why = " ".join(d["reasons"])
    assert "insufficient data" in why and "4 reference items" in why and "100 benchmark items" in why
    assert d["data_sufficiency"]["sufficient"] is False
    assert d["data_sufficiency"]["smallest_sizes"]["equal"] == 5
    assert "rule" in d["data_sufficiency"] and "C(" in d["data_sufficiency"]["rule"]
    assert not level_at_least("teacher", INSUFFICIENT, "suspicious")  # never a detection
    # enough items: the verdicts as before
    assert _decide(32, 32)["verdict"] == "clean"
    assert _decide(32, 32, p=0.001)["verdict"] == "contaminated"
    assert _decide(32, 32)["data_sufficiency"]["sufficient"] is True
