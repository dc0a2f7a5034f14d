"""`launder audit public`: the public-benchmark audit, calibrated on clean models instead of a secret holdout.

The statistics are tested on simulated models (`audit.calibrate`), whose truth is known: clean models of
varied skill on a benchmark B harder than the reference R (a convex, monotone relation: flat at the floor,
steeper above), clean suspects and suspects with 15 points of accuracy added on B. The CLI is tested on
fake model folders for the refusals (no model is scored) and on one tiny run for the files it writes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pylaundering.audit.calibrate import knowledge, make_items, model_scores
from pylaundering.audit.evidence import ItemScores
from pylaundering.audit.public import (
    MIN_CLEAN,
    OUTSIDE,
    _numbered_spots,
    assess_public,
    calibration_figure,
    clean_models_from,
    fails,
    fit_line,
    format_markdown,
    resampled_means,
)
from pylaundering.audit.verdict import INSUFFICIENT, MIN_ACCURACY_GAP, P_STRONG, P_WEAK

runner = CliRunner()

SKILLS = np.linspace(0.1, 0.9, 8)  # the clean models: floor to strong
B_HARDER = {"benchmark": (0.3, 1.0), "reference": (0.0, 0.7)}  # item difficulty ranges (`calibrate.knowledge`)


def _pair(rng, ib, ir, skill, inflation=0.0):
    """(B, R) scores of a simulated model of ``skill``; ``inflation``: accuracy points added on B, by making the
    model know enough extra B items (each known item adds 1 - 1/4 of expected accuracy)."""
    kb = knowledge(rng, ib, skill, correlation=1.0)
    kr = knowledge(rng, ir, skill, correlation=1.0)
    if inflation:
        unknown = np.flatnonzero(~kb)
        extra = rng.choice(unknown, size=min(unknown.size, round(inflation * ib.n / 0.75)), replace=False)
        kb = kb.copy()
        kb[extra] = True
    return model_scores(rng, ib, kb), model_scores(rng, ir, kr)


def _world(rng, n):
    return (make_items(rng, n, difficulty=B_HARDER["benchmark"]),
            make_items(rng, n, difficulty=B_HARDER["reference"]))


def _clean(rng, ib, ir, skills=SKILLS):
    return {f"clean-{i}": _pair(rng, ib, ir, s) for i, s in enumerate(skills)}


def test_the_simulated_relation_is_nonlinear():
    """The scenario the tests below rely on: B harder than R, so B rises slowly while R leaves the floor, then
    faster (a convex relation; slopes measured on 4,000 items)."""
    rng = np.random.default_rng(0)
    ib, ir = _world(rng, 4000)
    pts = [_pair(rng, ib, ir, s) for s in (0.0, 0.2, 0.8, 1.0)]
    perf = [(float((r.correct - r.chance).mean()), float((b.correct - b.chance).mean())) for b, r in pts]
    low = (perf[1][1] - perf[0][1]) / (perf[1][0] - perf[0][0])
    high = (perf[3][1] - perf[2][1]) / (perf[3][0] - perf[2][0])
    assert low < 0.8 and high > 1.2, (low, high)


def test_a_clean_suspect_of_mid_skill_is_not_flagged():
    rng = np.random.default_rng(1)
    ib, ir = _world(rng, 1000)
    rep = assess_public("student", _clean(rng, ib, ir), {"suspect": _pair(rng, ib, ir, 0.5)}, replicates=2000)
    s = rep["suspects"][0]
    assert s["verdict"] == "clean", s["reasons"]
    assert s["p_value"] > P_WEAK and s["ci95"][0] < 0 < s["ci95"][1]
    assert rep["fit"]["slope"] > 0 and rep["fit"]["r2"] > 0.9


def test_false_positive_rate_over_clean_suspects():
    """200 independent audits (fresh items, clean models and suspect each), suspects of any skill within the clean
    models' range: p < 0.05 for at most 18 (9%). Were the rate exactly 5%, 19 or more would happen with probability
    0.6% (binomial, n = 200). Measured: 5 of 200; the line is conservative mid-range for a convex relation, and
    resampling the clean models turns its misfit into interval width."""
    rng = np.random.default_rng(2)
    fired = strong = 0
    for trial in range(200):
        ib, ir = _world(rng, 400)
        rep = assess_public("student", _clean(rng, ib, ir), {"s": _pair(rng, ib, ir, rng.uniform(0.15, 0.85))},
                            replicates=500, seed=trial)
        s = rep["suspects"][0]
        fired += s["p_value"] < P_WEAK
        strong += s["verdict"] == "laundered"
    assert fired <= 18, fired
    assert strong <= 4, strong  # P(laundered) <= P(p < 0.01): at most 2% + slack


def test_an_inflated_suspect_is_flagged():
    """15 points of accuracy added on B: laundered (p < 0.01 and inflation >= 0.10) in at least 80% of 60 audits,
    suspicious or above in all but 3, p never 0 (measured: 55 and 60 of 60). Mid-range the line's bias for this
    convex relation is about -0.03, which is why it is not all 60."""
    rng = np.random.default_rng(3)
    verdicts, deltas = [], []
    for trial in range(60):
        ib, ir = _world(rng, 1000)
        rep = assess_public("student", _clean(rng, ib, ir), {"s": _pair(rng, ib, ir, rng.uniform(0.15, 0.85), 0.15)},
                            replicates=1000, seed=trial)
        s = rep["suspects"][0]
        assert s["p_value"] > 0 and s["p_value"] >= 1 / (rep["replicates"]["usable"] + 1)
        verdicts.append(s["verdict"])
        deltas.append(s["delta"])
    assert verdicts.count("laundered") >= 48, verdicts
    assert sum(v in ("laundered", "suspicious") for v in verdicts) >= 57, verdicts
    assert 0.10 < np.mean(deltas) < 0.17


def test_teacher_kind_says_contaminated():
    rng = np.random.default_rng(4)
    ib, ir = _world(rng, 1000)
    rep = assess_public("teacher", _clean(rng, ib, ir), {"t": _pair(rng, ib, ir, 0.6, 0.4)}, replicates=1000)
    s = rep["suspects"][0]
    assert s["verdict"] == "contaminated" and s["delta"] >= MIN_ACCURACY_GAP and s["p_value"] < P_STRONG
    assert s["p_value"] == 1 / (rep["replicates"]["usable"] + 1)  # the smallest there is, not 0
    assert "contaminated" in rep["thresholds"] and "laundered" not in rep["thresholds"]
    assert fails("teacher", "contaminated", "suspicious") and not fails("teacher", OUTSIDE, "suspicious")
    assert not fails("student", INSUFFICIENT, "suspicious")


def test_fewer_than_three_clean_models_is_insufficient_data():
    rng = np.random.default_rng(5)
    ib, ir = _world(rng, 300)
    clean = _clean(rng, ib, ir, skills=[0.2, 0.8])
    rep = assess_public("student", clean, {"s": _pair(rng, ib, ir, 0.5, 0.5)})
    s = rep["suspects"][0]
    assert MIN_CLEAN == 3 and s["verdict"] == INSUFFICIENT and rep["fit"] is None
    assert s["p_value"] is None and "2 clean models" in s["reasons"][0] and "at least 3" in s["reasons"][0]


def test_clean_models_without_spread_are_insufficient_data():
    rng = np.random.default_rng(6)
    ib, ir = _world(rng, 300)
    one = _pair(rng, ib, ir, 0.5)
    rep = assess_public("student", {"a": one, "b": one, "c": one}, {"s": _pair(rng, ib, ir, 0.5)})
    assert rep["suspects"][0]["verdict"] == INSUFFICIENT
    assert "same reference performance" in rep["suspects"][0]["reasons"][0]


@pytest.mark.parametrize("skill, side", [(0.98, "above"), (0.0, "below")])
def test_a_suspect_outside_the_calibration_range_is_withheld(skill, side):
    rng = np.random.default_rng(7)
    ib, ir = _world(rng, 1000)
    clean = _clean(rng, ib, ir, skills=[0.35, 0.45, 0.55, 0.65])
    rep = assess_public("student", clean, {"s": _pair(rng, ib, ir, skill, 0.3)}, replicates=500)
    s = rep["suspects"][0]
    assert s["verdict"] == OUTSIDE, s["reasons"]
    assert s["outside_range_by"] > s["margin"] and f" {side} the clean models' range" in s["reasons"][0]
    assert s["delta"] is not None  # computed and reported, not used


# ----------------------------------------------------------------------------- against a hand computation

def _scores(correct, choices):
    """ItemScores whose correctness is ``correct`` (label 0; a wrong item predicts choice 1)."""
    n = len(correct)
    logits = np.full((n, choices), -1.0)
    logits[np.arange(n), np.where(correct, 0, 1)] = 1.0
    return ItemScores.from_logits(logits, np.zeros(n, dtype=int), np.full(n, choices))


def test_fit_and_delta_match_numpy_polyfit():
    """B: 10 items of 4 choices (chance 0.25), R: 8 items of 5 (chance 0.2): performance is accuracy minus the
    set's chance, the fit numpy's least-squares line, delta the suspect's B minus the line at its R."""
    b_correct = {"a": 3, "b": 5, "c": 6, "d": 9}
    r_correct = {"a": 3, "b": 4, "c": 6, "d": 7}
    clean = {m: (_scores([i < b_correct[m] for i in range(10)], 4), _scores([i < r_correct[m] for i in range(8)], 5))
             for m in b_correct}
    suspect = (_scores([i < 9 for i in range(10)], 4), _scores([i < 5 for i in range(8)], 5))
    x = np.array([r_correct[m] / 8 - 0.2 for m in b_correct])
    y = np.array([b_correct[m] / 10 - 0.25 for m in b_correct])
    slope, intercept = np.polyfit(x, y, 1)
    rep = assess_public("student", clean, {"s": suspect}, replicates=200)
    fit, s = rep["fit"], rep["suspects"][0]
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    predicted = intercept + slope * (5 / 8 - 0.2)
    assert s["predicted_benchmark"] == pytest.approx(predicted)
    assert s["delta"] == pytest.approx(0.9 - 0.25 - predicted)
    assert s["benchmark"]["accuracy"] == pytest.approx(0.9) and s["reference"]["performance"] == pytest.approx(0.425)
    residuals = y - (intercept + slope * x)
    assert [c["residual"] for c in rep["clean_models"]] == pytest.approx(residuals.tolist())
    assert fit["r2"] == pytest.approx(1 - (residuals ** 2).sum() / ((y - y.mean()) ** 2).sum())


