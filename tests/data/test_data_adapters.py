"""One small fixture per public format, written in that format, plus dispatch and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pylaundering.data import FORMATS, MCExample, load_examples, register_format, write_jsonl
from pylaundering.errors import DataError

#: The format hint of error messages names both the command line and the API.
HINT = r"pass the format \(--benchmark-format / --train-format on the command line, format= in the API\)"


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- our format


def test_pylaundering_jsonl_inferred_and_round_trips(tmp_path):
    items = [MCExample(f"id{i}", f"q{i}?", ("a", "b"), i % 2, subject="s") for i in range(3)]
    path = write_jsonl(items, tmp_path / "bench.jsonl")
    result = load_examples(str(path))
    assert result.format == "pylaundering"
    assert result.examples == items
    assert result.skipped == 0
    assert result.files == [str(path)]


def test_jsonl_bad_line_names_file_and_row(tmp_path):
    good = json.dumps({"id": "a", "question": "q?", "choices": ["x", "y"], "label": 0})
    path = tmp_path / "b.jsonl"
    path.write_text(good + "\n\n{not json\n" + good.replace('"a"', '"b"') + "\n")
    with pytest.raises(DataError, match=rf"^{path}, row 3: invalid JSON"):
        load_examples(str(path))
    result = load_examples(str(path), skip_malformed=True)
    assert [e.id for e in result.examples] == ["a", "b"]
    assert result.skipped == 1


def test_duplicate_ids_are_malformed(tmp_path):
    rows = [{"id": "same", "question": "q?", "choices": ["x", "y"], "label": 0}] * 2
    path = write_jsonl_rows(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match=r"row 2, field 'id': duplicate id 'same' \(first at .*row 1\)"):
        load_examples(str(path))


# --------------------------------------------------------------------------- GPQA

GPQA_HEADER = ["Record ID", "Question", "Correct Answer", "Incorrect Answer 1",
               "Incorrect Answer 2", "Incorrect Answer 3", "High-level domain", "Explanation"]


def gpqa_file(tmp_path: Path) -> Path:
    rows = [
        [f"rec{i}", f"Which particle number {i}?", f"right{i}", f"wrong{i}a", f"wrong{i}b", f"wrong{i}c",
         "Physics" if i % 2 else "Chemistry", "because"]
        for i in range(12)
    ]
    rows.append(["rec12", "Broken?", "right", "", "w2", "w3", "Physics", ""])
    return write_csv(tmp_path / "gpqa_diamond.csv", GPQA_HEADER, rows)


def test_gpqa_shuffles_deterministically(tmp_path):
    path = gpqa_file(tmp_path)
    first = load_examples(str(path), "gpqa", skip_malformed=True)
    again = load_examples(str(path), "gpqa", skip_malformed=True)
    assert first.examples == again.examples
    assert first.skipped == 1
    for i, e in enumerate(first.examples):
        assert e.id == f"rec{i}"
        assert e.answer == f"right{i}"
        assert sorted(e.choices) == sorted([f"right{i}", f"wrong{i}a", f"wrong{i}b", f"wrong{i}c"])
        assert e.subject == ("Physics" if i % 2 else "Chemistry")
    assert len({e.label for e in first.examples}) > 1  # the correct answer is not always first


def test_gpqa_missing_answer_names_the_field(tmp_path):
    path = gpqa_file(tmp_path)
    with pytest.raises(DataError) as info:
        load_examples(str(path), "gpqa")
    assert str(info.value) == f"{path}, row 13, field 'Incorrect Answer 1': missing or empty"


# --------------------------------------------------------------------------- MMLU


def test_mmlu_int_and_letter_answers(tmp_path):
    rows = [
        {"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1, "subject": "math"},
        {"question": "Capital of France?", "choices": ["Rome", "Paris", "Oslo", "Bern"], "answer": "B",
         "subject": "geo"},
    ]
    path = tmp_path / "mmlu_test.json"
    path.write_text(json.dumps(rows))
    result = load_examples(str(path), "mmlu")
    assert [e.label for e in result.examples] == [1, 1]
    assert [e.subject for e in result.examples] == ["math", "geo"]
    assert [e.id for e in result.examples] == ["mmlu_test.json:1", "mmlu_test.json:2"]


def test_mmlu_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"question": ["q?"], "choices": [["a", "b", "c", "d"]], "answer": [3], "subject": ["s"]})
    pq.write_table(table, tmp_path / "m.parquet")
    (e,) = load_examples(str(tmp_path / "m.parquet"), "mmlu").examples
    assert e.choices == ("a", "b", "c", "d") and e.label == 3


def test_mmlu_numeric_choices_are_not_ambiguous(tmp_path):
    path = write_jsonl_rows(tmp_path / "m.jsonl", [{"question": "q?", "choices": [1, 2, 3], "answer": "2"}])
    (e,) = load_examples(str(path), "mmlu").examples
    assert e.choices == ("1", "2", "3") and e.label == 2  # "2" is an index in MMLU, never text


# --------------------------------------------------------------------------- MMLU-Redux

REDUX_HEADER = ["question", "choices", "answer", "error_type", "source", "correct_answer", "potential_reason"]


def redux_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "redux"
    write_csv(folder / "virology.csv", REDUX_HEADER, [
        ["What infects cells?", "['virus', 'rock', 'idea', 'tone']", "0", "ok", "", "", ""],
        ["Bad key; really?", "['a', 'b', 'c', 'd']", "2", "wrong_groundtruth", "", "1", "key"],
    ], delimiter=";")
    write_csv(folder / "anatomy.csv", REDUX_HEADER, [
        ["Bones in the ear?", "['1', '2', '3', '4']", "2", "ok", "", "", ""],
        ["Unclear?", "['x', 'y']", "1", "bad_question_clarity", "", "", ""],
    ], delimiter=";")
    (folder / "README.md").write_text("not data")
    return folder


def test_mmlu_redux_folder_sorted_subject_from_file(tmp_path):
    folder = redux_folder(tmp_path)
    result = load_examples(str(folder), "mmlu_redux")
    ids = [e.id for e in result.examples]
    assert ids == ["anatomy.csv:1", "anatomy.csv:2", "virology.csv:1", "virology.csv:2"]
    assert [e.subject for e in result.examples] == ["anatomy", "anatomy", "virology", "virology"]
    assert result.examples[0].choices == ("1", "2", "3", "4") and result.examples[0].label == 2
    assert result.examples[3].question == "Bad key; really?"  # ';' inside a quoted cell survives
    assert result.dropped == 0


def test_mmlu_redux_drop_erroneous(tmp_path):
    result = load_examples(str(redux_folder(tmp_path)), "mmlu_redux", drop_erroneous=True)
    assert [e.question for e in result.examples] == ["Bones in the ear?", "What infects cells?"]
    assert result.dropped == 2 and result.skipped == 0


def test_mmlu_redux_bad_list_literal(tmp_path):
    path = write_csv(tmp_path / "law.csv", REDUX_HEADER, [
        ["ok?", "['a', 'b']", "0", "ok", "", "", ""],
        ["broken?", "['a', 'b'", "0", "ok", "", "", ""],
        ["letter?", "['a', 'b']", "E", "ok", "", "", ""],
    ], delimiter=";")
    with pytest.raises(DataError, match=rf"^{path}, row 2, field 'choices': expected a list literal"):
        load_examples(str(path), "mmlu_redux")
    result = load_examples(str(path), "mmlu_redux", skip_malformed=True)
    assert len(result.examples) == 1 and result.skipped == 2


def test_mmlu_redux_drop_needs_error_type(tmp_path):
    path = write_csv(tmp_path / "law.csv", ["question", "choices", "answer"],
                     [["q?", "['a', 'b']", "0"]], ";")
    assert len(load_examples(str(path), "mmlu_redux").examples) == 1
    with pytest.raises(DataError, match="field 'error_type': missing"):
        load_examples(str(path), "mmlu_redux", drop_erroneous=True)


# --------------------------------------------------------------------------- MedMCQA


def test_medmcqa(tmp_path):
    header = ["id", "question", "opa", "opb", "opc", "opd", "cop", "choice_type", "exp", "subject_name",
              "topic_name"]
    path = write_csv(tmp_path / "medmcqa_dev.csv", header, [
        ["m1", "Which vitamin?", "A", "B12", "C", "D", "1", "single", "long explanation", "Biochemistry", ""],
        ["m2", "Hidden?", "a", "b", "c", "d", "-1", "single", "", "Anatomy", ""],
    ])
    with pytest.raises(DataError, match=r"row 2, field 'cop': no answer \(-1\).*validation"):
        load_examples(str(path), "medmcqa")
    result = load_examples(str(path), "medmcqa", skip_malformed=True)
    (e,) = result.examples
    assert (e.id, e.answer, e.subject, e.context) == ("m1", "B12", "Biochemistry", None)


# --------------------------------------------------------------------------- RACE


def test_race_article_is_context_and_bad_letter_message(tmp_path):
    rows = [
        {"example_id": "high1.txt", "article": "Tom has a cat.", "question": "What does Tom have?",
         "options": ["a dog", "a cat", "a cow", "a fish"], "answer": "B"},
        {"example_id": "high1.txt", "article": "Tom has a cat.", "question": "Who?",
         "options": ["Tom", "Ann", "Bob", "Eve"], "answer": "E"},
    ]
    path = write_jsonl_rows(tmp_path / "race.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_examples(str(path), "race")
    assert str(info.value) == f"{path}, row 2, field 'answer': expected one of A-D, got 'E'"
    (e,) = load_examples(str(path), "race", skip_malformed=True).examples
    assert (e.context, e.answer, e.id) == ("Tom has a cat.", "a cat", "race.jsonl:1")


# --------------------------------------------------------------------------- ARC


def test_arc_choice_labels(tmp_path):
    rows = [
        {"id": "Mercury_1", "question": "Which is a metal?",
         "choices": {"text": ["wood", "iron", "glass"], "label": ["A", "B", "C"]}, "answerKey": "B"},
        {"id": "Mercury_2", "question": "Numbered?",
         "choices": {"text": ["w", "x", "y", "z", "v"], "label": ["1", "2", "3", "4", "5"]},
         "answerKey": "5"},
    ]
    path = tmp_path / "arc.json"
    path.write_text(json.dumps(rows))
    a, b = load_examples(str(path), "arc").examples
    assert (a.id, a.answer, b.label, len(b.choices)) == ("Mercury_1", "iron", 4, 5)


# --------------------------------------------------------------------------- generic


def test_generic_csv_with_choice_columns(tmp_path):
    path = write_csv(tmp_path / "custom.csv", ["prompt", "A", "B", "C", "D", "E", "gold", "topic"], [
        ["p1?", "x", "y", "z", "w", "", "C", "t"],          # letter; empty 5th choice dropped
        ["p2?", "x", "y", "z", "w", "v", "4", "t"],          # 0-based index
        ["p3?", "red", "blue", "", "", "", "blue", ""],     # text of the choice
    ])
    cols = {"question": "prompt", "choices": "A,B,C,D,E", "label": "gold", "subject": "topic"}
    result = load_examples(str(path), "csv", columns=cols)
    labels = [(len(e.choices), e.label, e.subject) for e in result.examples]
    assert labels == [(4, 2, "t"), (5, 4, "t"), (2, 1, None)]
    assert result.examples[0].id == "custom.csv:1"


def test_generic_jsonl_list_column_and_ambiguity(tmp_path):
    rows = [
        {"uid": "u1", "prompt": "p?", "options": ["10", "20"], "gold": "20"},   # text (20 is out of range)
        {"uid": "u2", "prompt": "p?", "options": ["1", "0"], "gold": "1"},      # index 1 or text of choice 0
    ]
    path = write_jsonl_rows(tmp_path / "g.jsonl", rows)
    cols = {"id": "uid", "question": "prompt", "choices": "options", "label": "gold"}
    with pytest.raises(DataError, match=r"row 2, field 'gold': ambiguous"):
        load_examples(str(path), "jsonl", columns=cols)
    result = load_examples(str(path), "jsonl", columns=cols, skip_malformed=True)
    assert [(e.id, e.label) for e in result.examples] == [("u1", 1)]


def test_generic_default_columns_are_ours(tmp_path):
    rows = [{"question": "q?", "choices": ["a", "b"], "label": "b"}]
    path = tmp_path / "g.json"
    path.write_text(json.dumps(rows))
    (e,) = load_examples(str(path), "json").examples
    assert e.label == 1


def test_columns_validation(tmp_path):
    path = write_jsonl_rows(tmp_path / "g.jsonl", [{"q": "q?", "choices": ["a", "b"], "label": 0}])
    with pytest.raises(DataError, match=r"unknown field\(s\) \['answer'\]"):
        load_examples(str(path), "jsonl", columns={"answer": "label"})
    with pytest.raises(DataError, match="only applies to the generic formats"):
        load_examples(str(path), "mmlu", columns={"question": "q"})
    with pytest.raises(DataError, match="field 'uid': column not found"):
        load_examples(str(path), "jsonl", columns={"question": "q", "id": "uid"})


# --------------------------------------------------------------------------- dispatch


def _layouts(tmp_path: Path) -> dict[str, Path]:
    """One small file per public layout, named so that nothing but its columns can tell its format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "layouts"
    d.mkdir()
    out = {"gpqa": write_csv(d / "a.csv", GPQA_HEADER, [["r1", "Q?", "right", "w1", "w2", "w3", "Physics", ""]])}
    out["medmcqa"] = d / "b.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "m1", "question": "Q?", "opa": "a", "opb": "b", "opc": "c",
                                          "opd": "d", "cop": 2, "exp": "", "subject_name": "Anatomy"}]), out["medmcqa"])
    out["race"] = write_jsonl_rows(d / "c.jsonl", [{"example_id": "e", "article": "A text.", "question": "Q?",
                                                    "options": ["a", "b", "c", "d"], "answer": "B"}])
    out["arc"] = write_jsonl_rows(d / "d.jsonl", [{"id": "x1", "question": "Q?", "answerKey": "2",
                                                   "choices": {"text": ["a", "b"], "label": ["1", "2"]}}])
    out["mmlu_redux"] = write_csv(d / "e.csv", ["question", "choices", "answer", "error_type"],
                                  [["Q?", "['a', 'b']", "1", "ok"]], delimiter=";")
    out["mmlu"] = d / "f.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "Q?", "subject": "law", "choices": ["a", "b"], "answer": 1}]),
                   out["mmlu"])
    out["csv"] = write_csv(d / "g.csv", ["question", "choices", "label"], [["Q?", "['a', 'b']", "1"]])
    out["json"] = d / "h.json"
    out["json"].write_text(json.dumps([{"question": "Q?", "choices": ["a", "b"], "label": 1}]))
    out["pylaundering"] = write_jsonl_rows(d / "i.jsonl", [{"id": "p", "question": "Q?", "choices": ["a", "b"],
                                                            "label": 1}])
    out["snli"] = write_jsonl_rows(d / "j.jsonl", [{"premise": "A dog.", "hypothesis": "An animal.", "label": 0}])
    out["classification"] = write_csv(d / "k.csv", ["text", "label"], [["fine", "pos"], ["bad", "neg"]])
    return out


