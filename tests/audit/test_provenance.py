"""Where B and R come from: `launder audit --split` checks them against `launder data split`'s record, and the
audit refuses a passage split across them. No trained model: every refusal comes before a model is loaded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pylaundering.audit.evidence import check_sets
from pylaundering.audit.reference import content_hash, split_reference, verify_split
from pylaundering.data.schema import MCExample, write_jsonl
from pylaundering.errors import ConfigError, DataError

runner = CliRunner()


def _items(n: int, prefix: str = "q") -> list[MCExample]:
    return [MCExample(f"{prefix}-{i}", f"Which colour is item {prefix} {i}?", [f"red {i}", f"blue {i}", f"green {i}"],
                      i % 3, subject=("art", "law")[i % 2]) for i in range(n)]


@pytest.fixture
def split(tmp_path):
    bench, ref, info = split_reference(_items(40), size=12, seed=5)
    record = tmp_path / "split.json"
    record.write_text(json.dumps({"source": "src.jsonl", **info}))
    return bench, ref, record


def test_a_recorded_split_is_certified_in_any_order(split):
    bench, ref, record = split
    ex = verify_split(record, list(reversed(bench)), ref)
    assert ex["status"] == "certified" and "hashes match" in ex["detail"]
    assert ex["seed"] == 5 and ex["source"] == "src.jsonl" and ex["record"] == str(record)


@pytest.mark.parametrize("change, match", [
    (lambda b, r: (b[:-1], r), r"the benchmark set \(27 items\) hashes to .* \(28 items\)"),
    (lambda b, r: (b, r[:-1] + [MCExample(r[-1].id, r[-1].question, r[-1].choices, (r[-1].label + 1) % 3)]),
     "the reference set"),
    (lambda b, r: (r, b), "swapped"),
])
def test_sets_that_are_not_the_splits_are_refused(split, change, match):
    bench, ref, record = split
    with pytest.raises(ConfigError, match=match) as err:
        verify_split(record, *change(bench, ref))
    assert err.value.key == "--split"


def test_an_older_record_is_checked_in_file_order(split, tmp_path):
    from pylaundering.data.schema import examples_hash

    bench, ref, _ = split
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"hashes": {"benchmark.jsonl": examples_hash(bench),
                                          "reference.jsonl": examples_hash(ref)}}))
    assert verify_split(old, bench, ref)["status"] == "certified"
    with pytest.raises(ConfigError):
        verify_split(old, list(reversed(bench)), ref)


@pytest.mark.parametrize("text, match", [(None, "no such file"), ("{not json", "unreadable JSON"),
                                         ('{"seed": 1}', "not a split record")])
def test_a_missing_or_malformed_record_is_a_data_error_naming_the_file(tmp_path, text, match):
    path = tmp_path / "split.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        verify_split(path, _items(3), _items(3, "r"))
    assert str(path) in str(err.value)


def test_content_hash_is_order_free_but_content_bound():
    a = _items(5)
    assert content_hash(a) == content_hash(a[::-1])
    assert content_hash(a) != content_hash(a[:4])
    assert content_hash(a) != content_hash(a[:4] + [MCExample("q-4", a[4].question, a[4].choices, 0)])


# ----------------------------------------------------------------------------- passages across B and R

PASSAGE = "The lighthouse keeper counted ships every night, and wrote their names in a red book."


def test_a_passage_split_across_b_and_r_is_refused_naming_both_items():
    bench = _items(6) + [MCExample("b-p1", "Who counted ships?", ["keeper", "captain"], 0, context=PASSAGE)]
    ref = _items(6, "r") + [MCExample("r-p2", "What colour was the book?", ["red", "blue"], 0,
                                      context=PASSAGE.replace("red", "red "))]
    with pytest.raises(ValueError, match="benchmark item b-p1 and reference item r-p2 share a passage"):
        check_sets(bench, ref)


def test_a_generic_stem_on_different_passages_is_not_a_duplicate():
    stem = "What is the best title for the passage?"
    bench = [MCExample(f"b{i}", stem, ["A", "B", "C", "D"], 0, context=f"{PASSAGE} Night {i}.") for i in range(5)]
    ref = [MCExample(f"r{i}", stem, ["A", "B", "C", "D"], 0, context=f"{PASSAGE} Day {i}.") for i in range(5)]
    checks = check_sets(bench, ref)
    assert checks["question_duplicates"] == 0 and checks["shared_contexts"] == 0
    with pytest.raises(ValueError, match="shares 1 question"):  # the same stem on the same passage is one item
        check_sets(bench, ref + [MCExample("r9", stem, ["A", "B", "C", "D"], 1, context=f"{PASSAGE} Night 3.")])


# ----------------------------------------------------------------------------- CLI

def _model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()  # check_mc_model reads only config.json: the refusals come before any model is loaded
    (model / "config.json").write_text(json.dumps({"architectures": ["BertForMultipleChoice"]}))
    return str(model)


def _cli(*args):
    from pylaundering.cli.app import app

    return runner.invoke(app, list(args), env={"COLUMNS": "300"})


def test_cli_split_then_audit_with_another_reference_exits_2_in_one_line(tmp_path):
    write_jsonl(_items(40), tmp_path / "src.jsonl")
    r = _cli("data", "split", str(tmp_path / "src.jsonl"), "--out", str(tmp_path / "s"), "--reference-size", "10")
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "s" / "split.json").read_text())
    assert set(record["content_sha256"]) == {"benchmark", "reference"} and record["source"].endswith("src.jsonl")
    write_jsonl(_items(10, "other"), tmp_path / "other.jsonl")
    for kind in ("teacher", "student"):
        r = _cli("audit", kind, _model(tmp_path) if kind == "teacher" else str(tmp_path / "model"), "-b",
                 str(tmp_path / "s" / "benchmark.jsonl"), "-r", str(tmp_path / "other.jsonl"), "--split",
                 str(tmp_path / "s" / "split.json"), "--out", str(tmp_path / "a"))
        assert r.exit_code == 2, r.output
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert len(lines) == 1 and "--split" in lines[0] and "the reference set (10 items)" in lines[0], lines
        assert not (tmp_path / "a").exists()


def test_cli_passage_across_b_and_r_exits_1_in_one_line(tmp_path):
    bench = [MCExample("b1", "Who counted ships?", ["keeper", "captain"], 0, context=PASSAGE)]
    write_jsonl(bench, tmp_path / "b.jsonl")
    write_jsonl([MCExample("r1", "Which book?", ["red", "blue"], 0, context=PASSAGE)], tmp_path / "r.jsonl")
    r = _cli("audit", "teacher", _model(tmp_path), "-b", str(tmp_path / "b.jsonl"), "-r", str(tmp_path / "r.jsonl"),
             "--out", str(tmp_path / "a"))
    assert r.exit_code == 1, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "b1" in lines[0] and "r1" in lines[0] and "passage" in lines[0], lines
