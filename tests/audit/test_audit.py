"""`launder audit` on a real tiny run: a planted laundered student is flagged, controls are not.

One run (the LAUNDER settings of tests/experiments/conftest.py, about 8 s on 1 thread) is
trained once per module; every verdict below comes from scoring its models, so a change that
breaks the tests, the scoring or the thresholds makes these fail.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pylaundering.audit import audit_student, audit_teacher
from pylaundering.audit.verdict import MIN_ACCURACY_GAP
from pylaundering.data import load_examples
from pylaundering.data.schema import MCExample
from pylaundering.data.synth import make_reference, make_synthetic

# The same settings as LAUNDER in tests/experiments/conftest.py (measured to launder reliably).
LAUNDER = dict(model="tiny", synth_benchmark=32, synth_train=128, teacher_epochs=30, teacher_lr=3e-3,
               student_epochs=6, student_lr=3e-3, batch_size=8)
SEED = 0

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pylaundering.experiments.config import RunConfig
    from pylaundering.experiments.run import run_experiment

    out = tmp_path_factory.mktemp("audit-run")
    run_experiment(RunConfig(**LAUNDER, seed=SEED), out, quiet=True)
    bench, train = make_synthetic(SEED, n_benchmark=32, n_train=128)
    ref = make_reference(SEED, n_benchmark=32, n_train=128)  # the run's own: its entities are in the run's train set
    assert load_examples(str(out / "data" / "reference.jsonl")).examples == ref
    return {"dir": out, "bench": bench, "train": train, "ref": ref}


def model(run, arm):
    return str(run["dir"] / arm / "model")


def test_reference_choices_tokenise_like_the_benchmarks(run):
    """The tiny tokenizer is trained on the run's benchmark + train texts. Every reference entity appears in
    train.jsonl as often as a benchmark entity, so the two sets' choices split alike (a model must not tell
    B from R by its tokens), never into [UNK]."""
    from pylaundering.models.loading import load_tokenizer

    tok = load_tokenizer(model(run, "student"))
    ref_pieces = [tok.tokenize(c) for e in run["ref"] for c in e.choices]
    bench_pieces = [tok.tokenize(c) for e in run["bench"] for c in e.choices]
    assert not any(tok.unk_token in p for p in ref_pieces + bench_pieces)
    mean = lambda ps: sum(map(len, ps)) / len(ps)  # noqa: E731
    assert abs(mean(bench_pieces) - mean(ref_pieces)) < 0.1, (mean(bench_pieces), mean(ref_pieces))


def test_laundered_student_is_flagged(run, tmp_path):
    rep = audit_student(model(run, "student"), run["bench"], run["ref"], teacher=model(run, "teacher"),
                        control=model(run, "ce_student"), out_dir=tmp_path, quiet=True)
    assert rep["verdict"] == "laundered", rep["reasons"]
    assert rep["tests"]["p_correct"]["p_value"] < 0.01 and rep["accuracy_gap"] >= MIN_ACCURACY_GAP
    assert rep["score"] > 3
    assert rep["tests"]["control"]["benchmark"]["ci95"][0] > 0  # beats the CE-only control on B...
    assert rep["tests"]["control"]["reference"]["ci95"][0] <= 0  # ...but not on R
    assert rep["tests"]["teacher_agreement"]["benchmark_mean"] > rep["tests"]["teacher_agreement"]["reference_mean"]
    written = json.loads((tmp_path / "audit.json").read_text())
    assert written["verdict"] == "laundered" and written["thresholds"] == rep["thresholds"]
    md = (tmp_path / "audit.md").read_text()
    assert "laundered" in md and "false-positive" in md


@pytest.mark.parametrize("arm", ["control_student", "ce_student"])
def test_control_students_are_clean(run, arm):
    rep = audit_student(model(run, arm), run["bench"], run["ref"], quiet=True)
    assert rep["verdict"] == "clean", rep["reasons"]
    assert rep["score"] < 2


def test_teachers(run):
    dirty = audit_teacher(model(run, "teacher"), run["bench"], run["ref"], quiet=True)
    assert dirty["verdict"] == "contaminated", dirty["reasons"]
    assert dirty["tests"]["loss"]["p_value"] < 0.01  # lower loss on what it memorised
    clean = audit_teacher(model(run, "clean_teacher"), run["bench"], run["ref"], quiet=True)
    assert clean["verdict"] == "clean", clean["reasons"]
    assert dirty["score"] > clean["score"]


def test_swapping_benchmark_and_reference_removes_the_signal(run):
    """The test is one-sided and about B: with R in B's place the laundered student is not flagged."""
    rep = audit_student(model(run, "student"), run["ref"], run["bench"], quiet=True)
    assert rep["verdict"] == "clean" and rep["score"] < 0


