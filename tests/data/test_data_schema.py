"""MCExample validation, DataError messages, canonical JSONL and hashing."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylaundering.data import MCExample, examples_hash, load_examples, write_jsonl
from pylaundering.errors import DataError


def ex(i: int = 0, **kw) -> MCExample:
    fields = {"id": f"q{i}", "question": f"Question {i}?", "choices": ["a", "b", "c"], "label": 1}
    fields.update(kw)
    return MCExample(**fields)


def test_valid_example_stores_tuple_and_is_hashable():
    e = ex(choices=["x", "y"], label=0, context="ctx", subject="s")
    assert e.choices == ("x", "y")
    assert e.answer == "x"
    assert hash(e) == hash(ex(choices=("x", "y"), label=0, context="ctx", subject="s"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"choices": ["only"]}, "choices"),
        ({"choices": "ab"}, "choices"),
        ({"choices": {"a": 1, "b": 2}}, "choices"),
        ({"choices": ["a", " "]}, "choices"),
        ({"choices": ["a", 3]}, "choices"),
        ({"label": 3}, "label"),
        ({"label": -1}, "label"),
        ({"label": True}, "label"),
        ({"label": "1"}, "label"),
        ({"question": ""}, "question"),
        ({"id": 7}, "id"),
        ({"context": "  "}, "context"),
        ({"subject": 1}, "subject"),
    ],
)
def test_invalid_examples_name_the_field(kwargs, field):
    with pytest.raises(DataError) as info:
        ex(**kwargs)
    assert info.value.field == field
    assert f"field {field!r}" in str(info.value)


def test_dataerror_message_names_file_row_and_field():
    err = DataError("expected one of A-D, got 'E'", field="answer").located(source="data/x.csv", row=17)
    assert str(err) == "data/x.csv, row 17, field 'answer': expected one of A-D, got 'E'"
    assert isinstance(err, ValueError)
    # located() fills only what is unknown
    assert err.located(source="other", row=1).row == 17


def test_dict_round_trip_and_unknown_keys_ignored():
    e = ex(context="passage", subject="bio")
    d = e.to_dict()
    assert d == {
        "id": "q0", "question": "Question 0?", "choices": ["a", "b", "c"],
        "label": 1, "context": "passage", "subject": "bio",
    }
    assert MCExample.from_dict({**d, "extra": 1}) == e


def test_from_dict_missing_key():
    with pytest.raises(DataError, match="field 'label'"):
        MCExample.from_dict({"id": "a", "question": "q", "choices": ["a", "b"]})


def test_write_jsonl_hash_matches_file(tmp_path):
    examples = [ex(i) for i in range(5)]
    path = write_jsonl(examples, tmp_path / "sub" / "x.jsonl")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == examples_hash(examples)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [f"q{i}" for i in range(5)]
    assert os.listdir(path.parent) == ["x.jsonl"]  # no temp file left behind


def test_hash_is_order_sensitive_and_content_sensitive():
    a, b = ex(0), ex(1)
    assert examples_hash([a, b]) != examples_hash([b, a])
    assert examples_hash([a]) != examples_hash([ex(0, label=2)])
    assert examples_hash([a, b]) == examples_hash(iter([a, b]))


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_jsonl([ex(0)], tmp_path / "x.jsonl")
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_jsonl([ex(1)], path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.jsonl"]


texts = st.text(min_size=1, max_size=12).filter(lambda s: s.strip())


@st.composite
def examples(draw):
    choices = draw(st.lists(texts, min_size=2, max_size=5))
    return MCExample(
        id=draw(texts),
        question=draw(texts),
        choices=tuple(choices),
        label=draw(st.integers(0, len(choices) - 1)),
        context=draw(st.none() | texts),
        subject=draw(st.none() | texts),
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(examples(), min_size=1, max_size=4, unique_by=lambda e: e.id))
def test_jsonl_round_trip_property(tmp_path_factory, items):
    path = write_jsonl(items, tmp_path_factory.mktemp("rt") / "x.jsonl")
    loaded = load_examples(str(path))
    assert loaded.examples == items
    assert loaded.format == "pylaundering"
    assert examples_hash(loaded.examples) == examples_hash(items)