def test_format_is_inferred_from_the_columns(tmp_path):
    for expected, path in _layouts(tmp_path).items():
        inferred = load_examples(str(path), role="benchmark")
        assert inferred.format == expected, path
        assert inferred.examples == load_examples(str(path), expected, role="benchmark").examples


def test_mmlu_original_csvs_have_no_header(tmp_path):
    """The original MMLU release: data/test/<subject>_test.csv, rows of question, A-D, answer letter."""
    folder = tmp_path / "data" / "test"
    write_csv(folder / "college_physics_test.csv", ["Which is a boson?", "electron", "photon", "proton", "muon", "B"],
              [["Units of force?", "newton", "joule", "watt", "pascal", "A"]])
    write_csv(folder / "abstract_algebra_test.csv", ["Order of Z_4?", "1", "2", "3", "4", "D"], [])
    result = load_examples(str(folder))
    assert result.format == "mmlu_csv"
    assert [(e.subject, e.question, e.answer, e.id) for e in result.examples] == [
        ("abstract_algebra", "Order of Z_4?", "4", "abstract_algebra_test.csv:1"),
        ("college_physics", "Which is a boson?", "photon", "college_physics_test.csv:1"),
        ("college_physics", "Units of force?", "newton", "college_physics_test.csv:2"),
    ]
    bad = write_csv(tmp_path / "x_dev.csv", ["Q?", "a", "b", "c", "d", "A"],
                    [["Q2?", "a", "b", "c", "d", "A", "extra"]])
    with pytest.raises(DataError, match=r"x_dev.csv, row 2: expected 6 cells, got 7"):
        load_examples(str(bad))
    # a bad byte is located by record, counting the first line as a record (there is no header)
    broken = tmp_path / "y_val.csv"
    broken.write_bytes(b"Q1?,a,b,c,d,A\nQ2?,a,b,\xff,d,B\n")
    with pytest.raises(DataError, match=rf"^{broken}, row 2: not UTF-8"):
        load_examples(str(broken), "mmlu_csv")


