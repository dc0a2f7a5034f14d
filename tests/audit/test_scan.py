"""`launder scan`: planted overlaps are found (exact, changed case/spacing/punctuation, a shared 13-gram,
a near duplicate), disjoint data is clean, --write-clean drops exactly the contaminated rows, bad input
fails with one line."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from pylaundering.audit import ScanParams, scan
from pylaundering.audit.scan import _WordNormaliser
from pylaundering.data import load_examples
from pylaundering.data.overlap import normalise_text
from pylaundering.data.schema import MCExample, write_jsonl

runner = CliRunner()

_RNG = random.Random(7)
_VOCAB = sorted({"".join(_RNG.choice("bcdfghklmnprstvz") + _RNG.choice("aeiou") for _ in range(3))
                 for _ in range(4000)})


def _words(rng: random.Random, k: int) -> list[str]:
    return rng.sample(_VOCAB, k)


def _item(i: int, rng: random.Random) -> MCExample:
    question = " ".join(_words(rng, 20)).capitalize() + "?"
    choices = tuple(" ".join(_words(rng, 3)) for _ in range(4))
    return MCExample(id=f"item-{i}", question=question, choices=choices, label=i % 4)


def _text(ex: MCExample) -> str:
    return " ".join([ex.question, *ex.choices])


@pytest.fixture()
def planted(tmp_path):
    """A benchmark of 5 long items and a .txt training set with planted copies of items 0-3."""
    rng = random.Random(0)
    bench = [_item(i, rng) for i in range(5)]
    write_jsonl(bench, tmp_path / "bench.jsonl")
    q2 = bench[2].question.rstrip("?").split()
    w3 = _text(bench[3]).split()
    for pos in (3, 11, 19):  # three changed words, never 13 unchanged in a row: near, not n-gram
        w3[pos] = "zzyzx" + str(pos)
    lines = [
        " ".join(_words(rng, 30)),                                       # 1 unrelated
        _text(bench[0]),                                                 # 2 exact copy
        "  " + _text(bench[1]).upper().replace(" ", " ,  ") + "!!! ",   # 3 case/space/punctuation changed
        " ".join(_words(rng, 25) + q2[2:15] + _words(rng, 25)),          # 4 one 13-gram of item 2 inside
        " ".join(w3),                                                    # 5 near duplicate of item 3
        " ".join(_words(rng, 30)),                                       # 6 unrelated
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path, bench, lines, q2[2:15]


def _by_id(report):
    return {it["id"]: it for it in report["items"]}


def test_finds_each_planted_overlap(planted):
    path, bench, lines, gram = planted
    report = scan([str(path / "train.txt")], str(path / "bench.jsonl"))
    items = _by_id(report)
    assert set(items) == {"item-0", "item-1", "item-2", "item-3"}
    assert "exact" in items["item-0"]["kinds"] and items["item-0"]["matches"][0]["row"] == 2
    assert "exact" in items["item-1"]["kinds"] and items["item-1"]["matches"][0]["row"] == 3
    assert items["item-2"]["kinds"] == ["ngram"]
    m = items["item-2"]["matches"][0]
    assert m["row"] == 4 and m["row_id"] == "train.txt:4"
    assert m["spans"] == [{"start": 25, "end": 38, "text": normalise_text(" ".join(gram))}]
    assert items["item-3"]["kinds"] == ["near"] and items["item-3"]["matches"][0]["row"] == 5
    assert 0.8 <= items["item-3"]["matches"][0]["jaccard"] < 1
    t = report["totals"]
    assert t["benchmark_items"] == 5 and t["train_rows"] == 6 and t["contaminated_items"] == 4
    assert t["contamination_rate"] == pytest.approx(0.8) and t["contaminated_rows"] == 4
    assert t["by_kind"]["near"] >= 3 and t["by_kind"]["ngram"] == 3 and t["by_kind"]["exact"] == 2
    assert report["effective_n"] == {"13": 5}


def test_no_near_and_longer_n(planted):
    path, *_ = planted
    report = scan([str(path / "train.txt")], str(path / "bench.jsonl"), params=ScanParams(near=False, n=20))
    items = _by_id(report)
    assert set(items) == {"item-0", "item-1"}  # the 13-word copy is below n = 20; near is off
    assert report["totals"]["by_kind"]["near"] == 0


def test_disjoint_synthetic_sets_are_clean(tmp_path):
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path, seed=0)
    report = scan([str(tmp_path / "train.jsonl")], str(tmp_path / "benchmark.jsonl"))
    assert report["totals"]["contaminated_items"] == 0 and report["items"] == []
    assert report["totals"]["train_rows"] > 0
    # the benchmark against itself: every item, every kind
    self_scan = scan([str(tmp_path / "benchmark.jsonl")], str(tmp_path / "benchmark.jsonl"))
    n = self_scan["totals"]["benchmark_items"]
    assert self_scan["totals"]["by_kind"] == {"exact": n, "question": n, "ngram": n, "near": n}


def test_mc_rows_match_with_shuffled_choices_and_questions_alone(tmp_path):
    rng = random.Random(1)
    bench = [_item(i, rng) for i in range(3)]
    write_jsonl(bench, tmp_path / "bench.jsonl")
    b0, b1 = bench[0], bench[1]
    train = [
        MCExample(id="t-shuffled", question=b0.question.lower(), choices=tuple(reversed(b0.choices)), label=0),
        MCExample(id="t-question", question=b1.question, choices=("x1", "x2", "x3"), label=1),
        MCExample(id="t-other", question="What is the capital of nowhere?", choices=("a", "b"), label=0),
    ]
    write_jsonl(train, tmp_path / "train.jsonl")
    items = _by_id(scan([str(tmp_path / "train.jsonl")], str(tmp_path / "bench.jsonl")))
    assert set(items) == {"item-0", "item-1"}
    assert "exact" in items["item-0"]["kinds"] and items["item-0"]["matches"][0]["row_id"] == "t-shuffled"
    assert "question" in items["item-1"]["kinds"] and "exact" not in items["item-1"]["kinds"]


def test_short_items_use_a_shorter_n_and_say_so(tmp_path):
    bench = [
        MCExample(id="short", question="alpha beta gamma delta epsilon", choices=("zeta eta", "theta iota"), label=0),
        MCExample(id="tiny", question="Why?", choices=("yes", "no"), label=0),
    ]
    write_jsonl(bench, tmp_path / "bench.jsonl")
    (tmp_path / "t.txt").write_text("once alpha beta gamma delta epsilon zeta eta theta iota here\nwhy yes no\n")
    report = scan([str(tmp_path / "t.txt")], str(tmp_path / "bench.jsonl"), params=ScanParams(near=False))
    items = _by_id(report)
    assert items["short"]["effective_n"] == 9 and items["short"]["kinds"] == ["ngram"]
    assert items["tiny"]["effective_n"] is None and items["tiny"]["kinds"] == ["exact"]
    assert report["effective_n"] == {"9": 1, "exact only": 1}
    assert any("shorter than n = 13" in note for note in report["notes"])
    assert any("exact match only" in note for note in report["notes"])


def test_write_clean_drops_exactly_the_contaminated_rows(planted):
    path, bench, lines, _ = planted
    out = path / "clean.txt"
    report = scan([str(path / "train.txt")], str(path / "bench.jsonl"), write_clean=out)
    assert out.read_text(encoding="utf-8").splitlines() == [lines[0], lines[5]]
    assert report["clean"] == {"path": str(out), "rows": 2, "dropped": 4}


def test_write_clean_of_mc_rows_is_our_jsonl(tmp_path):
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path, seed=0, n_benchmark=20, n_train=30)
    bench = load_examples(str(tmp_path / "benchmark.jsonl")).examples
    train = load_examples(str(tmp_path / "train.jsonl")).examples
    mixed = train[:10] + bench[:3] + train[10:]
    write_jsonl(mixed, tmp_path / "mixed.jsonl")
    scan([str(tmp_path / "mixed.jsonl")], str(tmp_path / "benchmark.jsonl"), write_clean=tmp_path / "clean.jsonl")
    assert load_examples(str(tmp_path / "clean.jsonl")).examples == train


def test_text_columns_in_jsonl_and_parquet(planted, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, bench, lines, _ = planted
    with (tmp_path / "docs.jsonl").open("w") as f:
        for i, line in enumerate(lines):
            f.write(json.dumps({"doc": i, "body": line}) + "\n")
    pq.write_table(pa.table({"text": lines}), tmp_path / "docs.parquet")
    r1 = scan([str(tmp_path / "docs.jsonl")], str(path / "bench.jsonl"), text_field="body",
              write_clean=tmp_path / "clean.jsonl")
    assert r1["totals"]["contaminated_items"] == 4 and r1["train"][0]["kind"] == "text"
    kept = [json.loads(x) for x in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert kept == [{"doc": 0, "body": lines[0]}, {"doc": 5, "body": lines[5]}]
    r2 = scan([str(tmp_path / "docs.parquet"), str(path / "train.txt")], str(path / "bench.jsonl"))
    assert r2["totals"]["train_rows"] == 12 and r2["totals"]["contaminated_rows"] == 8
    assert _by_id(r2)["item-2"]["matching_rows"] == 2


def test_word_normaliser_equals_normalise_text():
    rng = random.Random(3)
    alphabet = "aZé\u0301 \t\n.,;-'\"«»!?ǅﬁ①２\u00a0\u3000\u00a8\u2014xyz0+$=" + "ÅΣσς"
    cache = _WordNormaliser(max_words=50)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert " ".join(cache(text)) == normalise_text(text), repr(text)


# --------------------------------------------------------------------------- CLI


def _cli(*args):
    from pylaundering.cli.app import app

    return runner.invoke(app, ["scan", *args])


def test_cli_writes_json_and_markdown(planted):
    path, *_ = planted
    r = _cli(str(path / "train.txt"), "--benchmark", str(path / "bench.jsonl"), "--out", str(path / "o"), "--json",
             "--quiet")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["totals"]["contaminated_items"] == 4
    assert json.loads((path / "o" / "scan.json").read_text())["totals"] == report["totals"]
    md = (path / "o" / "scan.md").read_text()
    assert "Contaminated benchmark items: 4 of 5" in md and "item-2" in md
    table = _cli(str(path / "train.txt"), "-b", str(path / "bench.jsonl"), "--no-near")
    assert table.exit_code == 0 and "ngram" in table.stdout


@pytest.mark.parametrize("args, code, needle", [
    (["{d}/missing.txt", "-b", "{d}/bench.jsonl"], 1, "missing.txt"),
    (["{d}/train.txt", "-b", "{d}/missing.jsonl"], 1, "missing.jsonl"),
    (["{d}/train.txt", "-b", "{d}/empty.jsonl"], 1, "no examples"),
    (["{d}/train.txt", "-b", "{d}/bench.jsonl", "--benchmark-format", "nope"], 1, "unknown format"),
    (["{d}/bench.jsonl", "-b", "{d}/bench.jsonl", "--train-format", "nope"], 1, "unknown format"),
    (["{d}/train.csv", "-b", "{d}/bench.jsonl"], 1, "cannot infer the format"),
    (["{d}/train.bin", "-b", "{d}/bench.jsonl"], 1, "cannot read .bin"),
    (["{d}/train.txt", "-b", "{d}/bench.jsonl", "-n", "0"], 2, "-n"),
    (["{d}/train.txt", "-b", "{d}/bench.jsonl", "-n", "5"], 2, "--min-n"),
    (["{d}/train.txt", "-b", "{d}/bench.jsonl", "--threshold", "0"], 2, "--threshold"),
])
def test_cli_bad_input_one_line(planted, args, code, needle):
    path, *_ = planted
    (path / "empty.jsonl").write_text("")
    (path / "train.csv").write_text("a,b\n1,2\n")
    (path / "train.bin").write_bytes(b"\0")
    r = _cli(*[a.format(d=path) for a in args])
    assert r.exit_code == code, r.output
    err = r.stderr.strip()
    assert needle in err and "Traceback" not in err
    if code == 1:
        assert len(err.splitlines()) == 1, err


def test_minhash_signatures_match_datasketch_and_do_not_depend_on_chunking():
    import numpy as np
    from datasketch import MinHash

    from pylaundering.audit.minhash import MinHasher

    hasher = MinHasher(64, seed=1)
    sets = [{"a", "b", "c"}, {f"w{i}" for i in range(300)}, {"x"}]
    whole = hasher.signatures(sets)
    assert np.array_equal(whole, hasher.signatures(sets, chunk=7))
    from zlib import crc32

    for s, sig in zip(sets, whole):  # datasketch's classic scheme with the same permutations and hash
        kw = {"scheme": "legacy"} if "scheme" in MinHash.__init__.__code__.co_varnames else {}
        m = MinHash(num_perm=64, hashfunc=lambda x: crc32(x.encode()), permutations=(hasher.a, hasher.b), **kw)
        m.update_batch(list(s))
        assert np.array_equal(m.hashvalues, sig)


def test_write_clean_refuses_mixed_row_kinds(planted, tmp_path):
    path, *_ = planted
    out = tmp_path / "clean.txt"
    with pytest.raises(ValueError, match="mix"):
        scan([str(path / "train.txt"), str(path / "bench.jsonl")], str(path / "bench.jsonl"), write_clean=out)
    assert not out.exists() and not list(tmp_path.glob(".clean.txt.*"))


def test_dataset_repository_folder_of_text_rows(planted, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, bench, lines, _ = planted
    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": lines}), tmp_path / "repo" / "data" / "train-00000-of-00001.parquet")
    report = scan([str(tmp_path / "repo")], str(path / "bench.jsonl"), params=ScanParams(near=False))
    assert report["train"][0]["kind"] == "text" and report["train"][0]["rows"] == 6
    assert set(_by_id(report)) == {"item-0", "item-1", "item-2"}


def test_help_explains_the_options():
    from pylaundering.cli.app import app

    r = runner.invoke(app, ["scan", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for opt in ("--benchmark", "--benchmark-format", "--train-format", "--text-field", "-n", "--min-n", "--near",
                "--no-near", "--threshold", "--out", "--write-clean", "--json", "--quiet"):
        assert opt in r.output


def test_public_layouts_are_scanned_without_a_format(planted):
    """A MedMCQA parquet and an MMLU-Redux `;` CSV are recognised by their columns; the planted copy of
    item 0 (as a MedMCQA row) and of item 1 (as an MMLU-Redux row) are found."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    path, bench, *_ = planted
    rng = random.Random(3)
    b0, b1 = bench[0], bench[1]
    med = [{"id": "m0", "question": " ".join(_words(rng, 20)), **{f"op{c}": "x" for c in "abcd"}, "cop": 1},
           {"id": "m1", "question": b0.question, **{f"op{c}": b0.choices[i] for i, c in enumerate("abcd")}, "cop": 0}]
    pq.write_table(pa.Table.from_pylist(med), path / "med.parquet")
    with (path / "redux.csv").open("w", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["question", "choices", "answer", "error_type"])
        w.writerow([b1.question, repr(list(b1.choices)), 0, "ok"])
    report = scan([str(path / "med.parquet"), str(path / "redux.csv")], str(path / "bench.jsonl"))
    assert set(_by_id(report)) == {"item-0", "item-1"}
    assert [s["format"] for s in report["train"]] == ["medmcqa", "mmlu_redux"]


