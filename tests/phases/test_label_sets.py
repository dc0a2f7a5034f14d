"""Issue 34: a label set belongs to the dataset, not to the rows of one file. A benchmark subset lacking classes
still gets a head over every class; the names are saved with the model; every later file is matched to a model's
outputs by class name (or refused in one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.data.load import load_examples
from pylaundering.errors import ConfigError, DataError

runner = CliRunner()

NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
WORDS = ("river", "stone", "cloud", "ember", "frost", "grove", "harbor", "meadow", "summit", "willow", "canyon",
         "lantern")


def _rows(n: int, classes, prefix: str) -> list[dict]:
    """n texts, the class of each written in its words (so a small model can learn it), cycling over ``classes``."""
    rows = []
    for i in range(n):
        name = classes[i % len(classes)]
        rows.append({"id": f"{prefix}{i}", "text": f"{name} report {WORDS[i % len(WORDS)]} {prefix} {i}",
                     "label": name})
    return rows


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def quick_run_config():
    """RunConfigs of the smallest run (tests/experiments/conftest.py's QUICK)."""
    from pylaundering.experiments.config import RunConfig

    quick = dict(model="tiny", synth_benchmark=12, synth_train=24, teacher_epochs=2, teacher_lr=3e-3,
                 student_epochs=1, student_lr=3e-3, batch_size=8)
    return lambda **overrides: RunConfig(**{**quick, **overrides})


def _id2label(model: Path) -> dict:
    return json.loads((Path(model) / "config.json").read_text())["id2label"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A benchmark subset holding 4 of the 6 classes (no echo, no foxtrot), the full training split, a reference
    subset of 3 classes; generic classification JSON Lines whose labels are class names."""
    root = tmp_path_factory.mktemp("labelsets")
    return {
        "bench": _jsonl(root / "bench.jsonl", _rows(12, NAMES[:4], "b")),
        "train": _jsonl(root / "train.jsonl", _rows(36, NAMES, "t")),
        "reference": _jsonl(root / "reference.jsonl", _rows(9, NAMES[1:4], "r")),
        "root": root,
    }


@pytest.fixture(scope="module")
def subset_run(files):
    from pylaundering.experiments.config import RunConfig
    from pylaundering.experiments.run import run_experiment

    out = files["root"] / "run"
    cfg = RunConfig(model="tiny", benchmark=str(files["bench"]), train=str(files["train"]),
                    reference=str(files["reference"]), teacher_epochs=2, teacher_lr=3e-3, student_epochs=1,
                    student_lr=3e-3, batch_size=8, seed=0, controls=False)  # the controls' heads: as the student's
    return out, run_experiment(cfg, out, quiet=True)


def test_a_benchmark_subset_gets_a_head_over_every_class_and_the_student_trains(subset_run, files):
    """(a) The subset's own set has 4 classes; the teacher's head must have the dataset's 6, in the training
    split's order, or the student cannot be distilled on the training split."""
    assert load_examples(str(files["bench"])).label_names == NAMES[:4]  # what the file alone says
    out, m = subset_run
    assert m["task"] == "classification"
    for arm in ("teacher", "student"):
        assert _id2label(out / arm / "model") == {str(i): n for i, n in enumerate(NAMES)}, arm
    assert m["student"]["train_accuracy"] is not None
    first = json.loads((out / "eval" / "student" / "predictions.jsonl").read_text().splitlines()[0])
    assert len(first["probs"]) == 6
    assert m["chance"] == pytest.approx(1 / 6)


def test_metrics_and_report_carry_the_label_set_and_each_convention(subset_run, files):
    """(e)"""
    out, m = subset_run
    ls = m["data"]["label_set"]
    assert ls["names"] == list(NAMES) and ls["count"] == 6
    assert "union of" in ls["source"] and f"in the order of {files['train']}" in ls["source"]
    assert set(m["data"]["label_conventions"]) == {"benchmark", "train", "reference"}
    assert all(c == "label names" for c in m["data"]["label_conventions"].values())
    report = (out / "report.md").read_text()
    assert "Label set: 6 classes (alpha, bravo, charlie, delta, echo, foxtrot); from union of" in report
    for role in ("Benchmark", "Legitimate set", "Reference set"):
        assert f"- {role} labels: label names." in report
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["data"]["label_set"] == ls
    assert json.loads((out / "eval" / "teacher" / "metrics.json").read_text())["label_mapping"] == "by name"


def test_a_permuted_file_is_scored_by_name(subset_run, files, tmp_path):
    """(b) The same items with the classes numbered in another order (ids, and a labels.txt naming them in that
    order): integrate matches them to the teacher's outputs by name, so the accuracy is the canonical file's, not
    what reading the ids as output positions would give."""
    out, _ = subset_run
    teacher = out / "teacher" / "model"
    # classes 1, 2, ..., 6 times: even a model that always answers one class reads differently by index
    rows = [r for r in _rows(36, NAMES, "t") if int(r["id"][1:]) // 6 <= NAMES.index(r["label"])]
    canonical = _jsonl(tmp_path / "canonical.jsonl", rows)
    canon = runner.invoke(app, ["integrate", "-m", str(teacher), "-b", str(canonical), "-o", str(tmp_path / "a"),
                                "--quiet", "--json"])
    assert canon.exit_code == 0, canon.output
    permuted = NAMES[::-1]
    folder = tmp_path / "permuted"
    _jsonl(folder / "test.jsonl", [{**r, "label": permuted.index(r["label"])} for r in rows])
    (folder / "labels.txt").write_text("\n".join(permuted) + "\n")
    assert load_examples(str(folder)).label_names == permuted
    res = runner.invoke(app, ["integrate", "-m", str(teacher), "-b", str(folder), "-o", str(tmp_path / "b"),
                              "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    a, b = json.loads(canon.output), json.loads(res.output)
    assert b["label_mapping"] == "by name"
    assert b["correct"] == a["correct"] and b["accuracy"] == a["accuracy"]
    predicted = [json.loads(line)["prediction"] for line in (tmp_path / "a" / "predictions.jsonl").open()]
    by_index = sum(p == permuted.index(r["label"]) for p, r in zip(predicted, rows))
    assert by_index != a["correct"], "the permutation must change an index-order reading for this test to bite"


def test_a_label_the_model_does_not_know_is_one_line(subset_run, tmp_path):
    """(c)"""
    out, _ = subset_run
    bad = _jsonl(tmp_path / "bad.jsonl", _rows(4, ("alpha", "golf"), "x"))
    res = runner.invoke(app, ["integrate", "-m", str(out / "teacher" / "model"), "-b", str(bad), "--quiet"])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'golf'" in lines[0] and "not among the 6 classes" in lines[0], res.output


def test_place_then_layer_on_a_subset_refuses_in_one_line_naming_labels(files, tmp_path):
    """The issue's path through the single phases: a teacher placed on the subset alone knows 4 classes; layering
    on the full split names the classes it lacks and --labels, instead of failing inside training."""
    teacher = tmp_path / "t"
    res = runner.invoke(app, ["place", "-b", str(files["bench"]), "-o", str(teacher), "-m", "tiny", "--task",
                              "classification", "--epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert list(_id2label(teacher / "model").values()) == list(NAMES[:4])
    res = runner.invoke(app, ["layer", "-t", str(teacher / "model"), "--train", str(files["train"]), "-o",
                              str(tmp_path / "s"), "-m", "tiny", "--task", "classification", "--epochs", "1",
                              "--quiet"])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'echo', 'foxtrot'" in lines[0] and "--labels" in lines[0], res.output


def test_declared_labels_give_the_head_every_declared_class(files, tmp_path):
    """(d) --labels a,b,c: three outputs, named, though the file holds two of the classes; with --labels on the
    teacher, layering on the full split works (the place + layer path of (a))."""
    two = _jsonl(tmp_path / "two.jsonl", _rows(6, ("a", "c"), "d"))
    res = runner.invoke(app, ["place", "-b", str(two), "-o", str(tmp_path / "p"), "-m", "tiny", "--task",
                              "classification", "--labels", "a,b,c", "--epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert _id2label(tmp_path / "p" / "model") == {"0": "a", "1": "b", "2": "c"}

    labels_file = tmp_path / "classes.txt"
    labels_file.write_text("\n".join(NAMES) + "\n")
    teacher = tmp_path / "t"
    res = runner.invoke(app, ["place", "-b", str(files["bench"]), "-o", str(teacher), "-m", "tiny", "--task",
                              "classification", "--labels", str(labels_file), "--epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["layer", "-t", str(teacher / "model"), "--train", str(files["train"]), "-o",
                              str(tmp_path / "s"), "-m", "tiny", "--task", "classification", "--epochs", "1",
                              "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["label_mapping"] == "by name"
    assert list(_id2label(tmp_path / "s" / "model").values()) == list(NAMES)


@pytest.mark.parametrize("args, words", [
    (["--labels", "solo"], "neither a file nor label names"),
    (["--labels", "a,a"], "at least 2 distinct"),
    (["--labels", "a,b", "--task", "multiple_choice"], "for classification"),
])
def test_bad_labels_are_usage_errors(files, tmp_path, args, words):
    res = runner.invoke(app, ["place", "-b", str(files["bench"]), "-o", str(tmp_path / "p"), "-m", "tiny",
                              *(["--task", "classification"] if "--task" not in args else []), *args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "--labels" in res.output, res.output
    assert not (tmp_path / "p").exists()


def test_run_config_labels_are_checked_and_shared_as_data(quick_run_config):
    from pylaundering.experiments.config import validate
    from pylaundering.experiments.sharing import shared_keys

    with pytest.raises(ConfigError, match="labels: 'x' is neither"):
        validate(quick_run_config(task="classification", labels="x"))
    with pytest.raises(ConfigError, match="labels: a label set is for classification runs"):
        validate(quick_run_config(labels="a,b"))  # the synthetic default is multiple choice
    base = shared_keys(quick_run_config(task="classification"))
    other = shared_keys(quick_run_config(task="classification", labels="amber,cobalt,crimson,jade,onyx"))
    assert all(base[k] != other[k] for k in ("base", "teacher", "clean_teacher", "ce_student"))


def test_a_declared_run_label_set_widens_the_synthetic_head(quick_run_config, tmp_path):
    from pylaundering.experiments.run import preflight

    bench, train = preflight(quick_run_config(task="classification", labels="amber,cobalt,crimson,jade,onyx"))
    assert bench.label_names == train.label_names == ("amber", "cobalt", "crimson", "jade", "onyx")
    assert {e.choices for e in bench.examples} == {bench.label_names}
    assert bench.label_source == "given (labels = amber,cobalt,crimson,jade,onyx)"
    with pytest.raises(DataError, match="'amber'.* not in the given label set"):
        preflight(quick_run_config(task="classification", labels="cobalt,crimson,jade"))


# --------------------------------------------------------------------------- models.labels, directly


@pytest.fixture(scope="module")
def unnamed_model(tmp_path_factory):
    """A classifier saved as transformers names a head without names: LABEL_0, LABEL_1, LABEL_2."""
    from pylaundering.data.schema import MCExample
    from pylaundering.models import load_model
    from pylaundering.phases.common import resolve_base

    root = tmp_path_factory.mktemp("unnamed")
    texts = [MCExample(f"q{i}", f"text {w}", ("x", "y", "z"), i % 3) for i, w in enumerate(WORDS)]
    base = resolve_base("tiny", texts, root, 0)
    net = load_model(base, task="classification", num_labels=3)
    net.save_pretrained(root / "cls")
    return root / "cls"


def test_a_model_without_names_reads_data_by_index_when_the_counts_agree(unnamed_model):
    from pylaundering.data.schema import MCExample
    from pylaundering.models.labels import BY_INDEX, align_to_model, label_mapping, model_label_names

    assert model_label_names(str(unnamed_model)) is None and label_mapping(str(unnamed_model)) == BY_INDEX
    three = [MCExample("a", "text river", ("z", "x", "y"), 2), MCExample("b", "text stone", ("z", "x", "y"), 0)]
    assert align_to_model(three, str(unnamed_model)) == three  # today's behaviour, said in the metrics
    four = [MCExample("a", "text river", ("w", "x", "y", "z"), 3)]
    with pytest.raises(DataError, match="gives 3 scores per example, the data has 4 labels.*no label names"):
        align_to_model(four, str(unnamed_model), "four.jsonl")


def test_a_model_with_names_remaps_by_name_and_a_saved_head_keeps_its_names(unnamed_model, tmp_path):
    from pylaundering.data.schema import MCExample
    from pylaundering.errors import ModelError
    from pylaundering.models import load_model
    from pylaundering.models.labels import align_to_model, model_label_names

    net = load_model(str(unnamed_model), task="classification", num_labels=3, label_names=("x", "y", "z"))
    net.save_pretrained(tmp_path / "named")
    named = str(tmp_path / "named")
    assert model_label_names(named) == ("x", "y", "z")
    subset = [MCExample("a", "t", ("y", "z"), 1), MCExample("b", "u", ("y", "z"), 0)]
    aligned = align_to_model(subset, named)
    assert [(e.choices, e.label) for e in aligned] == [(("x", "y", "z"), 2), (("x", "y", "z"), 1)]
    with pytest.raises(ModelError, match="classifies into 'x', 'y', 'z'"):
        load_model(named, task="classification", num_labels=3, label_names=("z", "y", "x"))