def test_format_inference(tmp_path):
    path = gpqa_file(tmp_path)
    # GPQA's columns name the format; the file's broken row is then reported as for format="gpqa"
    with pytest.raises(DataError, match="row 13, field 'Incorrect Answer 1': missing or empty"):
        load_examples(str(path))
    other = write_csv(tmp_path / "other.csv", ["prompt", "A", "B", "target"], [["Q?", "a", "b", "A"]])
    with pytest.raises(DataError, match=rf"cannot infer the format: the columns match no known layout;"
                                        rf" its columns: A, B, prompt, target; {HINT}"):
        load_examples(str(other))
    five = write_csv(tmp_path / "five_test.csv", ["Q?", "a", "b", "c", "A"], [])  # not MMLU's six cells
    with pytest.raises(DataError, match="cannot infer the format"):
        load_examples(str(five))
    with pytest.raises(DataError, match="unknown format 'nope'"):
        load_examples(str(path), "nope")
    with pytest.raises(DataError, match="no such file or folder"):
        load_examples(str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match="format 'pylaundering' reads .jsonl files, not .csv"):
        load_examples(str(path), "pylaundering")


def test_folder_of_jsonl_is_inferred_and_limit_stops_early(tmp_path):
    for name in ("b.jsonl", "a.jsonl"):
        write_jsonl([MCExample(f"{name}-{i}", "q?", ("x", "y"), 0) for i in range(3)], tmp_path / name)
    result = load_examples(str(tmp_path))
    assert result.format == "pylaundering"
    assert [e.id for e in result.examples][:4] == ["a.jsonl-0", "a.jsonl-1", "a.jsonl-2", "b.jsonl-0"]
    assert len(load_examples(str(tmp_path), limit=4).examples) == 4