def test_a_negative_slope_becomes_the_mean():
    fit = fit_line([0.1, 0.2, 0.3], [0.5, 0.4, 0.3])
    assert fit["raw_slope"][0] == pytest.approx(-1.0) and fit["slope"][0] == 0
    assert fit["intercept"][0] == pytest.approx(0.4)
    assert not fit_line([0.2, 0.2, 0.2], [0.1, 0.2, 0.3])["usable"][0]


# ----------------------------------------------------------------------------- the bootstrap's pairing

def test_one_draw_of_items_serves_every_model():
    rng = np.random.default_rng(8)
    values = rng.random((3, 50))
    values[1] = values[0]
    idx = rng.integers(0, 50, size=(400, 50))
    means = resampled_means(values, idx)
    assert means.shape == (400, 3)
    assert np.array_equal(means[:, 0], means[:, 1])  # identical models, identical draws
    assert means[:, 2] == pytest.approx(values[2][idx].mean(axis=1))


def test_the_bootstrap_pairs_models_on_the_same_items():
    """Clean models m1, its copy and a stronger m3; the suspect is m1 again. In every replicate the drawn models
    take two R values, with one B value each, so the line passes through both, and through the suspect when its
    items are drawn as m1's are: delta* = 0 exactly. Resampled per model, delta* would scatter around 0."""
    rng = np.random.default_rng(9)
    ib, ir = _world(rng, 200)
    m1, m3 = _pair(rng, ib, ir, 0.2), _pair(rng, ib, ir, 0.95)
    rep = assess_public("student", {"m1": m1, "m1-copy": m1, "m3": m3}, {"s": m1}, replicates=2000)
    s = rep["suspects"][0]
    assert s["delta"] == pytest.approx(0, abs=1e-12)
    assert max(abs(v) for v in s["ci95"]) < 1e-9
    assert s["p_value"] == 1.0  # every usable replicate has delta* <= 0 (ties count)
    assert 0.5 * 2000 < rep["replicates"]["usable"] < 2000  # draws of one distinct model are skipped