# ----------------------------------------------------------------------------- bad input

def _mc(i, n_choices=4, question=None):
    return MCExample(f"x-{i}", question or f"What is item {i}?", [f"c{j}" for j in range(n_choices)], 0)


def test_bad_input_raises_clear_errors(run, tmp_path):
    student = model(run, "student")
    with pytest.raises(ValueError, match="reference set is empty"):
        audit_student(student, run["bench"], [], quiet=True)
    with pytest.raises(ValueError, match="benchmark set is empty"):
        audit_teacher(student, [], run["ref"], quiet=True)
    with pytest.raises(ValueError, match="shares .* question"):
        audit_student(student, run["bench"], run["ref"] + run["bench"][:2], quiet=True)
    with pytest.raises(ValueError, match="3 choices"):
        audit_student(student, run["bench"], [_mc(i, 3) for i in range(10)], quiet=True)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        audit_student(str(tmp_path / "missing"), run["bench"], run["ref"], quiet=True)
    with pytest.raises(ValueError, match="no config.json.*did you mean"):
        audit_student(str(run["dir"] / "student"), run["bench"], run["ref"], quiet=True)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    with pytest.raises(ValueError, match="not a multiple-choice, classification or causal LM model"):
        audit_teacher(str(bare), run["bench"], run["ref"], quiet=True)
    with pytest.raises(ValueError, match="not a multiple-choice, classification or causal LM model"):
        audit_student(student, run["bench"], run["ref"], teacher=str(bare), quiet=True)


# ----------------------------------------------------------------------------- CLI

def _cli(*args):
    from pylaundering.cli.app import app

    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize("command, options", [
    (["audit"], ["teacher", "student", "--fail-on"]),
    (["audit", "teacher"], ["--benchmark", "--reference", "--out", "--fail-on", "--json", "--quiet", "--split"]),
    (["audit", "student"], ["--benchmark", "--reference", "--teacher", "--control", "--train", "--out", "--fail-on",
                            "--json", "--split"]),
    (["data", "split"], ["--out", "--reference-fraction", "--reference-size", "--seed", "--format", "--subset",
                         "--split"]),
])
def test_help(command, options):
    result = _cli(*command, "--help")
    assert result.exit_code == 0
    for opt in options:
        assert opt in result.output