def test_a_folder_of_splits_is_scanned_one_split_at_a_time(tmp_path):
    """A folder holding train.jsonl and test.jsonl is one dataset: scanning it whole would read the benchmark's
    own test split as training rows and report it as contamination. A split is named (FOLDER::train) or refused
    with the splits listed; TweetEval's original files are read as text and labels paired line by line."""
    from pylaundering.data.synth import make_synthetic
    from pylaundering.errors import DataError

    bench, train = make_synthetic(seed=0, n_benchmark=20, n_train=40)
    folder = tmp_path / "ds"
    folder.mkdir()
    write_jsonl(train, folder / "train.jsonl")
    write_jsonl(bench, folder / "test.jsonl")
    write_jsonl(bench, tmp_path / "bench.jsonl")
    with pytest.raises(DataError, match="test, train"):
        scan([str(folder)], str(tmp_path / "bench.jsonl"))
    only_train = scan([f"{folder}::train"], str(tmp_path / "bench.jsonl"))
    assert only_train["train"][0]["rows"] == len(train) and only_train["totals"]["contaminated_items"] == 0
    assert scan([f"{folder}::test"], str(tmp_path / "bench.jsonl"))["totals"]["contaminated_items"] == len(bench)
    tweets = tmp_path / "tweet_eval"
    tweets.mkdir()
    (tweets / "mapping.txt").write_text("0\tanger\n1\tjoy\n")
    for split, rows in (("train", train), ("test", bench)):
        (tweets / f"{split}_text.txt").write_text("".join(e.question + "\n" for e in rows))
        (tweets / f"{split}_labels.txt").write_text("".join(f"{i % 2}\n" for i in range(len(rows))))
    report = scan([f"{tweets}::test"], str(tmp_path / "bench.jsonl"))
    assert report["train"][0]["rows"] == len(bench), report["train"]  # the text lines, not the labels file's