def test_all_rows_malformed_is_an_error(tmp_path):
    path = write_jsonl_rows(tmp_path / "bad.jsonl", [{"question": "no id"}] * 2)
    with pytest.raises(DataError,
                       match="no examples found .*skipped 2 malformed rows, the first: .*row 1, field 'id': missing"):
        load_examples(str(path), skip_malformed=True)


def test_registry_adds_a_format_without_touching_dispatch(tmp_path):
    @register_format("yesno_test", extensions=(".jsonl",))
    def _yesno(record, ctx):
        """Yes/no questions."""
        return MCExample(ctx.default_id, record["q"], ("no", "yes"), int(record["a"]))

    try:
        assert FORMATS["yesno_test"].description == "Yes/no questions."
        path = write_jsonl_rows(tmp_path / "yn.jsonl", [{"q": "Sky blue?", "a": True}])
        (e,) = load_examples(str(path), "yesno_test").examples
        assert (e.id, e.answer) == ("yn.jsonl:1", "yes")
        with pytest.raises(ValueError, match="already registered"):
            register_format("yesno_test")(_yesno)
    finally:
        FORMATS.pop("yesno_test")
    with pytest.raises(ValueError, match="no reader"):
        register_format("xml_test", extensions=(".xml",))


def test_one_registration_declares_signature_order_and_hub_names(tmp_path):
    from pylaundering.data.registry import hub_format, hub_subset

    def convert(record, ctx):
        """Yes/no questions."""
        return MCExample(ctx.default_id, record["q"], ("no", "yes"), int(record["a"]))

    # Columns that MMLU's signature (question, choices, answer) also matches: the order decides.
    row = {"q": "Sky blue?", "a": 1, "question": "x", "choices": ["a", "b"], "answer": 0}
    path = write_jsonl_rows(tmp_path / "yn.jsonl", [row])
    try:
        register_format("yesno_late", signature=("q", "a"), infer_order=75)(convert)
        assert load_examples(str(path)).format == "mmlu"
        register_format("yesno_test", signature=("q", "a"), infer_order=65,
                        hub_names=("Me/YesNo",), hub_subset="main")(convert)
        assert load_examples(str(path)).format == "yesno_test"
        assert (hub_format("me/yesno"), hub_subset("ME/YESNO"), hub_format("me/other")) == ("yesno_test", "main", None)
        with pytest.raises(ValueError, match="hub names already mapped elsewhere"):
            register_format("yesno_clash", hub_names=("cais/MMLU",))(convert)
        assert "yesno_clash" not in FORMATS
    finally:
        FORMATS.pop("yesno_test", None)
        FORMATS.pop("yesno_late", None)
    assert load_examples(str(path)).format == "mmlu" and hub_format("me/yesno") is None


