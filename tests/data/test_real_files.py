"""Every real public benchmark file in ../shared/data/real loads as published, from the API and from
`launder data inspect`: counts, format, number of choices or classes, and every label checked against the
file's own text (read here with plain json / csv / line reading, independently of the loaders)."""

from __future__ import annotations

import csv
import functools
import json
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pylaundering.cli import data_inspect
from pylaundering.data import load_examples
from pylaundering.data.labelset import shared_label_set
from pylaundering.errors import DataError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
if not REAL.is_dir():
    pytest.skip(f"no real data files at {REAL}", allow_module_level=True)
MC, CLS = REAL / "multiple_choice", REAL / "classification"


@functools.cache
def api(spec: str, format: str | None = None, role: str | None = None):
    return load_examples(spec, format, role=role)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def inspect_json(*args: str) -> dict:
    app, data_app = typer.Typer(), typer.Typer()
    app.add_typer(data_app, name="data")
    data_inspect.register(data_app)
    result = CliRunner().invoke(app, ["data", "inspect", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- multiple choice


@pytest.mark.parametrize("name, rows, fmt", [("arc_challenge_test.jsonl", 1172, "arc"),
                                             ("arc_easy_test.jsonl", 2376, "arc"),
                                             ("openbookqa_test.jsonl", 500, "openbookqa")])
def test_keyed_layouts(name, rows, fmt):
    raw = read_jsonl(MC / name)
    res = api(str(MC / name))
    assert (res.format, res.format_inferred, res.task) == (fmt, True, "multiple_choice")
    assert len(raw) == len(res.examples) == rows and res.skipped == res.dropped == 0
    for r, e in zip(raw, res.examples):
        texts = [t.strip() for t in r["choices"]["text"]]
        assert e.id == r["id"] and e.choices == tuple(texts)
        assert e.question == r.get("question", r.get("question_stem")).strip()
        assert e.answer == texts[r["choices"]["label"].index(r["answerKey"])]


def test_openbookqa_first_item_as_written():
    e = api(str(MC / "openbookqa_test.jsonl")).examples[0]
    assert (e.id, e.answer, len(e.choices)) == ("obqa-0", "quit eating lunch out", 4)  # answerKey B


@pytest.mark.parametrize("split, rows", [("train", 9741), ("dev", 1221)])
def test_commonsense_qa_original_nested_release(split, rows):
    folder = MC / "commonsense_qa"
    raw = read_jsonl(folder / f"{split}_rand_split.jsonl")
    res = api(f"{folder}::{split}")
    assert (res.format, res.split, res.splits) == ("commonsense_qa", split, ["dev", "train"])
    assert len(raw) == len(res.examples) == rows
    assert {len(e.choices) for e in res.examples} == {5}
    for r, e in zip(raw, res.examples):
        by_key = {c["label"]: c["text"].strip() for c in r["question"]["choices"]}
        assert e.id == r["id"] and e.question == r["question"]["stem"].strip()
        assert e.answer == by_key[r["answerKey"]]
        assert e.choices == tuple(by_key[k] for k in sorted(by_key))
    # the file on its own loads the same
    assert api(str(folder / f"{split}_rand_split.jsonl")).examples == res.examples


def test_commonsense_qa_folder_needs_a_split_or_a_role():
    folder = MC / "commonsense_qa"
    with pytest.raises(DataError, match=r"pass a split .*this folder has splits: dev, train"):
        load_examples(str(folder))
    # a benchmark's default split is validation, which this release calls dev; training data reads train
    assert api(str(folder), role="benchmark").split == "dev"
    assert api(str(folder), role="train").split == "train"


def test_race_dev_article_is_the_context():
    path = MC / "race" / "dev.jsonl"
    raw = read_jsonl(path)
    res = api(str(path))
    assert res.format == "race" and len(res.examples) == len(raw) == 4887
    assert res.label_convention == "answer letters"
    for r, e in zip(raw, res.examples):
        assert e.context == r["article"].strip() and e.question == r["question"].strip()
        assert e.answer == r["options"]["ABCD".index(r["answer"])].strip()


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("split, rows", [("train", 16000), ("validation", 2000), ("test", 2000)])
def test_emotion_names_come_from_label_text(split, rows):
    raw = read_jsonl(CLS / "emotion" / f"{split}.jsonl")
    names = dict(sorted({(r["label"], r["label_text"]) for r in raw}))
    res = api(f"{CLS / 'emotion'}::{split}")
    assert (res.format, res.split, res.label_source) == ("classification", split, "label_text column")
    assert res.label_names == tuple(names[i] for i in range(6)) == (
        "sadness", "joy", "love", "anger", "fear", "surprise")  # dair-ai/emotion's documented order
    assert len(res.examples) == len(raw) == rows
    assert [(e.question, e.label, e.answer) for e in res.examples] == [
        (r["text"].strip(), r["label"], r["label_text"]) for r in raw]


@pytest.mark.parametrize("split, rows", [("train", 6920), ("dev", 872), ("test", 1821)])
def test_sst2(split, rows):
    raw = read_jsonl(CLS / "sst2" / f"{split}.jsonl")
    res = api(f"{CLS / 'sst2'}::{split}")
    assert (res.format, res.label_names, len(res.examples)) == ("sst2", ("negative", "positive"), rows)
    assert res.label_convention == "0-based class ids"
    assert [(e.question, e.label) for e in res.examples] == [(r["sentence"].strip(), r["label"]) for r in raw]


def test_rotten_tomatoes_ids_and_named_format():
    path = CLS / "rotten_tomatoes.jsonl"
    raw = read_jsonl(path)
    inferred = api(str(path))  # only the columns choose a local file's format: the generic one, ids as names
    assert inferred.format == "classification" and inferred.label_names == ("0", "1")
    named = api(str(path), "rotten_tomatoes")
    assert named.label_names == ("neg", "pos") and len(named.examples) == len(raw) == 10662
    assert [e.label for e in named.examples] == [e.label for e in inferred.examples] == [r["label"] for r in raw]
    assert Counter(e.answer for e in named.examples) == {"neg": 5331, "pos": 5331}


def test_ag_news_original_csv_is_one_based_and_named_by_classes_txt():
    folder = CLS / "ag_news"
    names = read_lines(folder / "classes.txt")
    with (folder / "test.csv").open(encoding="utf-8", newline="") as handle:
        raw = list(csv.reader(handle))
    assert {int(r[0]) for r in raw} == {1, 2, 3, 4}  # the release's classes count from 1
    for spec in (str(folder / "test.csv"), str(folder)):
        res = api(spec)
        assert (res.format, res.label_names, len(res.examples)) == ("ag_news_csv", tuple(names), 7600)
        assert res.label_source == "class file classes.txt"
        assert res.label_convention.startswith("1-based class ids")
        for r, e in zip(raw, res.examples):
            assert e.answer == names[int(r[0]) - 1] and e.label == int(r[0]) - 1
            assert e.question == " ".join(t.strip() for t in r[1:] if t.strip())
    assert api(str(folder)).split == "test"
    assert api(str(folder)).examples[0].answer == "Business"  # "3","Fears for T N pension after talks",...


def test_mnli_keeps_its_name_and_label_order():
    path = CLS / "mnli_dev_matched.jsonl"
    raw = read_jsonl(path)
    res = api(str(path))
    # SNLI's columns, named MultiNLI by the file: the same names in the same order (entailment 0, neutral 1,
    # contradiction 2, as nyu-mll/multi_nli's ClassLabel)
    assert res.format == "mnli" and res.label_names == ("entailment", "neutral", "contradiction")
    assert res.label_convention == "label names" and len(res.examples) == len(raw) == 9815
    assert [(e.context, e.question, e.answer) for e in res.examples] == [
        (r["premise"].strip(), r["hypothesis"].strip(), r["label"]) for r in raw]


@pytest.mark.parametrize("split, rows", [("train", 3257), ("val", 374), ("test", 1421)])
def test_tweet_eval_text_and_label_files(split, rows):
    folder = CLS / "tweet_eval_emotion"
    mapping = dict(line.split("\t") for line in read_lines(folder / "mapping.txt"))
    texts, ids = read_lines(folder / f"{split}_text.txt"), read_lines(folder / f"{split}_labels.txt")
    res = api(f"{folder}::{split}")
    assert (res.format, res.split, res.splits) == ("tweet_eval_txt", split, ["test", "train", "val"])
    assert res.label_names == tuple(mapping[str(i)] for i in range(len(mapping))) == (
        "anger", "joy", "optimism", "sadness")
    assert res.label_source == "class file mapping.txt" and len(res.examples) == len(texts) == len(ids) == rows
    for n, (text, label, e) in enumerate(zip(texts, ids, res.examples), 1):
        assert e.question == text.strip() and e.answer == mapping[label.strip()] and e.id == f"{split}_text.txt:{n}"
    assert api(str(folder / f"{split}_text.txt")).examples == res.examples


def test_tweet_eval_folder_split_choice():
    folder = CLS / "tweet_eval_emotion"
    with pytest.raises(DataError, match=r"pass a split .*this folder has splits: test, train, val$"):
        load_examples(str(folder))
    assert api(f"{folder}::validation").split == "val"  # validation goes by val here
    assert api(str(folder), role="benchmark").split == "test"


# --------------------------------------------------------------------------- the CLI reads them the same


CLI_CASES = [
    (str(MC / "arc_challenge_test.jsonl"), [], "arc"),
    (str(MC / "openbookqa_test.jsonl"), [], "openbookqa"),
    (str(MC / "commonsense_qa"), ["--split", "train"], "commonsense_qa"),
    (str(MC / "race" / "dev.jsonl"), [], "race"),
    (str(CLS / "emotion"), ["--role", "train"], "classification"),
    (str(CLS / "sst2"), ["--split", "dev"], "sst2"),
    (str(CLS / "rotten_tomatoes.jsonl"), ["--format", "rotten_tomatoes"], "rotten_tomatoes"),
    (str(CLS / "ag_news"), [], "ag_news_csv"),
    (str(CLS / "mnli_dev_matched.jsonl"), [], "mnli"),
    (str(CLS / "tweet_eval_emotion"), ["--split", "test"], "tweet_eval_txt"),
]


@pytest.mark.parametrize("spec, args, fmt", CLI_CASES)
def test_cli_inspect_reads_what_the_api_reads(spec, args, fmt):
    report = inspect_json(spec, *args)
    split = args[args.index("--split") + 1] if "--split" in args else None
    role = args[args.index("--role") + 1] if "--role" in args else "benchmark"
    res = api(spec if split is None else f"{spec}::{split}", args[1] if args[:1] == ["--format"] else None,
              role=None if split else role)
    assert report["format"] == fmt == res.format
    assert report["counts"] == {"loaded": len(res.examples), "skipped_malformed": 0, "dropped": 0}
    assert report["files"] == res.files and report["label_convention"] == res.label_convention
    if res.task == "classification":
        counted = Counter(e.answer for e in res.examples)
        assert [(c["name"], c["count"]) for c in report["classes"]] == [(n, counted[n]) for n in res.label_names]
    else:
        assert report["choice_counts"] == {str(k): v for k, v in Counter(len(e.choices) for e in res.examples).items()}
    assert report["examples"] == [e.to_dict() for e in res.examples[:2]]


# --------------------------------------------------------------------------- never read shifted; one label set


def test_one_based_copies_of_real_files_are_refused(tmp_path):
    sst2 = read_jsonl(CLS / "sst2" / "dev.jsonl")
    shifted = tmp_path / "sst2_dev.jsonl"
    shifted.write_text("".join(json.dumps({**r, "label": r["label"] + 1}) + "\n" for r in sst2), encoding="utf-8")
    with pytest.raises(DataError, match=r"the 'label' column looks 1-based"):
        load_examples(str(shifted))
    assert [e.label for e in load_examples(str(shifted), label_base=1).examples] == [r["label"] for r in sst2]
    arc = api(str(MC / "arc_easy_test.jsonl")).examples
    ours = tmp_path / "arc.jsonl"
    ours.write_text("".join(json.dumps({**e.to_dict(), "label": e.label + 1}) + "\n" for e in arc), encoding="utf-8")
    with pytest.raises(DataError, match=r"arc.jsonl: the 'label' column looks 1-based"):
        load_examples(str(ours))
    # AG News CSV made 0-based: its documented 1-based convention refuses the class 0
    with (CLS / "ag_news" / "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = [[str(int(r[0]) - 1), *r[1:]] for r in csv.reader(handle)]
    zero = tmp_path / "ag" / "test.csv"
    zero.parent.mkdir()
    with zero.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)
    first_zero = next(i for i, r in enumerate(rows, 1) if r[0] == "0")
    with pytest.raises(DataError, match=rf"test.csv, row {first_zero}, field 'class': id 0, but ids here count from 1"):
        load_examples(str(zero))


def test_a_one_based_copy_converted_once_loads_as_the_original(tmp_path):
    """The remedy the refusal names: `launder data convert --label-base 1`, then every command reads it as is."""
    sst2 = read_jsonl(CLS / "sst2" / "dev.jsonl")
    shifted = tmp_path / "sst2_dev.jsonl"
    shifted.write_text("".join(json.dumps({**r, "label": r["label"] + 1}) + "\n" for r in sst2), encoding="utf-8")
    app, data_app = typer.Typer(), typer.Typer()
    app.add_typer(data_app, name="data")
    data_inspect.register(data_app)
    out = tmp_path / "fixed.jsonl"
    result = CliRunner().invoke(app, ["data", "convert", str(shifted), "--label-base", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    original, fixed = api(str(CLS / "sst2" / "dev.jsonl")).examples, api(str(out)).examples
    assert [(e.question, e.answer) for e in fixed] == [(e.question, e.answer) for e in original]
    assert len(fixed) == len(sst2) == 872


def test_a_subset_missing_classes_shares_the_training_label_set(tmp_path):
    """As a new user would: a 300-item benchmark subset that happens to lack two of the six classes."""
    raw = [r for r in read_jsonl(CLS / "emotion" / "test.jsonl") if r["label_text"] not in ("love", "surprise")]
    path = tmp_path / "emotion_subset.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in raw[:300]), encoding="utf-8")
    subset = load_examples(str(path))
    assert subset.label_names == ("sadness", "joy", "anger", "fear")  # only what this file holds ...
    assert "have no rows here" in subset.label_convention  # ... and it says so
    train = api(f"{CLS / 'emotion'}::train")
    shared = shared_label_set([subset, train])
    assert shared.names == train.label_names and len(shared.names) == 6
    remapped, same = shared.results
    assert [(e.answer, e.label) for e in remapped.examples] == [(r["label_text"], r["label"]) for r in raw[:300]]
    assert {e.choices for e in remapped.examples} == {train.label_names} and same.examples == train.examples