def test_write_clean_of_tweet_eval_keeps_every_row_with_its_label(tmp_path):
    """TweetEval's release is a text file and a labels file: the clean set must carry each row's label (it was
    written as the text file's bare lines into a .jsonl, a training set without labels that no command reads)."""
    from pylaundering.data.synth import make_synthetic

    bench, train = make_synthetic(seed=1, n_benchmark=20, n_train=30)
    tweets = tmp_path / "tweet_eval"
    tweets.mkdir()
    (tweets / "mapping.txt").write_text("0\tanger\n1\tjoy\n2\toptimism\n")
    texts = [e.question for e in train[:12]] + [bench[0].question] + [e.question for e in train[12:]]
    ids = [(3 * i + 1) % 3 for i in range(len(texts))]
    (tweets / "train_text.txt").write_text("".join(t + "\n" for t in texts))
    (tweets / "train_labels.txt").write_text("".join(f"{i}\n" for i in ids))
    write_jsonl(bench, tmp_path / "bench.jsonl")
    out = tmp_path / "clean.jsonl"
    report = scan([f"{tweets}::train"], str(tmp_path / "bench.jsonl"), write_clean=out)
    assert report["clean"]["rows"] == len(texts) - 1 and report["clean"]["dropped"] == 1
    kept = load_examples(str(out)).examples
    names = ("anger", "joy", "optimism")
    expected = [(t, names[i]) for j, (t, i) in enumerate(zip(texts, ids)) if j != 12]
    assert [(e.question, e.choices[e.label]) for e in kept] == expected
    assert {e.choices for e in kept} == {names}
    # what the data loader reads from the same files, less the dropped row: one reading of the release
    loaded = load_examples(f"{tweets}::train").examples
    assert [(e.question, e.label) for e in kept] == [(e.question, e.label) for j, e in enumerate(loaded) if j != 12]


def test_write_clean_refuses_a_name_that_would_be_read_in_another_format(planted, tmp_path):
    path, *_ = planted
    with pytest.raises(ValueError, match="plain text lines.*name the clean file .txt"):
        scan([str(path / "train.txt")], str(path / "bench.jsonl"), write_clean=tmp_path / "clean.jsonl")
    with pytest.raises(ValueError, match="JSON Lines.*name the clean file .jsonl"):
        scan([str(path / "bench.jsonl")], str(path / "bench.jsonl"), write_clean=tmp_path / "clean.txt")
    assert list(tmp_path.glob("*clean*")) == []  # nothing written, no temporary file left