# ----------------------------------------------------------------------------- audit.md, calibration.png

@pytest.fixture(scope="module")
def two_suspects():
    rng = np.random.default_rng(10)
    ib, ir = _world(rng, 600)
    return assess_public("student", _clean(rng, ib, ir), {"honest": _pair(rng, ib, ir, 0.5),
                                                           "inflated": _pair(rng, ib, ir, 0.6, 0.3)},
                         replicates=1000)


def test_one_bootstrap_serves_every_suspect(two_suspects):
    rep = two_suspects
    assert [s["verdict"] for s in rep["suspects"]] == ["clean", "laundered"]
    json.dumps(rep)  # JSON-ready
    for key in ("schema_version", "audit", "kind", "clean_models", "fit", "suspects", "replicates", "thresholds",
                "method", "assumes"):
        assert key in rep
    assert rep["audit"] == "public" and len(rep["fit"]["band"]["x"]) == len(rep["fit"]["band"]["low"])


def test_markdown_and_figure(two_suspects, tmp_path):
    rep = dict(two_suspects, files={"figure": str(tmp_path / "calibration.png")})
    md = format_markdown(rep)
    assert "`inflated`: **laundered**" in md and "`honest`: **clean**" in md
    assert "| model | R: acc - chance | B: acc - chance |" in md and "clean-7" in md
    assert "## What this audit assumes" in md and "really are clean" in md and "calibration.png" in md
    path = calibration_figure(rep, tmp_path / "calibration.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.png"]  # no temp file left