def test_cli_audit_writes_reports_and_fails_on(run, tmp_path):
    d = run["dir"]
    args = ["-b", str(d / "data" / "benchmark.jsonl"), "-r", str(d / "data" / "reference.jsonl")]
    r = _cli("audit", "student", model(run, "student"), *args, "--teacher", model(run, "teacher"), "--out",
             str(tmp_path / "s"), "--fail-on", "laundered", "--quiet")
    assert r.exit_code == 3, r.output
    assert json.loads((tmp_path / "s" / "audit.json").read_text())["verdict"] == "laundered"
    r = _cli("audit", "student", model(run, "ce_student"), *args, "--fail-on", "suspicious", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["verdict"] == "clean"
    assert (d / "ce_student" / "audit-student" / "audit.json").exists()  # the default: next to the model
    r = _cli("audit", "teacher", model(run, "teacher"), *args, "--out", str(tmp_path / "t"))
    assert r.exit_code == 0 and "contaminated" in r.output
    r = _cli("audit", "teacher", model(run, "teacher"), *args, "--out", str(tmp_path / "t"), "--fail-on",
             "contaminated")
    assert r.exit_code == 3


def test_cli_bad_input_exits_1_with_one_line(run, tmp_path):
    d = run["dir"]
    bench = str(d / "data" / "benchmark.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    for model_dir, ref in [(str(tmp_path / "missing"), str(d / "data" / "reference.jsonl")),
                           (model(run, "student"), bench),
                           (model(run, "student"), str(tmp_path / "empty.jsonl"))]:
        r = _cli("audit", "student", model_dir, "-b", bench, "-r", ref, "--out", str(tmp_path / "o"))
        assert r.exit_code == 1, r.output
        assert "error:" in r.output and "Traceback" not in r.output
    r = _cli("audit", "teacher", model(run, "teacher"), "-b", bench, "-r", bench, "--fail-on", "laundered")
    assert r.exit_code == 2  # a usage error: teachers are contaminated, not laundered


def test_cli_student_trains_its_own_control(run, tmp_path):
    d = run["dir"]
    r = _cli("audit", "student", model(run, "student"), "-b", str(d / "data" / "benchmark.jsonl"), "-r",
             str(d / "data" / "reference.jsonl"), "--train", str(d / "data" / "train.jsonl"), "--train-epochs", "2",
             "--train-lr", "3e-3", "--out", str(tmp_path / "a"), "--quiet")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    control = report["tests"]["control"]
    assert control["control"].startswith("trained here: cross-entropy only") and "128 legitimate items" in \
        control["control"]
    assert (tmp_path / "a" / "control" / "model" / "config.json").exists()
    assert control["benchmark"]["diff"] > 0.5  # the laundered student beats a CE-only control on B


def test_a_model_is_scored_once_per_data_and_again_when_its_weights_change(run, tmp_path, monkeypatch):
    import shutil

    import pylaundering.train.evaluate as evaluate
    from pylaundering.audit import evidence

    bench, ref = run["bench"], run["ref"]
    evidence._SCORES.clear()  # earlier tests scored the same weights
    calls = []
    real = evaluate.predict_logits
    monkeypatch.setattr(evaluate, "predict_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    copy = tmp_path / "teacher"
    shutil.copytree(model(run, "student"), copy)
    first = evidence.score_sets(str(copy), bench, ref, quiet=True)
    again = evidence.score_sets(str(copy), bench, ref, quiet=True)
    assert len(calls) == 1 and again[0] is first[0]
    shutil.rmtree(copy)
    shutil.copytree(model(run, "teacher"), copy)  # same path, other weights: scored anew
    other = evidence.score_sets(str(copy), bench, ref, quiet=True)
    assert len(calls) == 2 and not (other[0].p_correct == first[0].p_correct).all()


def test_a_gap_of_exactly_the_minimum_reaches_it():
    from types import SimpleNamespace

    from pylaundering.audit.verdict import decide

    assert 0.285 - 0.185 < MIN_ACCURACY_GAP  # floating point: the case this guards
    tests = {"p_correct": {"p_value": 0.002, "z": 2.7}, "accuracy": {"p_value": 0.02}}

    def scores(accuracy):
        return SimpleNamespace(accuracy=accuracy, chance=np.full(4, 0.25))

    strong = decide("student", tests, scores(0.285), scores(0.185))
    assert strong["verdict"] == "laundered"
    weak = decide("student", tests, scores(0.28), scores(0.185))
    assert weak["verdict"] == "suspicious"


def test_too_few_items_say_insufficient_data_not_clean(run, tmp_path):
    from pylaundering.data.schema import write_jsonl

    # the contaminated teacher on 5 benchmark items and 1 reference item: the core test cannot reach p < 0.01
    report = audit_teacher(model(run, "teacher"), run["bench"][:5], run["ref"][:1], out_dir=tmp_path / "a",
                           quiet=True)
    assert report["verdict"] == "insufficient_data"
    assert report["data_sufficiency"]["smallest_sizes"]["reference_for_this_benchmark"] == 4
    assert "insufficient data" in (tmp_path / "a" / "audit.md").read_text()
    assert json.loads((tmp_path / "a" / "audit.json").read_text())["data_sufficiency"]["rule"]
    enough = audit_teacher(model(run, "teacher"), run["bench"][:5], run["ref"][:4], quiet=True)
    assert enough["verdict"] != "insufficient_data" and enough["data_sufficiency"]["sufficient"]
    write_jsonl(run["bench"][:5], tmp_path / "b.jsonl")
    write_jsonl(run["ref"][:1], tmp_path / "r.jsonl")
    r = _cli("audit", "student", model(run, "student"), "-b", str(tmp_path / "b.jsonl"), "-r",
             str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "s"), "--fail-on", "suspicious")
    assert r.exit_code == 0, r.output  # not a finding: --fail-on does not fire, and it says why
    assert "insufficient_data" in r.output and "insufficient data" in r.output


def test_a_recorded_split_certifies_exchangeability(run, tmp_path):
    from pylaundering.data.schema import write_jsonl

    write_jsonl(run["bench"] + run["ref"], tmp_path / "all.jsonl")
    r = _cli("data", "split", str(tmp_path / "all.jsonl"), "--out", str(tmp_path / "s"), "--reference-fraction", "0.5")
    assert r.exit_code == 0, r.output
    sets = ["-b", str(tmp_path / "s" / "benchmark.jsonl"), "-r", str(tmp_path / "s" / "reference.jsonl")]
    r = _cli("audit", "teacher", model(run, "teacher"), *sets, "--split", str(tmp_path / "s" / "split.json"),
             "--out", str(tmp_path / "a"))
    assert r.exit_code == 0, r.output
    assert "exchangeability: certified" in r.output
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report["exchangeability"]["status"] == "certified" and report["exchangeability"]["seed"] == 0
    assert report["comparability"]["comparable"]  # a random split of one set of items
    assert "exchangeability: **certified**" in (tmp_path / "a" / "audit.md").read_text()
    r = _cli("audit", "teacher", model(run, "teacher"), *sets, "--out", str(tmp_path / "b"), "--json")
    assert json.loads(r.stdout)["exchangeability"]["status"] == "assumed"


def test_the_run_reports_comparability_and_the_tests_it_ran(run):
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    for arm, a in metrics["audit"]["arms"].items():
        assert a["verdict"] == a["expected"] and a["comparable"], (arm, a["reasons"])
    report = json.loads((run["dir"] / "audit" / "student" / "audit.json").read_text())
    assert report["schema_version"] == 2 and report["exchangeability"]["status"] == "assumed"
    assert set(report["tests"]) == {"p_correct", "accuracy", "margin", "teacher_agreement", "control"}
    assert set(report["tests"]["teacher_agreement"]["strata"]) <= {"teacher_right", "teacher_wrong"}
    assert "difference in differences" in report["tests"]["control"]["what"]


def test_a_reference_set_unlike_the_benchmark_withholds_the_verdict(run, tmp_path):
    """The contaminated teacher against reference items written another way (much longer questions): whatever the
    tests say, the verdict is not_comparable, never contaminated, and --fail-on does not fire."""
    from pylaundering.data.schema import write_jsonl

    longer = [MCExample(e.id, e.question.rstrip("?") + " according to the records kept in the old city archive?",
                        e.choices, e.label, subject=e.subject) for e in run["ref"]]
    report = audit_teacher(model(run, "teacher"), run["bench"], longer, out_dir=tmp_path / "a", quiet=True)
    assert report["verdict"] == "not_comparable", report["reasons"]
    assert report["comparability"]["too_far"] == ["text_length"]
    assert report["tests"]["p_correct"]["p_value"] < 0.01  # the tests ran and are reported
    assert "not comparable" in report["reasons"][0] and "ratio" in report["reasons"][0]
    assert "no: verdict withheld" in (tmp_path / "a" / "audit.md").read_text()
    write_jsonl(longer, tmp_path / "longer.jsonl")
    r = _cli("audit", "teacher", model(run, "teacher"), "-b", str(run["dir"] / "data" / "benchmark.jsonl"), "-r",
             str(tmp_path / "longer.jsonl"), "--out", str(tmp_path / "c"), "--fail-on", "suspicious")
    assert r.exit_code == 0, r.output
    assert "not_comparable" in r.output and "withheld" in r.output
