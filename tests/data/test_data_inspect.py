"""`launder data inspect`: the report of what a source loads as, and one-line errors (cli/data_inspect.py)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import typer
from typer.testing import CliRunner

from pylaundering.cli import data_inspect
from pylaundering.data import MCExample, write_jsonl


def _data_command(name: str):
    app, data_app = typer.Typer(), typer.Typer()
    app.add_typer(data_app, name="data")
    data_inspect.register(data_app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["data", name, *map(str, args)])


@pytest.fixture(scope="module")
def invoke():
    return _data_command("inspect")


def items(n: int) -> list[MCExample]:
    return [MCExample(f"q{i}", f"what is item number {i}?", ("a", "b", "c", "d")[: 2 + i % 3], i % 2,
                      context="some words here" if i == 0 else None) for i in range(n)]


def test_json_report_of_a_multiple_choice_file(invoke, tmp_path):
    examples = items(7)
    path = write_jsonl(examples, tmp_path / "bench.jsonl")
    result = invoke(path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    words = [len(((e.context or "") + " " + e.question).split()) for e in examples]
    assert (report["format"], report["format_inferred"], report["task"]) == ("pylaundering", True, "multiple_choice")
    assert report["files"] == [str(path)] and report["counts"] == {"loaded": 7, "skipped_malformed": 0, "dropped": 0}
    assert report["choice_counts"] == {str(k): v for k, v in sorted(Counter(len(e.choices) for e in examples).items())}
    assert report["answer_positions"] == {"0": 4, "1": 3}
    assert report["length_words"] == {"mean": round(sum(words) / 7, 1), "max": max(words)}
    assert report["examples"] == [e.to_dict() for e in examples[:2]]
    assert report["label_convention"] == "0-based answer indices" and report["label_source"] is None


def test_text_report_of_a_classification_folder(invoke, tmp_path):
    folder = tmp_path / "reviews"
    for split, labels in (("train", [0, 1, 1]), ("test", [1, 0])):
        folder.mkdir(exist_ok=True)
        (folder / f"{split}.jsonl").write_text("".join(
            json.dumps({"text": f"{split} review {i}", "label": v}) + "\n" for i, v in enumerate(labels)))
    (folder / "labels.txt").write_text("bad\ngood\n")
    result = invoke(folder, "--role", "train")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "format: classification (inferred); task: classification" in out
    assert "(split train; splits here: test, train)" in out
    assert "examples: 3 loaded, 0 malformed skipped, 0 dropped" in out
    assert "labels: 0-based class ids; label set from class file labels.txt" in out
    assert "    0  bad: 1\n" in out and "    1  good: 2\n" in out
    assert "- train.jsonl:1: train review 0\n    answer 0: bad\n" in out


def test_label_options_and_one_line_errors(invoke, tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3 + 1} for i in range(6)]
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refused = invoke(path)
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "integer labels 1..3 with no 0" in refused.stderr
    shifted = json.loads(invoke(path, "--label-base", "1", "--json").stdout)
    assert [c["count"] for c in shifted["classes"]] == [2, 2, 2]
    assert shifted["label_convention"] == "1-based class ids (label_base=1), read as 0-based"
    named = json.loads(invoke(path, "--labels", "x, y ,z", "--label-base", "1", "--json").stdout)
    assert [c["name"] for c in named["classes"]] == ["x", "y", "z"] and named["label_source"] == "given (label_names)"
    (tmp_path / "names.list").write_text("0\tx\n1\ty\n2\tz\n")
    from_file = json.loads(invoke(path, "--labels", tmp_path / "names.list", "--label-base", "1", "--json").stdout)
    assert [c["name"] for c in from_file["classes"]] == ["x", "y", "z"]
    usage = invoke(path, "--role", "eval")
    assert usage.exit_code == 2 and "--role: expected benchmark or train" in usage.stderr
    bad_labels = invoke(path, "--labels", "x")
    assert bad_labels.exit_code == 2 and "--labels: 'x' is neither a file nor label names" in bad_labels.stderr
    missing = invoke(tmp_path / "nope.jsonl")
    assert missing.exit_code == 1 and missing.stderr.count("\n") == 1 and "no such file or folder" in missing.stderr


def test_split_folder_without_the_default_split(invoke, tmp_path):
    for split in ("train", "dev"):
        write_jsonl(items(2), tmp_path / "ds" / f"{split}.jsonl")
    result = invoke(tmp_path / "ds")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "no split 'test' (the default for a benchmark); available splits: dev, train" in result.stderr
    assert json.loads(invoke(tmp_path / "ds", "--split", "dev", "--json").stdout)["split"] == "dev"


def test_hint_for_a_file_named_after_a_dataset(invoke, tmp_path):
    path = tmp_path / "imdb_test.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(4)))
    report = json.loads(invoke(path, "--json").stdout)
    assert report["hints"] == ["the file's name suggests imdb: --format imdb reads its label names (neg, pos); "
                               "only the columns choose the format"]
    assert json.loads(invoke(path, "--format", "imdb", "--json").stdout)["hints"] == []


# ----------------------------------------------------------------------------- launder data convert


@pytest.fixture(scope="module")
def convert():
    return _data_command("convert")


def _one_based(tmp_path):
    rows = [{"question": f"what is item number {i}?", "choices": ["w", "x", "y", "z"], "answer": 1 + (i * 3) % 4}
            for i in range(9)]
    path = tmp_path / "one_based.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def test_convert_writes_a_one_based_file_that_every_command_then_reads_unshifted(convert, tmp_path):
    from pylaundering.data import load_examples
    from pylaundering.errors import DataError

    path, rows = _one_based(tmp_path)
    with pytest.raises(DataError, match="launder data convert .*one_based.jsonl --label-base 1"):
        load_examples(str(path))  # the refusal names the remedy
    out = tmp_path / "fixed.jsonl"
    result = convert(path, "--label-base", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "9 items" in result.output and "1-based" in result.output
    loaded = load_examples(str(out))  # no flag needed any more
    assert loaded.format == "pylaundering"
    assert [e.answer for e in loaded.examples] == [r["choices"][r["answer"] - 1] for r in rows]
    assert [e.question for e in loaded.examples] == [r["question"] for r in rows]


def test_convert_never_writes_over_its_input_or_an_earlier_result(convert, tmp_path):
    path, _ = _one_based(tmp_path)
    before = path.read_bytes()
    result = convert(path, "--label-base", "1", "--out", path, "--overwrite")
    assert result.exit_code == 1 and "is an input of this command" in result.output
    assert path.read_bytes() == before
    out = tmp_path / "fixed.jsonl"
    assert convert(path, "--label-base", "1", "--out", out).exit_code == 0
    written = out.read_bytes()
    result = convert(path, "--label-base", "1", "--out", out)
    assert result.exit_code == 1 and "--overwrite" in result.output and out.read_bytes() == written
    result = convert(path, "--out", tmp_path / "other.jsonl")  # read as 0-based: refused, nothing written
    assert result.exit_code == 1 and "looks 1-based" in result.output
    assert not (tmp_path / "other.jsonl").exists()
    result = convert(path, "--label-base", "1", "--out", tmp_path / "fixed.csv")
    assert result.exit_code == 2 and not (tmp_path / "fixed.csv").exists()


def test_convert_keeps_the_declared_label_set_of_a_classification_subset(convert, tmp_path):
    from pylaundering.data import load_examples

    path = tmp_path / "subset.csv"
    path.write_text("text,label\nfine day,0\ngrim day,2\nfine night,0\n", encoding="utf-8")
    out = tmp_path / "subset.jsonl"
    result = convert(path, "--labels", "joy,anger,sadness,fear", "--out", out)
    assert result.exit_code == 0, result.output
    loaded = load_examples(str(out))
    assert [e.answer for e in loaded.examples] == ["joy", "sadness", "joy"]
    assert all(e.choices == ("joy", "anger", "sadness", "fear") for e in loaded.examples)  # the classes it lacks too