def test_suspects_that_a_reader_cannot_tell_apart_share_one_label():
    # Points 0 and 1 lie 1% of the plotted span apart, point 2 far off: two labels, "1, 2" and "3".
    spots = [(10.0, 40.0), (10.2, 40.3), (20.0, 10.0)]
    groups = _numbered_spots(spots, [0.0, 30.0] + [x for x, _ in spots], [0.0, 50.0] + [y for _, y in spots])
    assert [members for members, _ in groups] == [[0, 1], [2]]
    assert groups[0][1] == spots[0]
    # Close in x alone is not close: one label each.
    assert len(_numbered_spots([(10.0, 40.0), (10.1, 10.0)], [0.0, 30.0], [0.0, 50.0])) == 2
    assert _numbered_spots([(1.0, 1.0)], [1.0], [1.0]) == [([0], (1.0, 1.0))]  # one point: spans of 0 do not divide


# ----------------------------------------------------------------------------- clean models from a run or sweep

def _fake_model(folder, weights: bytes, arch="BertForMultipleChoice"):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": [arch], "model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _fake_run(run, prefix: bytes, arms=("teacher", "clean_teacher", "control_student", "ce_student")):
    metrics = {}
    for arm in arms:
        _fake_model(run / arm / "model", prefix + arm.encode())
        (run / arm / "metrics.json").write_text(json.dumps({"model_dir": str(run / arm / "model")}))
        metrics[arm] = {"model_dir": str(run / arm / "model")}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_clean_models_from_a_run(tmp_path):
    run = _fake_run(tmp_path / "run", b"r")
    (run / "control_student" / "metrics.json").unlink()  # not finished: left out
    assert clean_models_from(run) == [("run/clean_teacher", str(run / "clean_teacher" / "model")),
                                      ("run/ce_student", str(run / "ce_student" / "model"))]


def test_clean_models_from_a_sweep_counts_shared_arms_once(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "points").mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")
    _fake_run(sweep / "points" / "alpha=0.5", b"a")
    b = sweep / "points" / "alpha=1.0"
    _fake_run(b, b"b", arms=("teacher", "control_student"))
    for arm in ("clean_teacher", "ce_student"):  # shared with the first point, through links
        (b / arm).symlink_to(sweep / "points" / "alpha=0.5" / arm)
    names = [n for n, _ in clean_models_from(sweep)]
    assert names == ["alpha=0.5/clean_teacher", "alpha=0.5/control_student", "alpha=0.5/ce_student",
                     "alpha=1.0/control_student"]


