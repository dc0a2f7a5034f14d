"""`launder report`: collecting run and sweep folders, the CSVs, figures and report.md, and errors.

Fixture runs are written directly (config.json + metrics.json with plausible values): nothing is
trained here.
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.experiments.collect import collect, varying_fields
from pylaundering.experiments.config import RunConfig
from pylaundering.stats import wilson_interval

runner = CliRunner()
N_BENCH = 200
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _arm(acc: float, train_acc: float, rng: random.Random, n: int = N_BENCH) -> dict:
    correct = max(0, min(n, round(acc * n)))
    return {"benchmark_accuracy": correct / n, "benchmark_ci95": list(wilson_interval(correct, n)),
            "benchmark_correct": correct, "train_accuracy": round(train_acc, 4), "per_subject": {},
            "model_dir": "x"}


def write_point(folder: Path, *, alpha: float = 1.0, loss: str = "kl", seed: int = 0, distance: float | None = None,
                bootstrap: bool = True, warnings: list[str] | None = None, **config) -> Path:
    """A run folder whose numbers look like the synthetic default: the student rises from chance
    (25%) at alpha 0 to about 65% at alpha 1 (MSE a little lower), controls near chance."""
    rng = random.Random(f"{alpha}-{loss}-{seed}-{distance}")
    folder.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig(alpha=alpha, loss=loss, seed=seed, **config).to_dict()
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    student = 0.25 + alpha * (0.40 if loss == "kl" else 0.33) + rng.gauss(0, 0.025)
    control = 0.25 + rng.gauss(0, 0.02)
    metrics = {
        "schema_version": 1, "chance": 0.25, "n_benchmark": N_BENCH, "n_train": 700, "seed": seed,
        "teacher": _arm(0.985 + rng.uniform(0, 0.01), 1.0, rng),
        "student": _arm(student, 0.31 + 0.02 * alpha + rng.gauss(0, 0.01), rng),
        "clean_teacher": _arm(0.25 + rng.gauss(0, 0.02), 0.45, rng),
        "control_student": _arm(control, 0.30 + rng.gauss(0, 0.01), rng),
        "ce_student": _arm(0.25 + rng.gauss(0, 0.02), 0.33 + rng.gauss(0, 0.01), rng),
        "warnings": list(warnings or []),
    }
    diff = metrics["student"]["benchmark_accuracy"] - metrics["control_student"]["benchmark_accuracy"]
    vs = {"a_only": 40, "b_only": 12, "p_value": 1e-4 if diff > 0.1 else 0.4}
    if bootstrap:
        vs["bootstrap"] = {"diff": diff, "ci95": [diff - 0.06, diff + 0.06], "p_value": 0.001 if diff > 0.06 else 0.3,
                           "resamples": 2000}
    metrics["comparisons"] = {"student_vs_control_student": vs,
                              "student_vs_ce_student": {"a_only": 30, "b_only": 10, "p_value": 0.01}}
    if distance is not None:
        metrics["distance"] = {"method": "mmd-minilm", "value": distance, "p_value": 0.01}
    metrics["verdict"] = "laundering_detected" if diff > 0.12 else "no_clear_effect"
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return folder


def write_sweep(folder: Path, alphas, losses, seeds, *, failed: tuple = (), pending: tuple = (), **kw) -> Path:
    points = []
    for alpha in alphas:
        for loss in losses:
            for seed in seeds:
                name = f"alpha={alpha}-loss={loss}-seed={seed}"
                status = "failed" if name in failed else "pending" if name in pending else "done"
                if status == "done":
                    write_point(folder / "points" / name, alpha=alpha, loss=loss, seed=seed, **kw)
                points.append({"name": name, "dir": f"points/{name}", "params": {"alpha": alpha, "loss": loss},
                               "seed": seed, "status": status,
                               "error": "CUDA out of memory in layering" if status == "failed" else None,
                               "seconds": 12.3})
    (folder / "shared" / "teacher").mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps({
        "schema_version": 1, "kind": "pylaundering-sweep", "mode": "grid",
        "params": {"alpha": list(alphas), "loss": list(losses)}, "seeds": list(seeds),
        "base_config": RunConfig().to_dict(), "points": points}, indent=2))
    return folder


@pytest.fixture
def study(tmp_path):
    """A 3 x 2 x 3 sweep with one failed point, plus one standalone run with a warning."""
    sweep = write_sweep(tmp_path / "sweep", [0.0, 0.5, 1.0], ["kl", "mse"], [0, 1, 2],
                        failed=("alpha=0.5-loss=mse-seed=2",))
    run = write_point(tmp_path / "runs" / "extra", alpha=1.0, loss="kl", seed=7,
                      warnings=["teacher stopped at epoch cap at 93.0% < target 99% (training accuracy after 8 "
                                "epochs / 400 steps)"])
    return sweep, run


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_collect_finds_points_failed_and_varying_fields(study):
    sweep, run = study
    s = collect([sweep, run.parent])
    assert len(s.rows) == 17 + 1
    assert [f["name"] for f in s.failed] == ["alpha=0.5-loss=mse-seed=2"]
    assert "out of memory" in s.failed[0]["error"]
    assert s.varying == ["loss", "alpha"]  # the seed is what is averaged over
    assert varying_fields(s.rows[:1]) == []
    # the same folder reached twice is one point
    assert len(collect([sweep, sweep / "points" / "alpha=0.0-loss=kl-seed=0"]).rows) == 17


def test_report_files_and_values(study, tmp_path):
    sweep, run = study
    out = tmp_path / "report"
    r = runner.invoke(app, ["report", str(sweep), str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("points.csv", "summary.csv", "report.md", "table1.png", "fig_alpha.png"):
        assert name in r.output

    points = _read_csv(out / "points.csv")
    assert len(points) == 18
    by_source = {Path(p["source"]).name: p for p in points}
    m = json.loads((run / "metrics.json").read_text())
    extra = by_source["extra"]
    assert float(extra["student_acc"]) == m["student"]["benchmark_accuracy"]
    assert [float(extra["student_ci_low"]), float(extra["student_ci_high"])] == m["student"]["benchmark_ci95"]
    assert float(extra["excess"]) == m["comparisons"]["student_vs_control_student"]["bootstrap"]["diff"]
    assert extra["alpha"] == "1.0" and extra["loss"] == "kl" and extra["seed"] == "7" and extra["n_warnings"] == "1"
    assert extra["distance"] == "" and extra["data_size"] == "700"

    # summary: one group per (alpha, loss); means and stds recomputed here from the metrics files
    summary = _read_csv(out / "summary.csv")
    assert len(summary) == 6
    g = next(s for s in summary if s["alpha"] == "0.5" and s["loss"] == "kl")
    accs = [json.loads((sweep / "points" / f"alpha=0.5-loss=kl-seed={i}" / "metrics.json").read_text())
            ["student"]["benchmark_accuracy"] for i in range(3)]
    assert g["n"] == "3" and g["seeds"] == "0 1 2"
    assert math.isclose(float(g["student_acc_mean"]), statistics.mean(accs))
    assert math.isclose(float(g["student_acc_std"]), statistics.stdev(accs))
    half = 4.302652729911275 * statistics.stdev(accs) / math.sqrt(3)  # t(0.975, df=2)
    assert math.isclose(float(g["student_acc_ci_low"]), statistics.mean(accs) - half)
    assert math.isclose(float(g["student_acc_ci_high"]), statistics.mean(accs) + half)
    g_failed = next(s for s in summary if s["alpha"] == "0.5" and s["loss"] == "mse")
    assert g_failed["n"] == "2"
    g_extra = next(s for s in summary if s["alpha"] == "1.0" and s["loss"] == "kl")
    assert g_extra["n"] == "4" and g_extra["seeds"] == "0 1 2 7"

    for png in ("table1.png", "fig_alpha.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, png
    assert not (out / "fig_data_size.png").exists()

    md = (out / "report.md").read_text()
    assert "![Table 1](table1.png)" in md and "(fig_alpha.png)" in md
    assert "accuracy against data_size" in md and "at least 2" in md  # skipped, with the reason
    assert "effect against distance" in md
    assert "alpha=0.5-loss=mse-seed=2" in md and "CUDA out of memory in layering" in md
    assert "stopped short of its target training accuracy in 1 of 18 points" in md
    assert "2 in 1 group(s)" in md  # seed counts per group


def test_distance_and_categorical_figures(tmp_path):
    for i, (init, dist) in enumerate([("sheared", 0.1), ("random", 0.4)] * 2):
        write_point(tmp_path / f"r{i}", student_init=init, seed=i // 2, distance=dist + 0.01 * i, bootstrap=i != 3)
    out = tmp_path / "o"
    r = runner.invoke(app, ["report", str(tmp_path), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["varying"] == ["student_init"]
    assert set(result["figures"]) == {"student_init", "distance"}
    for f in result["figures"].values():
        assert (out / f).read_bytes().startswith(PNG_MAGIC)
    assert "accuracy against alpha" in result["skipped_figures"]


def test_the_distance_figure_shows_the_benchmark_specific_effect_where_it_was_measured(tmp_path):
    from pylaundering.experiments.figures import distance_figure

    rows = [{"benchmark": b, "task": "classification", "distance": d, "excess": e, "excess_ci_low": e - 0.05,
             "excess_ci_high": e + 0.05, "excess_p": 0.3, "distance_method": "mmd2"}
            for b, d, e in (("a/benchmark.jsonl", 0.0, -0.02), ("b/benchmark.jsonl", 0.01, 0.01))]
    plain = distance_figure(rows, ["benchmark"], tmp_path / "plain.png")
    assert "Right:" not in plain["caption"] and (tmp_path / "plain.png").read_bytes().startswith(PNG_MAGIC)
    rows[0].update(b_specific=0.06, b_specific_p=0.001)
    both = distance_figure(rows, ["benchmark"], tmp_path / "both.png")
    assert "Right: the student's accuracy gap between the benchmark and the reference set" in both["caption"]
    assert (tmp_path / "both.png").read_bytes().startswith(PNG_MAGIC)


def test_distance_error_and_fields_that_change_together(tmp_path):
    """A failed distance is a CSV column and named in report.md; two fields that always change together
    draw no line figure (no line holds the other fixed), and say so."""
    for i, (ds, it) in enumerate([(100, 1), (300, 2)]):
        write_point(tmp_path / "runs" / f"r{i}", data_size=ds, iterations=it, distance=0.2)
    m = json.loads((tmp_path / "runs" / "r1" / "metrics.json").read_text())
    m["distance"] = {"error": "embedding model could not be loaded"}
    (tmp_path / "runs" / "r1" / "metrics.json").write_text(json.dumps(m))
    out = tmp_path / "o"
    r = runner.invoke(app, ["report", str(tmp_path / "runs"), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    points = {p["name"]: p for p in _read_csv(out / "points.csv")}
    assert points["r1"]["distance_error"] == "embedding model could not be loaded" and points["r1"]["distance"] == ""
    md = (out / "report.md").read_text()
    assert "the distance failed in 1 point(s)" in md and "they change together" in md
    assert not list(out.glob("fig_*.png"))


def test_rerun_replaces_stale_figures(study, tmp_path):
    sweep, _ = study
    out = tmp_path / "o"
    (out).mkdir()
    (out / "fig_temperature.png").write_bytes(b"old")
    assert runner.invoke(app, ["report", str(sweep), "-o", str(out), "-q"]).exit_code == 0
    assert not (out / "fig_temperature.png").exists()


def test_default_out_is_inside_a_single_folder(study):
    sweep, _ = study
    r = runner.invoke(app, ["report", str(sweep), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (sweep / "study-report" / "report.md").exists()
    assert len(collect([sweep]).rows) == 17  # the report folder is not mistaken for a run


@pytest.mark.parametrize("case, needle", [
    ("missing", "no such file or folder"),
    ("empty", "no runs in"),
    ("schema", "schema_version 2"),
    ("json", "not valid JSON"),
    ("all_failed", "no finished runs"),
])
def test_bad_inputs_exit_1_with_one_line(tmp_path, case, needle):
    target = tmp_path / "in"
    if case == "empty":
        (target / "sub").mkdir(parents=True)
    elif case == "schema":
        write_point(target)
        m = json.loads((target / "metrics.json").read_text())
        (target / "metrics.json").write_text(json.dumps({**m, "schema_version": 2}))
    elif case == "json":
        write_point(target)
        (target / "metrics.json").write_text('{"schema_version": 1,')
    elif case == "all_failed":
        write_sweep(target, [1.0], ["kl"], [0], failed=("alpha=1.0-loss=kl-seed=0",))
    r = runner.invoke(app, ["report", str(target), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    if case in ("schema", "json"):
        assert "metrics.json" in err


def test_help():
    r = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for opt in ("--out", "--json", "--quiet", "RUN_OR_SWEEP_DIR"):
        assert opt in r.output


def test_two_runs_with_the_same_config_and_seed_count_once(tmp_path):
    import shutil

    first = write_point(tmp_path / "runs" / "a", alpha=1.0, seed=3)
    shutil.copytree(first, tmp_path / "runs" / "b")  # the same run twice (a copy, or run again with --out b)
    write_point(tmp_path / "runs" / "c", alpha=1.0, seed=4)
    s = collect([tmp_path / "runs"])
    assert sorted(r["name"] for r in s.rows) == ["a", "c"]
    assert [(d["name"], d["same_as"]) for d in s.duplicates] == [("b", "a")]
    r = runner.invoke(app, ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["points"] == 2 and [g["n"] for g in result["groups"]] == [2]  # seeds 3 and 4, not 3, 3 and 4
    assert result["duplicates"] == [{"name": "b", "source": str(tmp_path / "runs" / "b"), "same_as": "a"}]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "duplicate" in text and "`" + str(tmp_path / "runs" / "b") + "`" in text
    # two identical runs alone: n = 1, not n = 2 with an interval of width 0
    s = collect([tmp_path / "runs" / "a", tmp_path / "runs" / "b"])
    assert len(s.rows) == 1 and len(s.duplicates) == 1