# --------------------------------------------------------------------------- hub


@pytest.fixture
def online(monkeypatch):
    """The hub counts as reachable (the fake load_dataset never touches the network)."""
    from pylaundering.data import hub

    monkeypatch.setattr(hub, "hub_offline_reason", lambda: None)


class FakeHub:
    """Stands in for datasets.load_dataset; records its arguments."""

    def __init__(self, result):
        self.result = result
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


def test_hub_mmlu_called_with_right_arguments(monkeypatch, online):
    datasets = pytest.importorskip("datasets")
    rows = [{"question": "q?", "choices": ["a", "b", "c", "d"], "answer": 2, "subject": "anatomy"},
            {"question": "r?", "choices": ["a", "b", "c", "d"], "answer": 9, "subject": "anatomy"}]
    fake = FakeHub(rows)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    result = load_examples("cais/mmlu", subset="all", split="test", skip_malformed=True)
    assert fake.calls == [(("cais/mmlu", "all"), {"split": "test"})]
    assert result.format == "mmlu" and result.skipped == 1
    assert result.examples[0].id == "mmlu/all/test:1"
    with pytest.raises(DataError, match=r"^cais/mmlu \(all, test\), row 2, field 'answer'"):
        load_examples("cais/mmlu", subset="all", split="test")


def test_hub_split_choice_and_unknown_names(monkeypatch, online):
    datasets = pytest.importorskip("datasets")
    row = {"Question": "q?", "Correct Answer": "r", "Incorrect Answer 1": "w1",
           "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"}
    monkeypatch.setattr(datasets, "load_dataset", FakeHub({"train": [row]}))
    result = load_examples("Idavidrein/gpqa", subset="gpqa_diamond")  # the only split is used
    assert result.format == "gpqa" and result.examples[0].id == "gpqa/gpqa_diamond/train:1"

    monkeypatch.setattr(datasets, "load_dataset", FakeHub({"train": [row], "test": [row]}))
    with pytest.raises(DataError, match=r"pass a split .*; this dataset has \['test', 'train'\]"):
        load_examples("Idavidrein/gpqa", subset="gpqa_diamond")
    with pytest.raises(DataError, match=rf"nor a hub dataset whose format is known.*{HINT}"):
        load_examples("someone/something")


def test_hub_errors_are_wrapped(monkeypatch, online):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="could not load from the Hugging Face hub.*no network") as info:
        load_examples("ehovy/race", subset="high", split="test")
    assert isinstance(info.value.__cause__, ConnectionError)
