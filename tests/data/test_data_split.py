"""`launder data split`: a seeded benchmark/reference split, stratified by subject, exact sizes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from pylaundering.audit.reference import split_reference
from pylaundering.data import load_examples
from pylaundering.data.schema import MCExample, write_jsonl

runner = CliRunner()


def items(counts: dict[str, int]) -> list[MCExample]:
    out = []
    for subject, n in counts.items():
        out += [MCExample(f"{subject}-{i}", f"Question {i} about {subject}?", ["a", "b", "c", "d"], i % 4,
                          subject=subject or None) for i in range(n)]
    return out


def test_stratified_sizes_and_disjoint():
    ex = items({"law": 50, "math": 30, "bio": 20})
    bench, ref, info = split_reference(ex, fraction=0.3, seed=0)
    assert (len(bench), len(ref)) == (70, 30)
    assert Counter(e.subject for e in ref) == {"law": 15, "math": 9, "bio": 6}  # exactly proportional here
    assert not {e.id for e in bench} & {e.id for e in ref}
    assert sorted(e.id for e in bench + ref) == sorted(e.id for e in ex)
    assert [e.id for e in bench] == [e.id for e in ex if e in bench]  # source order kept
    assert info["per_subject"]["law"] == {"benchmark": 35, "reference": 15}


def test_largest_remainder_rounding_brute_force():
    ex = items({"a": 7, "b": 5, "c": 3, "": 2})  # "" -> no subject
    for size in range(1, 17):
        bench, ref, info = split_reference(ex, size=size, seed=1)
        assert len(ref) == size and len(bench) == 17 - size
        got = Counter(e.subject or "(none)" for e in ref)
        for s, n in {"a": 7, "b": 5, "c": 3, "(none)": 2}.items():
            quota = n * size / 17
            assert int(quota) <= got[s] <= int(quota) + 1  # within one item of proportional


def test_seeded():
    ex = items({"x": 40, "y": 40})
    assert split_reference(ex, fraction=0.25, seed=3) == split_reference(ex, fraction=0.25, seed=3)
    assert split_reference(ex, fraction=0.25, seed=3)[1] != split_reference(ex, fraction=0.25, seed=4)[1]


@pytest.mark.parametrize("kwargs, match", [({"fraction": 1.0}, "between 0 and 1"), ({"size": 10}, "between 1 and 9"),
                                           ({}, "exactly one"), ({"fraction": 0.3, "size": 2}, "exactly one")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_reference(items({"x": 10}), **kwargs)


def test_cli_split_writes_files_and_card(tmp_path):
    from pylaundering.cli.app import app

    ex = items({"law": 20, "math": 12})
    write_jsonl(ex, tmp_path / "src.jsonl")
    r = runner.invoke(app, ["data", "split", str(tmp_path / "src.jsonl"), "--out", str(tmp_path / "o"),
                            "--reference-size", "8", "--seed", "2"])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "o" / "split.json").read_text())
    assert card["sizes"] == {"source": 32, "benchmark": 24, "reference": 8}
    assert card["seed"] == 2 and card["per_subject"]["law"]["reference"] == 5
    for name in ("benchmark.jsonl", "reference.jsonl"):
        assert card["hashes"][name] == hashlib.sha256((tmp_path / "o" / name).read_bytes()).hexdigest()
    ref = load_examples(str(tmp_path / "o" / "reference.jsonl")).examples
    assert len(ref) == 8 and card["overlap"]["question_duplicates"] == 0
    r = runner.invoke(app, ["data", "split", str(tmp_path / "src.jsonl"), "--out", str(tmp_path / "p"),
                            "--reference-fraction", "0.5", "--reference-size", "3"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["data", "split", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "p")])
    assert r.exit_code == 1 and "missing.jsonl" in r.output
