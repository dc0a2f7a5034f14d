"""Classification formats: public hub layouts -> `MCExample` (text as question, label names as choices)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pylaundering.data import FORMATS, hub, load_examples
from pylaundering.data.formats_cls import BANKING77, CLASSIFICATION_FORMATS, NEWSGROUPS20, label_names
from pylaundering.errors import DataError

HINT = r"pass the format \(--benchmark-format / --train-format"


def write_jsonl_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv_rows(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict], names: tuple[str, ...] | None = None) -> Path:
    """A parquet file as the hub ships it: `label` int64 with the ClassLabel names in the schema metadata."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    if names is not None:
        features = {c: {"dtype": "string", "_type": "Value"} for c in table.column_names if c != "label"}
        features["label"] = {"names": list(names), "_type": "ClassLabel"}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture
def private_caches(tmp_path, monkeypatch):
    """datasets' caches live in tmp_path (repository folders are read with `datasets.load_dataset`)."""
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache" / "datasets")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache" / "hub"))
    return datasets


# --------------------------------------------------------------------------- registry and names


def test_formats_and_label_names():
    assert CLASSIFICATION_FORMATS == {"imdb", "snli", "ag_news", "emotion", "banking77", "tweet_eval",
                                      "rotten_tomatoes", "20newsgroups", "classification",
                                      "sst2", "mnli", "ag_news_csv", "tweet_eval_txt"}
    assert all(FORMATS[n].task == "classification" for n in CLASSIFICATION_FORMATS)
    assert label_names("sst2") == ("negative", "positive") and label_names("mnli") == label_names("snli")
    assert label_names("ag_news_csv") == label_names("ag_news")
    assert CLASSIFICATION_FORMATS <= set(FORMATS)
    assert label_names("imdb") == ("neg", "pos") == label_names("rotten_tomatoes")
    assert label_names("snli") == ("entailment", "neutral", "contradiction")
    assert label_names("ag_news") == ("World", "Sports", "Business", "Sci/Tech")
    assert label_names("emotion") == ("sadness", "joy", "love", "anger", "fear", "surprise")
    assert len(BANKING77) == len(set(BANKING77)) == 77 and label_names("banking77") == BANKING77
    assert (BANKING77[0], BANKING77[51], BANKING77[76]) == (
        "activate_my_card", "Refund_not_showing_up", "wrong_exchange_rate_for_cash_withdrawal")
    assert label_names("20newsgroups") == NEWSGROUPS20 and NEWSGROUPS20[0] == "alt.atheism"
    assert NEWSGROUPS20[-1] == "talk.religion.misc" and len(NEWSGROUPS20) == 20
    assert label_names("tweet_eval") == ("negative", "neutral", "positive")
    assert label_names("tweet_eval", "emotion") == ("anger", "joy", "optimism", "sadness")
    assert label_names("tweet_eval", "hate") == ("non-hate", "hate")
    assert label_names("tweet_eval", "irony") == ("non_irony", "irony")
    assert label_names("tweet_eval", "offensive") == ("non-offensive", "offensive")
    assert label_names("tweet_eval", "stance_climate") == ("none", "against", "favor")
    assert len(label_names("tweet_eval", "emoji")) == 20
    assert label_names("classification") is None and label_names("mmlu") is None
    for name in CLASSIFICATION_FORMATS - {"mnli", "sst2"}:  # the hub's MultiNLI and SST-2 have no labelled test
        assert FORMATS[name].default_splits == {"benchmark": "test", "train": "train"}
    assert FORMATS["mnli"].default_splits == {"benchmark": "validation_matched", "train": "train"}
    assert FORMATS["sst2"].default_splits == {"benchmark": "validation", "train": "train"}


# --------------------------------------------------------------------------- each format, JSONL and CSV

