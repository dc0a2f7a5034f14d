"""Label conventions: 1-based ids are recognised or refused (never read shifted), label sets come from what
the dataset declares (class files, label_text, ClassLabel, label_names=) and are shared by name across loads;
published layouts (JSON Lines in .json, nested choices, AG News CSV, TweetEval files, split folders)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pylaundering.data import MCExample, load_examples, write_jsonl
from pylaundering.data.labelset import remap_examples, shared_label_set
from pylaundering.errors import DataError

ONE_BASED = r"the 'label' column looks 1-based"


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def csv_rows(path: Path, rows: list[list], header: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def mc_items(n: int = 12, k: int = 4) -> list[MCExample]:
    return [MCExample(f"q{i}", f"question {i}?", tuple(f"c{i}-{j}" for j in range(k)), (i * 7) % k) for i in range(n)]


# --------------------------------------------------------------------------- multiple-choice answer indices


def test_one_based_mc_indices_are_refused_never_shifted(tmp_path):
    items = mc_items()
    assert {e.label for e in items} == {0, 1, 2, 3}
    path = jsonl(tmp_path / "b.jsonl", [{**e.to_dict(), "label": e.label + 1} for e in items])
    for kwargs in ({}, {"skip_malformed": True}, {"limit": 2}):  # a limit must not hide the shift either
        with pytest.raises(DataError, match=rf"b.jsonl: {ONE_BASED}: no row has 0, and 3 rows are one past the"
                                            r" last choice \(.*b.jsonl, row 2: 4 with 4 choices\)"):
            load_examples(str(path), **kwargs)
    assert load_examples(str(path), label_base=1).examples == items
    assert load_examples(str(path), label_base=1).label_convention == (
        "1-based answer indices (label_base=1), read as 0-based")
    # the 0-based original loads, and its convention says so
    original = load_examples(str(write_jsonl(items, tmp_path / "a.jsonl")))
    assert original.examples == items and original.label_convention == "0-based answer indices"


def test_a_plain_bad_row_in_a_zero_based_file_is_still_a_row_error(tmp_path):
    rows = [e.to_dict() for e in mc_items()]
    rows[5]["label"] = 4  # one past the end, but the column has 0s: this row is wrong, not the file's base
    path = jsonl(tmp_path / "b.jsonl", rows)
    with pytest.raises(DataError, match=r"b.jsonl, row 6, field 'label': expected 0 <= label < 4, got 4"):
        load_examples(str(path))
    assert len(load_examples(str(path), skip_malformed=True).examples) == 11


@pytest.mark.parametrize("fmt, column, make", [
    ("mmlu", "answer", lambda e, v: {"question": e.question, "choices": list(e.choices), "answer": v}),
    ("medmcqa", "cop", lambda e, v: {"question": e.question, **{f"op{c}": t for c, t in zip("abcd", e.choices)},
                                     "cop": v}),
    ("csv", "label", lambda e, v: {"question": e.question, "choices": json.dumps(list(e.choices)), "label": v}),
])
def test_one_based_indices_in_other_layouts(tmp_path, fmt, column, make):
    items = mc_items()
    rows = [make(e, e.label + 1) for e in items]
    path = tmp_path / "x.csv"
    csv_rows(path, [list(r.values()) for r in rows], list(rows[0]))
    with pytest.raises(DataError, match=rf"the '{column}' column looks 1-based"):
        load_examples(str(path), fmt)
    assert [e.answer for e in load_examples(str(path), fmt, label_base=1).examples] == [e.answer for e in items]


def test_letters_and_keys_have_no_base(tmp_path):
    rows = [{"question": "q?", "choices": ["a", "b", "c"], "answer": "C"}, {"question": "r?", "choices": ["a", "b"],
                                                                          "answer": "B"}]
    res = load_examples(str(jsonl(tmp_path / "m.jsonl", rows)), "mmlu")
    assert [e.label for e in res.examples] == [2, 1] and res.label_convention == "answer letters"


# --------------------------------------------------------------------------- classification ids


def test_one_based_class_ids_refused_for_fixed_and_declared_label_sets(tmp_path):
    rows = [{"sentence": f"s{i}", "label": i % 2} for i in range(6)]
    zero = load_examples(str(jsonl(tmp_path / "sst.jsonl", rows)))
    assert zero.format == "sst2" and [e.label for e in zero.examples] == [0, 1] * 3
    shifted = jsonl(tmp_path / "sst1.jsonl", [{**r, "label": r["label"] + 1} for r in rows])
    with pytest.raises(DataError, match=rf"sst1.jsonl: {ONE_BASED}.*2 with 2 classes"):
        load_examples(str(shifted))
    assert [e.answer for e in load_examples(str(shifted), label_base=1).examples] == [e.answer for e in zero.examples]
    generic = jsonl(tmp_path / "g.jsonl", [{"text": f"t{i}", "label": i % 3 + 1} for i in range(6)])
    with pytest.raises(DataError, match=ONE_BASED):  # a declared set of 3 names, ids 1..3
        load_examples(str(generic), label_names=("a", "b", "c"))


def test_generic_integer_column_of_exactly_one_to_k_is_ambiguous(tmp_path):
    path = jsonl(tmp_path / "g.jsonl", [{"text": f"t{i}", "label": i % 3 + 1} for i in range(6)])
    with pytest.raises(DataError, match=r"g.jsonl, field 'label': integer labels 1..3 with no 0 in the whole source"):
        load_examples(str(path))
    one = load_examples(str(path), label_base=1)
    assert one.label_names == ("0", "1", "2") and [e.label for e in one.examples] == [0, 1, 2, 0, 1, 2]
    zero = load_examples(str(path), label_base=0)  # 0 is a class this file lacks
    assert zero.label_names == ("0", "1", "2", "3") and [e.label for e in zero.examples] == [1, 2, 3, 1, 2, 3]
    gaps = load_examples(str(jsonl(tmp_path / "h.jsonl", [{"text": "a", "label": 2}, {"text": "b", "label": 5}])))
    assert gaps.label_names == tuple("012345")  # not 1..K: ids as written, classes 0, 1, 3, 4 empty


def test_ag_news_csv_is_one_based(tmp_path):
    path = csv_rows(tmp_path / "news" / "test.csv", [["3", "Stocks", "fall."], ["1", "Summit", ""],
                                                     ["4", "", "New chip."]])
    res = load_examples(str(path))
    assert (res.format, res.label_names) == ("ag_news_csv", ("World", "Sports", "Business", "Sci/Tech"))
    assert [(e.question, e.answer) for e in res.examples] == [("Stocks fall.", "Business"), ("Summit", "World"),
                                                               ("New chip.", "Sci/Tech")]
    assert res.label_source == "the ag_news_csv format's names"
    (path.parent / "classes.txt").write_text("W\nS\nB\nT\n", encoding="utf-8")
    named = load_examples(str(path.parent))
    assert named.label_names == ("W", "S", "B", "T") and named.label_source == "class file classes.txt"
    assert [e.label for e in named.examples] == [2, 0, 3]
    csv_rows(path, [["1", "a", "b"], ["0", "c", "d"]])
    with pytest.raises(DataError, match=r"test.csv, row 2, field 'class': id 0, but ids here count from 1"):
        load_examples(str(path))
    csv_rows(path, [["1", "a", "b"], ["5", "c", "d"]])
    with pytest.raises(DataError, match=r"row 2, field 'class': unknown label '4'; known labels: 0 'W'"):
        load_examples(str(path))  # class 5 of four: shifted to id 4, out of range
    csv_rows(path, [["1", "a", "b"], ["2", "c"]])
    with pytest.raises(DataError, match=r"row 2: expected 3 cells \(class, title, description\), got 2"):
        load_examples(str(path), "ag_news_csv")


# --------------------------------------------------------------------------- label sets the data declares


def test_label_text_names_the_ids_and_must_agree(tmp_path):
    rows = [{"text": "t1", "label": 1, "label_text": "joy"}, {"text": "t0", "label": 0, "label_text": "sadness"},
            {"text": "t2", "label": 1, "label_text": "joy"}]
    res = load_examples(str(jsonl(tmp_path / "e.jsonl", rows)))
    assert res.label_names == ("sadness", "joy") and [e.label for e in res.examples] == [1, 0, 1]
    assert res.label_source == "label_text column"
    bad = jsonl(tmp_path / "bad.jsonl", rows + [{"text": "t3", "label": 0, "label_text": "joy"}])
    with pytest.raises(DataError, match=r"bad.jsonl, row 4, field 'label_text': 'joy' for label 0, which"
                                        r" bad.jsonl:2 names 'sadness'"):
        load_examples(str(bad))
    twice = jsonl(tmp_path / "twice.jsonl", rows + [{"text": "t3", "label": 2, "label_text": "joy"}])
    with pytest.raises(DataError, match=r"twice.jsonl, row 4, field 'label_text': 'joy' for label 2, but"
                                        r" twice.jsonl:1 gives it label 1"):
        load_examples(str(twice))
    declared = jsonl(tmp_path / "d.jsonl", rows[:1])
    with pytest.raises(DataError, match=r"row 1, field 'label_text': 'joy' does not match label 1 \('b'\)"):
        load_examples(str(declared), label_names=("a", "b"))


def test_class_files_beside_the_data(tmp_path):
    folder = tmp_path / "spam"
    path = csv_rows(folder / "data.csv", [["cheap pills", "1"], ["lunch?", "0"]], ["text", "label"])
    (folder / "labels.txt").write_text("ham\nspam\n", encoding="utf-8")
    res = load_examples(str(path))
    assert (res.label_names, res.label_source) == (("ham", "spam"), "class file labels.txt")
    assert [e.answer for e in res.examples] == ["spam", "ham"]
    (folder / "classes.txt").write_text("ham\nspam\neggs\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels.txt and classes.txt name different label sets"):
        load_examples(str(path))
    (folder / "classes.txt").unlink()
    (folder / "labels.txt").write_text("1\tham\n2\tspam\n", encoding="utf-8")  # numbered from 1: ids count from 1
    csv_rows(path, [["cheap pills", "2"], ["lunch?", "1"]], ["text", "label"])
    res = load_examples(str(path))
    assert [e.answer for e in res.examples] == ["spam", "ham"]
    assert res.label_convention == "1-based class ids (as labels.txt numbers them), read as 0-based"
    (folder / "labels.txt").write_text("ham\nham\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels.txt: duplicate names \['ham'\]; a class file lists"):
        load_examples(str(path))
    # multiple-choice data ignores class files
    write_jsonl(mc_items(2), folder / "mc" / "b.jsonl")
    (folder / "mc" / "labels.txt").write_text("x\n", encoding="utf-8")
    assert len(load_examples(str(folder / "mc" / "b.jsonl")).examples) == 2


def test_label_names_argument(tmp_path):
    path = jsonl(tmp_path / "g.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": "pos"}])
    res = load_examples(str(path), label_names=["neg", "pos", "mixed"])
    assert res.label_names == ("neg", "pos", "mixed") and [e.answer for e in res.examples] == ["neg", "pos"]
    assert res.label_source == "given (label_names)"
    with pytest.raises(DataError, match=r"label_names applies to classification formats, not 'pylaundering'"):
        load_examples(str(write_jsonl(mc_items(2), tmp_path / "m.jsonl")), label_names=["a", "b"])
    with pytest.raises(DataError, match=r"label_names: expected at least 2 distinct"):
        load_examples(str(path), label_names=["a", "a"])


def test_classlabel_of_a_parquet_file(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{"text": "meh", "label": 1}, {"text": "bad", "label": 1}])
    meta = {"info": {"features": {"text": {"dtype": "string", "_type": "Value"},
                                  "label": {"names": ["neg", "pos", "neutral"], "_type": "ClassLabel"}}}}
    pq.write_table(table.replace_schema_metadata({"huggingface": json.dumps(meta)}), tmp_path / "d.parquet")
    res = load_examples(str(tmp_path / "d.parquet"))
    assert res.label_names == ("neg", "pos", "neutral") and [e.answer for e in res.examples] == ["pos", "pos"]
    assert res.label_source == "the dataset's ClassLabel feature 'label'"


# --------------------------------------------------------------------------- one label set across loads


def _cls(tmp_path: Path, name: str, labels: list[str]):
    return load_examples(str(jsonl(tmp_path / name, [{"text": f"{name} {i}", "label": v}
                                                     for i, v in enumerate(labels)])))


def test_union_remaps_by_name(tmp_path):
    every = [f"intent_{i:02d}" for i in range(77)]
    train = _cls(tmp_path, "train.jsonl", every * 2)
    missing = set(every[::19])  # 5 classes absent from the benchmark subset
    bench = _cls(tmp_path, "bench.jsonl", [n for n in every * 4 if n not in missing][:300])
    assert len(bench.label_names) == 72 and len(train.label_names) == 77
    shared = shared_label_set([bench, train])
    assert shared.names == train.label_names and "in the order of" in shared.source
    b, t = shared.results
    assert [e.answer for e in b.examples] == [e.answer for e in bench.examples]
    assert all(e.choices == shared.names and shared.names[e.label] == e.answer for e in b.examples)
    assert b.label_names == shared.names and t.examples == train.examples


def test_union_orders(tmp_path):
    a, b = _cls(tmp_path, "a.jsonl", ["x", "z"]), _cls(tmp_path, "b.jsonl", ["y", "z"])
    assert shared_label_set([a, b]).names == ("x", "y", "z")  # sorted sets: sorted union
    ids = shared_label_set([_cls(tmp_path, "i.jsonl", ["0", "2"]), _cls(tmp_path, "j.jsonl", ["10", "1"])])
    assert ids.names == tuple(str(i) for i in range(11))  # ids sorted as numbers
    given = shared_label_set([a, b], names=["z", "y", "x", "w"])
    assert given.names == ("z", "y", "x", "w") and [e.label for e in given.results[0].examples] == [2, 0]


def test_union_refuses_what_it_cannot_reconcile(tmp_path):
    words, ids = _cls(tmp_path, "w.jsonl", ["neg", "pos"]), _cls(tmp_path, "i.jsonl", [0, 1])
    with pytest.raises(DataError, match=r"cannot reconcile the label sets: .*i.jsonl names its classes by id"):
        shared_label_set([words, ids])
    with pytest.raises(DataError, match=r"'NEG' and 'neg' differ only in case"):
        shared_label_set([words, _cls(tmp_path, "u.jsonl", ["NEG", "POS"])])
    with pytest.raises(DataError, match=r"w.jsonl: labels \['pos'\] are not in the given label set"):
        shared_label_set([words], names=["neg", "mixed"])
    mc = load_examples(str(write_jsonl(mc_items(4), tmp_path / "m.jsonl")))
    with pytest.raises(DataError, match=r"m.jsonl: its examples have 4 different choice sets"):
        shared_label_set([mc])
    with pytest.raises(DataError, match=r"'maybe' of 'x' is not in the label set"):
        remap_examples([MCExample("x", "t", ("yes", "maybe"), 1)], ["yes", "no"])


# --------------------------------------------------------------------------- published layouts


def test_json_lines_in_a_json_file(tmp_path):
    rows = [{"id": "a1", "question": "Q?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "B"},
            {"id": "a2", "question": "R?", "choices": {"text": ["u", "v"], "label": ["A", "B"]}, "answerKey": "A"}]
    path = tmp_path / "arc.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = load_examples(str(path))
    assert res.format == "arc" and [(e.id, e.answer) for e in res.examples] == [("a1", "y"), ("a2", "u")]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")  # a JSON list still reads as one
    assert load_examples(str(path)).examples == res.examples
    ours = tmp_path / "ours.json"
    ours.write_text("\n".join(json.dumps({"question": "Q?", "choices": ["a", "b"], "label": i}) for i in (1, 0)))
    assert [e.label for e in load_examples(str(ours)).examples] == [1, 0]
    ours.write_text(json.dumps({"question": "Q?", "choices": ["a", "b"], "label": 1}) + "\n{broken\n")
    with pytest.raises(DataError, match=r"ours.json, row 2: invalid JSON"):
        load_examples(str(ours), "json")
    ours.write_text(json.dumps({"rows": [1, 2]}, indent=1))
    with pytest.raises(DataError, match=r"expected a JSON list of objects \(or JSON Lines\), got dict"):
        load_examples(str(ours), "json")


def test_nested_and_hub_multiple_choice_layouts(tmp_path):
    nested = {"id": "n1", "answerKey": "2", "question": {"stem": "Pick two.", "choices": [
        {"label": "1", "text": "one"}, {"label": "2", "text": "two"}, {"label": "3", "text": "three"}]}}
    res = load_examples(str(jsonl(tmp_path / "arc_original.jsonl", [nested])))
    assert res.format == "mc_nested" and (res.examples[0].question, res.examples[0].answer) == ("Pick two.", "two")
    concept = {**nested, "question": {**nested["question"], "question_concept": "numbers"}}
    assert load_examples(str(jsonl(tmp_path / "c.jsonl", [concept]))).format == "commonsense_qa"
    flat = {"id": "f1", "question": "Where?", "question_concept": "place", "answerKey": "B",
            "choices": {"label": ["A", "B"], "text": ["here", "there"]}}
    res = load_examples(str(jsonl(tmp_path / "f.jsonl", [flat])))
    assert res.format == "commonsense_qa" and res.examples[0].answer == "there"
    obqa = {"id": "o1", "question_stem": "Stem", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}
    assert load_examples(str(jsonl(tmp_path / "o.jsonl", [obqa]))).examples[0].question == "Stem"
    bad = {**nested, "answerKey": "4"}
    with pytest.raises(DataError, match=r"b.jsonl, row 1, field 'answerKey': expected one of \['1', '2', '3'\]"):
        load_examples(str(jsonl(tmp_path / "b.jsonl", [bad])))
    empty = {**nested, "question": {"stem": " ", "choices": nested["question"]["choices"]}}
    with pytest.raises(DataError, match=r"field 'question.stem': missing or empty"):
        load_examples(str(jsonl(tmp_path / "e.jsonl", [empty])))


def test_nli_files_named_mnli_are_mnli(tmp_path):
    row = {"premise": "p", "hypothesis": "h", "label": "neutral"}
    assert load_examples(str(jsonl(tmp_path / "mnli_dev.jsonl", [row]))).format == "mnli"
    assert load_examples(str(jsonl(tmp_path / "multinli" / "dev.jsonl", [row]))).format == "mnli"
    assert load_examples(str(jsonl(tmp_path / "snli" / "pairs.jsonl", [row]))).format == "snli"  # names no mnli
    assert load_examples(str(jsonl(tmp_path / "hub.jsonl", [{**row, "genre": "fiction"}]))).format == "mnli"


def test_split_folders(tmp_path):
    folder = tmp_path / "ds"
    for split, n in (("train", 3), ("dev", 2)):
        write_jsonl(mc_items(n), folder / f"{split}.jsonl")
    with pytest.raises(DataError, match=r"ds: pass a split \(split=, or SOURCE::split\); this folder has splits:"
                                        r" dev, train$"):
        load_examples(str(folder))
    assert len(load_examples(str(folder), role="train").examples) == 3
    with pytest.raises(DataError, match=r"no split 'test' \(the default for a benchmark\); available splits: dev,"
                                        r" train; pass one"):
        load_examples(str(folder), role="benchmark")
    res = load_examples(f"{folder}::validation")  # dev answers to validation
    assert (res.split, res.splits, len(res.examples)) == ("dev", ["dev", "train"], 2)
    with pytest.raises(DataError, match=r"subset 'x' given, but this folder holds split files"):
        load_examples(f"{folder}:x:dev")


def test_tweet_eval_files(tmp_path):
    folder = tmp_path / "tweeteval" / "hate"
    folder.mkdir(parents=True)
    (folder / "mapping.txt").write_text("0\tnon-hate\n1\thate", encoding="utf-8")
    (folder / "test_text.txt").write_text("nice day \nugh them\n", encoding="utf-8")
    (folder / "test_labels.txt").write_text("0\n1\n", encoding="utf-8")
    res = load_examples(str(folder))
    assert (res.format, res.split, res.label_names) == ("tweet_eval_txt", "test", ("non-hate", "hate"))
    assert [(e.id, e.question, e.answer) for e in res.examples] == [("test_text.txt:1", "nice day", "non-hate"),
                                                                     ("test_text.txt:2", "ugh them", "hate")]
    (folder / "test_labels.txt").write_text("0\n1\n1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test_text.txt: 2 lines, but test_labels.txt has 3: the two files must"):
        load_examples(str(folder))
    (folder / "test_labels.txt").write_text("0\n2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test_text.txt \(\+ test_labels.txt\), row 2, field 'label': "
                                        r"unknown label '2'"):
        load_examples(str(folder))


def test_hub_classlabel_names_the_classes(monkeypatch):
    datasets = pytest.importorskip("datasets")
    from pylaundering.data import hub

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["billing", "outage", "other"])})
    rows = datasets.Dataset.from_dict({"text": ["pay?", "down!"], "label": [0, 1]}, features=features)
    monkeypatch.setattr(hub, "hub_offline_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: rows)
    res = load_examples("someone/tickets", "classification", split="test")
    assert res.label_names == ("billing", "outage", "other")  # "other" has no row here: still a class
    assert [e.answer for e in res.examples] == ["billing", "outage"]
    assert (res.label_source, res.label_convention) == ("the dataset's ClassLabel feature 'label'",
                                                        "0-based class ids (ClassLabel ids)")


@pytest.mark.parametrize("spec, fmt, call, answer", [
    ("allenai/openbookqa", "openbookqa", (("allenai/openbookqa", "main"), {"split": "test"}), "b"),
    ("tau/commonsense_qa", "commonsense_qa", (("tau/commonsense_qa", None), {"split": "validation"}), "b"),
    ("stanfordnlp/sst2", "sst2", (("stanfordnlp/sst2", None), {"split": "validation"}), "positive"),
    ("nyu-mll/glue:sst2", "sst2", (("nyu-mll/glue", "sst2"), {"split": "validation"}), "positive"),
    ("nyu-mll/multi_nli", "mnli", (("nyu-mll/multi_nli", None), {"split": "validation_matched"}), "neutral"),
    ("nyu-mll/glue:mnli", "mnli", (("nyu-mll/glue", "mnli"), {"split": "validation_matched"}), "neutral"),
])
def test_hub_names_of_the_new_formats(monkeypatch, spec, fmt, call, answer):
    datasets = pytest.importorskip("datasets")
    from pylaundering.data import hub

    row = {"id": "x", "question": "Q?", "question_stem": "Q?", "question_concept": "c", "answerKey": "B",
           "choices": {"label": ["A", "B"], "text": ["a", "b"]}, "sentence": "fine", "premise": "p",
           "hypothesis": "h", "label": 1}
    calls = []
    monkeypatch.setattr(hub, "hub_offline_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or [row])
    res = load_examples(spec, role="benchmark")
    assert (res.format, calls, res.examples[0].answer) == (fmt, [call], answer)