def test_clean_models_from_refuses_other_folders(tmp_path):
    with pytest.raises(ValueError, match="neither a run folder"):
        clean_models_from(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        clean_models_from(tmp_path / "missing")


# ----------------------------------------------------------------------------- CLI: refusals (nothing scored)

def _cli(*args):
    from pylaundering.cli.app import app

    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def sets(tmp_path):
    from pylaundering.data.schema import write_jsonl
    from pylaundering.data.synth import make_reference, make_synthetic

    bench, _ = make_synthetic(0, n_benchmark=12, n_train=24)
    write_jsonl(bench, tmp_path / "b.jsonl")
    write_jsonl(make_reference(0, n_benchmark=12, n_train=24), tmp_path / "r.jsonl")
    return ["-b", str(tmp_path / "b.jsonl"), "-r", str(tmp_path / "r.jsonl")]


def test_help():
    r = _cli("audit", "public", "--help")
    assert r.exit_code == 0
    for opt in ("--benchmark", "--reference", "--clean", "--clean-from", "--kind", "--out", "--seed", "--fail-on",
                "--json", "--quiet", "--device", "another benchmark of the same kind", "at least 3"):
        assert opt in r.output, opt
    assert "public" in _cli("audit", "--help").output


def _one_error_line(r, code):
    assert r.exit_code == code, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(("error:", "usage error:")), r.output
    return lines[0]


@pytest.mark.parametrize("case", ["no clean", "two clean", "suspect among clean", "missing model", "missing file",
                                  "shared items", "mixed tasks", "bad kind", "bad fail-on"])
def test_cli_bad_input_is_one_line_and_writes_nothing(case, sets, tmp_path):
    models = {n: str(_fake_model(tmp_path / "models" / n, n.encode())) for n in ("s", "c1", "c2", "c3")}
    cls = str(_fake_model(tmp_path / "models" / "cls", b"cls", arch="BertForSequenceClassification"))
    out = tmp_path / "out"
    clean = ["--clean", models["c1"], "--clean", models["c2"], "--clean", models["c3"]]
    args = {"no clean": [models["s"], *sets],
            "two clean": [models["s"], *sets, *clean[:4], "--clean", models["c1"]],  # c1 twice: counted once
            "suspect among clean": [models["s"], *sets, *clean, "--clean", models["s"]],
            "missing model": [str(tmp_path / "nope"), *sets, *clean],
            "missing file": [models["s"], "-b", str(tmp_path / "nope.jsonl"), sets[2], sets[3], *clean],
            "shared items": [models["s"], sets[0], sets[1], "-r", sets[1], *clean],
            "mixed tasks": [cls, *sets, *clean],
            "bad kind": [models["s"], *sets, *clean, "--kind", "judge"],
            "bad fail-on": [models["s"], *sets, *clean, "--fail-on", "contaminated"]}[case]
    r = _cli("audit", "public", *args, "--out", str(out))
    line = _one_error_line(r, 2 if case in ("no clean", "bad kind", "bad fail-on") else 1)
    expected = {"no clean": "at least 3 clean models", "two clean": "2 distinct clean models",
                "suspect among clean": "same weights as the suspect", "missing model": "no such folder",
                "missing file": "nope.jsonl", "shared items": "shares 12 question", "mixed tasks": "same task",
                "bad kind": "--kind", "bad fail-on": "--fail-on"}[case]
    assert expected in line, line
    assert not out.exists()


def test_cli_several_suspects_need_out(sets, tmp_path):
    r = _cli("audit", "public", str(tmp_path / "a"), str(tmp_path / "b"), *sets, "--clean", "x")
    assert "give --out" in _one_error_line(r, 2)


# ----------------------------------------------------------------------------- CLI: a tiny run, end to end

# The LAUNDER settings of tests/audit/test_audit.py: the teacher memorises the 32 benchmark items.
LAUNDER = dict(model="tiny", synth_benchmark=32, synth_train=128, teacher_epochs=30, teacher_lr=3e-3,
               student_epochs=6, student_lr=3e-3, batch_size=8)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from pylaundering.experiments.config import RunConfig
    from pylaundering.experiments.run import run_experiment

    out = tmp_path_factory.mktemp("public-run")
    run_experiment(RunConfig(**LAUNDER, seed=0, audit=False), out, quiet=True)
    return out


@pytest.mark.slow
def test_cli_on_a_tiny_run(tiny_run, tmp_path):
    """Suspects: the run's teacher (fine-tuned on B) and laundered student; clean: its three clean arms
    (--clean-from). On the run's own reference set every clean arm is at chance (synthetic facts: nobody knows
    them without training on them), so there is no skill to calibrate on: insufficient_data, never clean, and
    --fail-on does not fire. On 64 items of the legitimate set as R, which the clean arms trained on (so they
    differ there; a plumbing check, not a valid audit), the fit has spread and the suspects' inflation is
    measured; they are at chance on those items, below the clean models' range: outside_calibration."""
    d = tiny_run
    bench, ref = str(d / "data" / "benchmark.jsonl"), str(d / "data" / "reference.jsonl")
    teacher, student = str(d / "teacher" / "model"), str(d / "student" / "model")
    out = tmp_path / "public"
    r = _cli("audit", "public", teacher, student, "-b", bench, "-r", ref, "--clean-from", str(d), "--out", str(out),
             "--fail-on", "laundered")
    assert r.exit_code == 0, r.output
    assert "insufficient_data" in r.output and "does not fire" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "audit.md", "calibration.png"]
    report = json.loads((out / "audit.json").read_text())
    for key in ("schema_version", "audit", "kind", "question", "benchmark", "reference", "clean_models", "fit",
                "suspects", "replicates", "thresholds", "method", "checks", "encoding", "files"):
        assert key in report, key
    assert report["benchmark"]["n"] == 32 and len(report["benchmark"]["sha256"]) == 64
    assert [c["name"] for c in report["clean_models"]] == [f"{d.name}/{a}" for a in ("clean_teacher",
                                                                                      "control_student", "ce_student")]
    assert [s["verdict"] for s in report["suspects"]] == [INSUFFICIENT, INSUFFICIENT]
    assert "same reference performance" in report["suspects"][0]["reasons"][0]
    assert "**insufficient_data**" in (out / "audit.md").read_text()

    lines = (d / "data" / "train.jsonl").read_text().splitlines()[:64]
    (tmp_path / "r64.jsonl").write_text("\n".join(lines) + "\n")
    r = _cli("audit", "public", teacher, "-b", bench, "-r", str(tmp_path / "r64.jsonl"), "--clean-from", str(d),
             "--kind", "teacher", "--json", "--fail-on", "contaminated")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    s = report["suspects"][0]
    assert report["fit"]["slope"] >= 0 and report["fit"]["band"] is not None
    assert s["benchmark"]["accuracy"] == 1.0 and s["delta"] > 0.4 and s["p_value"] < P_STRONG
    assert s["verdict"] == OUTSIDE and "below the clean models' range" in s["reasons"][0]
    assert (d / "teacher" / "audit-public" / "calibration.png").exists()  # the default --out: next to the model