#: format -> (public-layout rows, expected (question, context, label) per row)
CASES = {
    "imdb": ([{"text": "A dull film.", "label": 0}, {"text": "Loved it.", "label": 1}],
             [("A dull film.", None, 0), ("Loved it.", None, 1)]),
    "rotten_tomatoes": ([{"text": "flat", "label": 0}, {"text": "charming", "label": 1}],
                        [("flat", None, 0), ("charming", None, 1)]),
    "snli": ([{"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0},
              {"premise": "A dog runs.", "hypothesis": "A cat sits.", "label": 2}],
             [("A person rests.", "A man sleeps.", 0), ("A cat sits.", "A dog runs.", 2)]),
    "ag_news": ([{"text": "Stocks fall.", "label": 2}, {"text": "Team wins.", "label": 1}],
                [("Stocks fall.", None, 2), ("Team wins.", None, 1)]),
    "emotion": ([{"text": "i feel alone", "label": 0}, {"text": "so surprised", "label": 5}],
                [("i feel alone", None, 0), ("so surprised", None, 5)]),
    "banking77": ([{"text": "Activate my card?", "label": 0}, {"text": "Where is my refund", "label": 51}],
                  [("Activate my card?", None, 0), ("Where is my refund", None, 51)]),
    "tweet_eval": ([{"text": "meh", "label": 1}, {"text": "great day!", "label": 2}],
                   [("meh", None, 1), ("great day!", None, 2)]),
    "20newsgroups": ([{"text": "GPU drivers?", "label": 1, "label_text": "comp.graphics"},
                      {"text": "Go Leafs", "label": 10, "label_text": "rec.sport.hockey"}],
                     [("GPU drivers?", None, 1), ("Go Leafs", None, 10)]),
}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@pytest.mark.parametrize("fmt", sorted(CASES))
def test_public_layouts(tmp_path, fmt, suffix):
    rows, expected = CASES[fmt]
    path = tmp_path / f"{fmt}{suffix}"
    (write_jsonl_rows if suffix == ".jsonl" else write_csv_rows)(path, rows)
    result = load_examples(str(path), fmt)
    assert result.format == fmt and result.skipped == result.dropped == 0
    assert [(e.question, e.context, e.label) for e in result.examples] == expected
    names = label_names(fmt)
    for row, e in enumerate(result.examples, 1):
        assert e.choices == names and e.subject is None
        assert e.id == f"{path.name}:{row}"
        assert e.answer == names[e.label]


def test_labels_given_as_names_and_id_column(tmp_path):
    path = write_jsonl_rows(tmp_path / "b.jsonl", [{"id": "q7", "text": "refund?", "label": "request_refund"},
                                                    {"id": 8, "text": "pin?", "label": " pin_blocked "}])
    a, b = load_examples(str(path), "banking77").examples
    assert (a.id, a.answer, b.id, b.answer) == ("q7", "request_refund", "8", "pin_blocked")


# --------------------------------------------------------------------------- unlabelled rows, bad labels, empty texts


def test_unlabelled_rows_are_dropped_and_counted_without_drop_erroneous(tmp_path):
    imdb = write_csv_rows(tmp_path / "imdb.csv", [{"text": "x", "label": -1}, {"text": "good", "label": 1},
                                                  {"text": "y", "label": "-1"}])
    result = load_examples(str(imdb), "imdb")
    assert (len(result.examples), result.dropped, result.skipped) == (1, 2, 0)
    assert result.examples[0].id == "imdb.csv:2"
    snli = write_jsonl_rows(tmp_path / "snli.jsonl", [
        {"premise": "p", "hypothesis": "h", "label": -1},
        {"premise": "p2", "hypothesis": "", "label": -1},  # no gold label: dropped before any text check
        {"premise": "p3", "hypothesis": "h3", "label": 1},
    ])
    result = load_examples(str(snli), "snli")
    assert result.dropped == 2 and [(e.context, e.answer) for e in result.examples] == [("p3", "neutral")]
    only = write_jsonl_rows(tmp_path / "unsup.jsonl", [{"text": "x", "label": -1}] * 2)
    with pytest.raises(DataError, match=r"no examples found \(dropped 2\)"):
        load_examples(str(only), "imdb")


def test_unknown_label_names_it_and_the_known_ones(tmp_path):
    rows = [{"text": "ok", "label": 1}, {"text": "hm", "label": 2}, {"text": "no", "label": 0}]
    path = write_jsonl_rows(tmp_path / "i.jsonl", rows)
    with pytest.raises(DataError,
                       match=r"i.jsonl, row 2, field 'label': unknown label 2; known labels: 0 'neg', 1 'pos'"):
        load_examples(str(path), "imdb")
    result = load_examples(str(path), "imdb", skip_malformed=True)
    assert (len(result.examples), result.skipped) == (2, 1)
    # without the 0, labels 1 and 2 of two classes read as 1-based as well as 0-based: refused, even when
    # skipping malformed rows (that would keep row 1 as 'pos', the wrong class if the file counts from 1)
    path = write_jsonl_rows(tmp_path / "i.jsonl", rows[:2])
    for skip in (False, True):
        with pytest.raises(DataError, match=r"i.jsonl: the 'label' column looks 1-based: .*row 2: 2 with 2 classes\)"):
            load_examples(str(path), "imdb", skip_malformed=skip)
    for bad in ("positive", -2, 1.5, True):
        path = write_jsonl_rows(tmp_path / "b.jsonl", [{"text": "t", "label": bad}])
        with pytest.raises(DataError, match=r"unknown label .*known labels: 0 'neg', 1 'pos'"):
            load_examples(str(path), "imdb")
    missing = write_jsonl_rows(tmp_path / "m.jsonl", [{"text": "t"}])
    with pytest.raises(DataError, match=r"field 'label': missing or empty"):
        load_examples(str(missing), "ag_news")


def test_empty_texts_name_the_field_and_can_be_skipped(tmp_path):
    rows = [{"text": "Real post", "label": 0, "label_text": "alt.atheism"},
            {"text": "", "label": 3, "label_text": "comp.sys.ibm.pc.hardware"},
            {"text": "  \n", "label": 4, "label_text": "comp.sys.mac.hardware"},
            {"text": "Another", "label": 19, "label_text": "talk.religion.misc"}]
    path = write_jsonl_rows(tmp_path / "ng.jsonl", rows)
    with pytest.raises(DataError, match=r"ng.jsonl, row 2, field 'text': missing or empty"):
        load_examples(str(path), "20newsgroups")
    result = load_examples(str(path), "20newsgroups", skip_malformed=True)
    assert result.skipped == 2 and result.dropped == 0
    assert [(e.id, e.answer) for e in result.examples] == [("ng.jsonl:1", "alt.atheism"),
                                                           ("ng.jsonl:4", "talk.religion.misc")]
    snli = write_jsonl_rows(tmp_path / "s.jsonl", [{"premise": "", "hypothesis": "h", "label": 0}])
    with pytest.raises(DataError, match=r"row 1, field 'premise': missing or empty"):
        load_examples(str(snli), "snli")


def test_newsgroups_label_text_is_checked_or_used(tmp_path):
    path = write_jsonl_rows(tmp_path / "ng.jsonl", [{"text": "t", "label": 1, "label_text": "sci.med"}])
    with pytest.raises(DataError, match=r"field 'label_text': 'sci.med' does not match label 1 \('comp.graphics'\)"):
        load_examples(str(path), "20newsgroups")
    path = write_jsonl_rows(tmp_path / "ng2.jsonl", [{"text": "t", "label_text": "sci.med"}])
    (e,) = load_examples(str(path), "20newsgroups").examples
    assert (e.label, e.answer) == (13, "sci.med")


def test_tweet_eval_subset_from_file_name(tmp_path):
    rows = [{"text": "grr", "label": 0}, {"text": "yay", "label": 3}]
    emotion = write_jsonl_rows(tmp_path / "emotion_test.jsonl", rows)
    assert [e.answer for e in load_examples(str(emotion), "tweet_eval").examples] == ["anger", "sadness"]
    stance = write_jsonl_rows(tmp_path / "stance_abortion.jsonl", rows[:1])
    assert load_examples(str(stance), "tweet_eval").examples[0].choices == ("none", "against", "favor")
    plain = write_jsonl_rows(tmp_path / "test.jsonl", rows)  # names no subset: sentiment, and a hint
    with pytest.raises(DataError,
                       match=r"unknown label 3; known labels: 0 'negative', .*the default tweet_eval subset"):
        load_examples(str(plain), "tweet_eval")


# --------------------------------------------------------------------------- repository folders (datasets.load_dataset)


def test_imdb_repository_folder(tmp_path, private_caches):
    root = tmp_path / "imdb-copy"
    write_parquet(root / "data" / "train-00000-of-00001.parquet",
                  [{"text": "meh", "label": 0}, {"text": "great", "label": 1}], ("neg", "pos"))
    write_parquet(root / "data" / "test-00000-of-00001.parquet",
                  [{"text": "bad", "label": 0}, {"text": "fine", "label": 1}, {"text": "ok", "label": 1}],
                  ("neg", "pos"))
    write_parquet(root / "data" / "unsupervised-00000-of-00001.parquet",
                  [{"text": "?", "label": -1}, {"text": "!", "label": -1}], ("neg", "pos"))
    bench = load_examples(str(root), "imdb", role="benchmark")
    assert (bench.split, len(bench.examples)) == ("test", 3)
    assert bench.examples[0].id == "imdb-copy/test:1" and bench.examples[0].choices == ("neg", "pos")
    train = load_examples(str(root), "imdb", role="train")
    assert train.split == "train" and [e.answer for e in train.examples] == ["neg", "pos"]
    with pytest.raises(DataError, match=r"no examples found \(dropped 2\)"):
        load_examples(f"{root}::unsupervised", "imdb")
    # a local folder is never taken for the hub dataset, whatever its name: its columns make it
    # generic classification, whose label set is the one the dataset declares (its ClassLabel feature)
    generic = load_examples(str(root), role="benchmark")
    assert generic.format == "classification" and len(generic.examples) == 3
    assert generic.examples[0].choices == generic.label_names == ("neg", "pos")
    assert generic.label_source == "the dataset's ClassLabel feature 'label'"


def test_snli_repository_folder(tmp_path, private_caches):
    root = tmp_path / "snli"
    write_parquet(root / "data" / "test-00000-of-00001.parquet", [
        {"premise": "A boy jumps.", "hypothesis": "A child moves.", "label": 0},
        {"premise": "A boy jumps.", "hypothesis": "Nobody moves.", "label": -1},
        {"premise": "A boy jumps.", "hypothesis": "A boy sleeps.", "label": 2},
    ], ("entailment", "neutral", "contradiction"))
    result = load_examples(f"{root}::test", "snli")
    assert result.dropped == 1 and result.split == "test"
    assert [(e.context, e.question, e.answer, e.id) for e in result.examples] == [
        ("A boy jumps.", "A child moves.", "entailment", "snli/test:1"),
        ("A boy jumps.", "A boy sleeps.", "contradiction", "snli/test:3"),
    ]


TWEET_EVAL_README = """---
configs:
- config_name: emotion
  data_files:
  - split: train
    path: emotion/train-00000-of-00001.parquet
  - split: test
    path: emotion/test-00000-of-00001.parquet
- config_name: sentiment
  data_files:
  - split: train
    path: sentiment/train-00000-of-00001.parquet
  - split: test
    path: sentiment/test-00000-of-00001.parquet
---
"""


def test_tweet_eval_repository_folder_subsets(tmp_path, private_caches):
    root = tmp_path / "tweet_eval"
    (root / "README.md").parent.mkdir(parents=True)
    (root / "README.md").write_text(TWEET_EVAL_README, encoding="utf-8")
    for subset, names in (("emotion", label_names("tweet_eval", "emotion")), ("sentiment", None)):
        for split in ("train", "test"):
            rows = [{"text": f"{subset} {split} {i}", "label": i} for i in range(3)]
            write_parquet(root / subset / f"{split}-00000-of-00001.parquet", rows, names)
    emotion = load_examples(f"{root}:emotion", "tweet_eval", role="benchmark")
    assert (emotion.subset, emotion.split) == ("emotion", "test")
    assert [e.answer for e in emotion.examples] == ["anger", "joy", "optimism"]
    assert emotion.examples[0].id == "tweet_eval/emotion/test:1"
    sentiment = load_examples(str(root), "tweet_eval", subset="sentiment", split="train")
    assert [e.answer for e in sentiment.examples] == ["negative", "neutral", "positive"]
    assert all(e.question.startswith("sentiment train") for e in sentiment.examples)


# --------------------------------------------------------------------------- the generic format


def test_generic_integer_labels_span_the_whole_file(tmp_path):
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate([0, 2, 0, 1, 4])]
    path = write_csv_rows(tmp_path / "g.csv", rows)  # CSV: labels arrive as text
    result = load_examples(str(path), "classification")
    assert {e.choices for e in result.examples} == {("0", "1", "2", "3", "4")}
    assert [e.label for e in result.examples] == [0, 2, 0, 1, 4]
    assert [e.context for e in result.examples] == [None] * 5
    # limit applies after the label set is known: the first two rows still get all five classes
    limited = load_examples(str(path), "classification", limit=2)
    assert [(e.choices, e.label) for e in limited.examples] == [(("0", "1", "2", "3", "4"), 0),
                                                                (("0", "1", "2", "3", "4"), 2)]
    jsonl = write_jsonl_rows(tmp_path / "g.jsonl", [{"text": "a", "label": 1.0}, {"text": "b", "label": 0}])
    assert [e.choices for e in load_examples(str(jsonl), "classification").examples] == [("0", "1")] * 2
    parquet = write_parquet(tmp_path / "g.parquet", [{"text": "a", "label": 2}, {"text": "b", "label": 0}])
    assert [e.answer for e in load_examples(str(parquet), "classification").examples] == ["2", "0"]


def test_generic_string_labels_are_sorted(tmp_path):
    rows = [{"text": "x", "label": "spam"}, {"text": "y", "label": "ham"}, {"text": "z", "label": " eggs "}]
    path = write_jsonl_rows(tmp_path / "s.jsonl", rows)
    result = load_examples(str(path), "classification")
    assert result.examples[0].choices == ("eggs", "ham", "spam")
    assert [e.answer for e in result.examples] == ["spam", "ham", "eggs"]


def test_generic_explicit_label_names_pairs_ids_and_columns(tmp_path):
    rows = [{"uid": "a", "s1": "It rains.", "s2": "It is wet.", "y": 0},
            {"uid": "b", "s1": "It rains.", "s2": "It is dry.", "y": "contradiction"}]
    path = write_csv_rows(tmp_path / "pairs.tsv", rows, delimiter="\t")
    columns = {"text": "s1", "text_pair": "s2", "label": "y", "id": "uid",
               "label_names": "entailment, neutral ,contradiction"}
    result = load_examples(str(path), "classification", columns=columns)
    assert [(e.id, e.context, e.question, e.choices, e.label) for e in result.examples] == [
        ("a", "It rains.", "It is wet.", ("entailment", "neutral", "contradiction"), 0),
        ("b", "It rains.", "It is dry.", ("entailment", "neutral", "contradiction"), 2),
    ]
    default_pair = write_jsonl_rows(tmp_path / "p.jsonl", [{"text": "first", "text_pair": "second", "label": "x"},
                                                           {"text": "one", "text_pair": "two", "label": "y"}])
    e = load_examples(str(default_pair), "classification").examples[0]
    assert (e.context, e.question, e.choices) == ("first", "second", ("x", "y"))
    bad = write_jsonl_rows(tmp_path / "bad.jsonl", [{"text": "t", "label": 3}])
    with pytest.raises(DataError, match=r"field 'label': unknown label 3; known labels: 0 'neg', 1 'pos'"):
        load_examples(str(bad), "classification", columns={"label_names": "neg,pos"})
    with pytest.raises(DataError, match=r"field 'label_names': duplicate names \['neg'\]"):
        load_examples(str(bad), "classification", columns={"label_names": "neg,neg"})