def test_self_check_audits_each_clean_model_against_the_others():
    """Leave one out: each clean model's verdict is assess_public's with it as the suspect and the rest as the
    calibration; a "clean" model that is in fact inflated by 25 points is the one the self-check flags."""
    from pylaundering.audit.public import self_check

    rng = np.random.default_rng(5)
    ib, ir = _world(rng, 800)
    clean = _clean(rng, ib, ir)
    clean["clean-3"] = _pair(rng, ib, ir, SKILLS[3], inflation=0.25)  # mid-range, so never outside the others'
    check = self_check("student", clean, replicates=400, seed=1)
    assert [a["model"] for a in check["audits"]] == list(clean)
    for a in check["audits"]:
        alone = assess_public("student", {n: v for n, v in clean.items() if n != a["model"]},
                              {a["model"]: clean[a["model"]]}, replicates=400, seed=1)["suspects"][0]
        assert (a["verdict"], a["delta"], a["p_value"]) == (alone["verdict"], alone["delta"], alone["p_value"])
    flagged = {a["model"] for a in check["audits"] if a["verdict"] in ("suspicious", "laundered")}
    assert "clean-3" in flagged and len(flagged) <= 2, check["audits"]
    decided = [a for a in check["audits"] if a["verdict"] not in (INSUFFICIENT, OUTSIDE)]
    assert check["decided"] == len(decided) and check["withheld"] == len(clean) - len(decided)
    assert check["suspicious_or_above"] == len(flagged)
    assert self_check("student", dict(list(clean.items())[:MIN_CLEAN]), replicates=50) is None  # none to leave out
    report = assess_public("student", clean, {"s": _pair(rng, ib, ir, 0.5)}, replicates=200)
    report["self_check"] = check
    text = format_markdown(report)
    assert "## Self-check" in text and f"**{len(flagged)} of {check['decided']}**" in text