def test_generic_errors(tmp_path):
    path = write_jsonl_rows(tmp_path / "e.jsonl", [{"text": "", "label": 0}, {"text": "t", "label": 1},
                                                   {"text": "u", "label": 0}])
    with pytest.raises(DataError, match=r"e.jsonl, row 1, field 'text': missing or empty"):
        load_examples(str(path), "classification")
    result = load_examples(str(path), "classification", skip_malformed=True)
    assert result.skipped == 1 and [e.choices for e in result.examples] == [("0", "1")] * 2
    with pytest.raises(DataError, match=r"field 'sentence': column not found"):
        load_examples(str(path), "classification", columns={"text": "sentence"})
    with pytest.raises(DataError, match=r"unknown field\(s\) \['question'\]; ours are \['id', 'text'"):
        load_examples(str(path), "classification", columns={"question": "text"})
    with pytest.raises(DataError, match=r"unknown field\(s\) \['text'\]"):  # the MC generic formats are unchanged
        load_examples(str(path), "jsonl", columns={"text": "q"})
    neg = write_jsonl_rows(tmp_path / "n.jsonl", [{"text": "t", "label": -1}])
    with pytest.raises(DataError, match=r"field 'label': negative label -1"):
        load_examples(str(neg), "classification")
    single = write_jsonl_rows(tmp_path / "one.jsonl", [{"text": "t", "label": "pos"}])
    with pytest.raises(DataError, match=r"^.*one.jsonl, field 'label': a single class 'pos'"):
        load_examples(str(single), "classification")
    nested = write_jsonl_rows(tmp_path / "x.jsonl", [{"text": "t", "label": [1]}])
    with pytest.raises(DataError, match=r"expected an integer or a text label"):
        load_examples(str(nested), "classification")


# --------------------------------------------------------------------------- hub names


class FakeHub:
    def __init__(self, result):
        self.result = result
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


@pytest.mark.parametrize(
    "name, fmt, subset, row",
    [
        ("stanfordnlp/imdb", "imdb", None, {"text": "t", "label": 1}),
        ("imdb", "imdb", None, {"text": "t", "label": 1}),
        ("stanfordnlp/snli", "snli", None, {"premise": "p", "hypothesis": "h", "label": 1}),
        ("SNLI", "snli", None, {"premise": "p", "hypothesis": "h", "label": 1}),
        ("fancyzhx/ag_news", "ag_news", None, {"text": "t", "label": 3}),
        ("ag_news", "ag_news", None, {"text": "t", "label": 3}),
        ("dair-ai/emotion", "emotion", "split", {"text": "t", "label": 3}),
        ("emotion", "emotion", "split", {"text": "t", "label": 3}),
        ("PolyAI/banking77", "banking77", None, {"text": "t", "label": 3}),
        ("banking77", "banking77", None, {"text": "t", "label": 3}),
        ("cardiffnlp/tweet_eval", "tweet_eval", "sentiment", {"text": "t", "label": 2}),
        ("tweet_eval", "tweet_eval", "sentiment", {"text": "t", "label": 2}),
        ("cornell-movie-review-data/rotten_tomatoes", "rotten_tomatoes", None, {"text": "t", "label": 0}),
        ("rotten_tomatoes", "rotten_tomatoes", None, {"text": "t", "label": 0}),
        ("SetFit/20_newsgroups", "20newsgroups", None, {"text": "t", "label": 0, "label_text": "alt.atheism"}),
    ],
)
def test_hub_names_infer_the_format(monkeypatch, name, fmt, subset, row):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(hub, "hub_offline_reason", lambda: None)
    fake = FakeHub([row])
    monkeypatch.setattr(datasets, "load_dataset", fake)
    result = load_examples(name, role="benchmark")
    assert result.format == fmt and fake.calls == [((name, subset), {"split": "test"})]
    assert result.examples[0].choices == label_names(fmt, subset)


def test_hub_tweet_eval_subset_picks_label_names(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(hub, "hub_offline_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", FakeHub([{"text": "t", "label": 1}]))
    (e,) = load_examples("cardiffnlp/tweet_eval:irony:test").examples
    assert (e.choices, e.answer, e.id) == (("non_irony", "irony"), "irony", "tweet_eval/irony/test:1")


def test_local_files_are_not_inferred_from_hub_names(tmp_path, monkeypatch):
    folder = tmp_path / "imdb"
    write_csv_rows(folder / "test.csv", [{"text": "t", "label": 1}])
    monkeypatch.chdir(tmp_path)
    # the name says IMDB but only the columns count: generic classification, labels as written
    for spec in ("imdb", str(folder), str(folder / "test.csv")):
        local = load_examples(spec)
        assert local.format == "classification" and local.examples[0].choices == ("0", "1")
    assert load_examples("imdb", "imdb").examples[0].answer == "pos"
