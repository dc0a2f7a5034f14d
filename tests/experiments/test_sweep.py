"""`launder sweep`: planning, shared teachers, resume, failures, bad input, the Ray executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.errors import ConfigError
from pylaundering.experiments import sweep as sweep_mod
from pylaundering.experiments.config import RunConfig
from pylaundering.experiments.sharing import shared_keys

runner = CliRunner()


@pytest.fixture
def quick(quick_settings):
    return quick_settings


@pytest.fixture
def sets(quick_settings):
    return [arg for k, v in quick_settings.items() for arg in ("--set", f"{k}={v}")]


def _index(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


# ------------------------------------------------------------------------------------------------
# Planning (no training)


def test_parse_param_types_ranges_and_errors():
    assert sweep_mod.parse_param("alpha=0,0.5,1") == ("alpha", [0.0, 0.5, 1.0])
    assert sweep_mod.parse_param("iterations=1..3") == ("iterations", [1, 2, 3])
    assert sweep_mod.parse_param("loss=kl,mse") == ("loss", ["kl", "mse"])
    assert sweep_mod.parse_param("data-size=none,10") == ("data_size", [None, 10])
    for bad, key in (("alpah=0,1", "alpah"), ("alpha=", "alpha"), ("alpha=0,,1", "alpha"), ("alpha=high", "alpha"),
                     ("student_epochs=1.5", "student_epochs"), ("seed=0,1", "seed"), ("alpha", "param")):
        with pytest.raises(ConfigError) as e:
            sweep_mod.parse_param(bad)
        assert e.value.key == key, bad


def test_plan_grid_zip_and_validation(quick):
    base = RunConfig(**quick)
    grid = sweep_mod.plan(base, {"alpha": [0.5, 1.0], "loss": ["kl", "mse"]}, [0, 1])
    assert len(grid) == 8
    assert {p.name for p in grid} == {f"alpha={a}-loss={loss}-seed={s}" for a in (0.5, 1.0) for loss in ("kl", "mse")
                                      for s in (0, 1)}
    zipped = sweep_mod.plan(base, {"alpha": [0.5, 1.0], "loss": ["kl", "mse"]}, [0], zip_=True)
    assert [(p.config.alpha, p.config.loss) for p in zipped] == [(0.5, "kl"), (1.0, "mse")]
    with pytest.raises(ConfigError, match="one length"):
        sweep_mod.plan(base, {"alpha": [0.5, 1.0], "loss": ["kl"]}, [0], zip_=True)
    with pytest.raises(ConfigError, match="alpha"):  # range checks run on every point before anything trains
        sweep_mod.plan(base, {"alpha": [0.5, 1.5]}, [0])


def test_dependencies_follow_shared_phases(quick):
    base = RunConfig(**quick)
    points = sweep_mod.plan(base, {"alpha": [0.5, 1.0], "student_init": ["sheared", "random"]}, [0, 1])
    by = {p.name: p for p in points}
    first = "alpha=0.5-student_init=sheared-seed=0"
    assert by[first].deps == []
    # Same seed: the teachers come from the first point; a new student init needs its own CE student.
    assert by["alpha=0.5-student_init=random-seed=0"].deps == [first]
    assert set(by["alpha=1.0-student_init=random-seed=0"].deps) == {first, "alpha=0.5-student_init=random-seed=0"}
    assert by["alpha=0.5-student_init=sheared-seed=1"].deps == []  # another seed shares nothing
    keys = {p.name: shared_keys(p.config) for p in points}
    assert keys[first]["teacher"] == keys["alpha=1.0-student_init=random-seed=0"]["teacher"]
    assert keys[first]["ce_student"] != keys["alpha=0.5-student_init=random-seed=0"]["ce_student"]
    assert keys[first]["teacher"] != keys["alpha=0.5-student_init=sheared-seed=1"]["teacher"]


def test_teacher_key_changes_with_teacher_settings_only(quick):
    a = shared_keys(RunConfig(**quick))
    assert shared_keys(RunConfig(**{**quick, "alpha": 0.3, "loss": "mse"}))["teacher"] == a["teacher"]
    assert shared_keys(RunConfig(**{**quick, "alpha": 0.3}))["ce_student"] == a["ce_student"]
    assert shared_keys(RunConfig(**{**quick, "teacher_lr": 1e-3}))["teacher"] != a["teacher"]
    assert shared_keys(RunConfig(**{**quick, "teacher_lr": 1e-3}))["ce_student"] == a["ce_student"]
    assert shared_keys(RunConfig(**{**quick, "student_epochs": 3}))["ce_student"] != a["ce_student"]
    assert shared_keys(RunConfig(**{**quick, "synth_train": 30}))["teacher"] != a["teacher"]


def test_keys_leave_out_what_a_phase_does_not_read(quick):
    """The CE-only student reads no teacher: neither the loss nor T, beta, an online or a top-k teacher key it; a
    top-k teacher cache is a layering setting, not the teacher's."""
    a = shared_keys(RunConfig(**quick))
    for change in ({"loss": "mse"}, {"loss": "reverse_kl", "temperature": 4.0}, {"loss": "jsd", "beta": 0.3},
                   {"online_teacher": True}, {"teacher_topk": 8}):
        b = shared_keys(RunConfig(**{**quick, **change}))
        assert b["ce_student"] == a["ce_student"], change
        assert b["teacher"] == a["teacher"] and b["clean_teacher"] == a["clean_teacher"], change
    assert shared_keys(RunConfig(**{**quick, "student_lr": 1e-2}))["ce_student"] != a["ce_student"]
    assert shared_keys(RunConfig(**{**quick, "iterations": 2}))["ce_student"] != a["ce_student"]


# ------------------------------------------------------------------------------------------------
# End to end (tiny model, in-process)


def test_tiny_sweep_end_to_end_shares_teachers(tmp_path, monkeypatch, sets):
    """2 alphas x 2 seeds: every point a run folder with metrics.json v1; each seed's contaminated
    and clean teacher trained once (4 placements, not 8), its CE-only student once."""
    import pylaundering.phases.layering as layering
    import pylaundering.phases.placement as placement

    trained = {"placement": 0, "layering": 0}
    real_place_train, real_round = placement.train, layering._one_round

    def count_place(*a, **k):
        trained["placement"] += 1
        return real_place_train(*a, **k)

    def count_round(*a, **k):
        trained["layering"] += 1
        return real_round(*a, **k)

    monkeypatch.setattr(placement, "train", count_place)
    monkeypatch.setattr(layering, "_one_round", count_round)
    out = tmp_path / "sw"
    res = runner.invoke(app, ["sweep", *sets, "-p", "alpha=0.5,1", "--seeds", "2", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    index = _index(out)
    assert index["kind"] == "pylaundering-sweep" and index["params"] == {"alpha": [0.5, 1.0]}
    assert [p["status"] for p in index["points"]] == ["done"] * 4
    for p in index["points"]:
        m = json.loads((out / p["dir"] / "metrics.json").read_text())
        cfg = json.loads((out / p["dir"] / "config.json").read_text())
        assert m["schema_version"] == 1 and cfg["alpha"] == p["params"]["alpha"] and cfg["seed"] == p["seed"]
        assert m["comparisons"]["student_vs_control_student"]["bootstrap"]["resamples"] == 10000
        assert "value" in m["distance"]
        assert (out / p["dir"] / "teacher").resolve() == (out / "shared" / m["shared"]["keys"]["teacher"]).resolve()
    assert trained["placement"] == 4  # 2 seeds x (teacher + clean teacher)
    # per point: student + control student; per seed: one CE-only student
    assert trained["layering"] == 4 * 2 + 2
    assert index["sharing"]["teacher"] == {**index["sharing"]["teacher"], "trained": 2, "used_by_points": 4}


def test_failed_point_is_recorded_and_a_rerun_resumes(tmp_path, monkeypatch, sets):
    import pylaundering.experiments.run as run_mod

    real = run_mod.run_experiment
    calls = []

    def flaky(cfg, out, **kw):
        calls.append(cfg.alpha)
        if cfg.alpha == 1.0 and flaky.fail:
            raise RuntimeError("disk full (simulated)")
        return real(cfg, out, **kw)

    flaky.fail = True
    monkeypatch.setattr(run_mod, "run_experiment", flaky)
    out = tmp_path / "sw"
    args = ["sweep", *sets, "-p", "alpha=0.5,1", "-o", str(out), "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "1 of 2 sweep points failed" in res.output
    points = {p["name"]: p for p in _index(out)["points"]}
    assert points["alpha=0.5-seed=0"]["status"] == "done"
    assert points["alpha=1.0-seed=0"]["status"] == "failed"
    assert "disk full (simulated)" in points["alpha=1.0-seed=0"]["error"]
    flaky.fail = False
    calls.clear()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert calls == [1.0]  # the finished point was skipped
    assert [p["status"] for p in _index(out)["points"]] == ["done", "done"]


@pytest.mark.parametrize("args, code, text", [
    (["-p", "alpah=0,1"], 2, "alpah: not a run setting"),
    (["-p", "alpha=0,high"], 2, "alpha: expected a number"),
    (["-p", "student_epochs=1.5"], 2, "student_epochs: expected an integer"),
    (["-p", "alpha="], 2, "alpha: an empty list"),
    (["-p", "alpha=0,2"], 2, "alpha"),
    (["--set", "teacher_epochs=x"], 2, "teacher_epochs: expected an integer"),
    (["--seed-list", "0,a"], 2, "seed_list"),
    (["--executor", "slurm"], 2, "executor"),
])
def test_bad_input_one_line(tmp_path, args, code, text, sets):
    res = runner.invoke(app, ["sweep", *sets, *args, "-o", str(tmp_path / "sw")])
    assert res.exit_code == code, res.output
    assert text in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "sw").exists()  # nothing written for a bad request


def test_refuses_another_sweep_or_a_run_folder(tmp_path, sets):
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"kind": "pylaundering-sweep", "params": {"alpha": [0.1]},
                                                "seeds": [0], "mode": "grid", "base_config": {}}))
    res = runner.invoke(app, ["sweep", *sets, "-p", "alpha=0.5,1", "-o", str(out)])
    assert res.exit_code == 1 and "holds another sweep" in res.output
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    res = runner.invoke(app, ["sweep", *sets, "-p", "alpha=0.5,1", "-o", str(run_dir)])
    assert res.exit_code == 1 and "holds a run, not a sweep" in res.output


def test_toml_sweep_table(tmp_path, quick):
    cfg = tmp_path / "study.toml"
    cfg.write_text("[run]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in quick.items()) +
                   "[sweep]\nseeds = [3, 5]\n[sweep.params]\nalpha = [0.5, 1]\nloss = [\"kl\", \"mse\"]\n")
    run, spec = sweep_mod.read_sweep_toml(cfg)
    assert run == {**quick, "teacher_lr": float(quick["teacher_lr"]), "student_lr": float(quick["student_lr"])}
    assert spec == {"params": {"alpha": [0.5, 1.0], "loss": ["kl", "mse"]}, "seeds": [3, 5], "zip": False}
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep.params]\nalpha = []\n")
    with pytest.raises(ConfigError, match="empty list"):
        sweep_mod.read_sweep_toml(bad)
    bad.write_text("[sweep]\nparam = 1\n")
    with pytest.raises(ConfigError, match="sweep.param"):
        sweep_mod.read_sweep_toml(bad)


def test_help_explains():
    res = runner.invoke(app, ["sweep", "--help"])
    assert res.exit_code == 0
    for option in ("--param", "--seeds", "--zip", "--jobs", "--executor", "--config", "launder report"):
        assert option in res.output


# ------------------------------------------------------------------------------------------------
# Executors that start processes


def test_local_process_pool(tmp_path, quick):
    out = tmp_path / "sw"
    index = sweep_mod.run_sweep(RunConfig(**quick), {"alpha": [0.5, 1.0]}, [0], out, jobs=2, threads=1, quiet=True)
    assert [p["status"] for p in index["points"]] == ["done", "done"], index["points"]
    assert index["points"][1]["depends_on"] == [index["points"][0]["name"]]


def test_sigterm_to_a_pooled_sweep_stops_its_workers(tmp_path, quick):
    """`kill PID` of a `--jobs 2` sweep: before, the parent died alone and its orphaned workers went on training
    into the sweep folder; now the workers stop too (each checkpoints), the sweep exits 130 and its points are
    pending again for --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sw"
    sets = [a for k, v in {**quick, "student_epochs": 400, "synth_train": 48}.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen([sys.executable, "-m", "pylaundering.cli.app", "sweep", *sets, "--seeds", "2",
                             "--jobs", "2", "--threads", "1", "-o", str(out), "-q"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def children() -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        return [int(x) for x in found]

    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "sweep.json").exists() and "running" in
                                          (out / "sweep.json").read_text() and len(children()) >= 2):
        time.sleep(0.5)
    workers = children()
    assert workers, "the sweep never started its workers"
    time.sleep(3)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    time.sleep(1)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "zombie" not in
             open(f"/proc/{w}/status").read().lower()]
    assert not alive, f"workers {alive} outlived their sweep"
    assert "done" not in {p["status"] for p in _index(out)["points"]}


def test_ray_executor_on_a_local_runtime(tmp_path, quick):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'pylaundering[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        out = tmp_path / "sw"
        index = sweep_mod.run_sweep(RunConfig(**quick), {"alpha": [0.5, 1.0]}, [0], out, executor="ray",
                                    threads=1, quiet=True)
    finally:
        ray.shutdown()
    assert [p["status"] for p in index["points"]] == ["done", "done"], index["points"]
    for p in index["points"]:
        assert json.loads((out / p["dir"] / "metrics.json").read_text())["schema_version"] == 1
    assert index["sharing"]["teacher"]["trained"] == 1


def test_an_interrupted_sweep_stops_instead_of_recording_a_failure(tmp_path, monkeypatch, quick):
    """Ctrl-C / SIGTERM inside a point (the training loop's Interrupted) ends the sweep; the point
    stays pending, so the next run resumes it from its checkpoint."""
    import pylaundering.experiments.run as run_mod
    from pylaundering.train.loop import Interrupted

    def stop(cfg, out, **kw):
        raise Interrupted(Path(out) / "checkpoint.pt")

    monkeypatch.setattr(run_mod, "run_experiment", stop)
    out = tmp_path / "sw"
    with pytest.raises(Interrupted):
        sweep_mod.run_sweep(RunConfig(**quick), {"alpha": [0.5, 1.0]}, [0], out, quiet=True)
    assert [p["status"] for p in _index(out)["points"]] == ["pending", "pending"]


def test_an_index_written_before_a_setting_existed_still_resumes(tmp_path, quick):
    """sweep.json of an older version lacks settings added since: they take their defaults."""
    out = tmp_path / "sw"
    base = RunConfig(**quick)
    points = sweep_mod.plan(base, {"alpha": [0.5]}, [0])
    spec = sweep_mod.spec_dict(base, {"alpha": [0.5]}, [0], False)
    old = {**spec, "base_config": {k: v for k, v in spec["base_config"].items() if k != "audit"}}
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"kind": "pylaundering-sweep", **old, "points": []}))
    index = sweep_mod.open_sweep(out, spec, points)
    assert [p["status"] for p in index["points"]] == ["pending"]


def test_unreadable_data_fails_the_sweep_at_once(tmp_path, sets):
    """Data that cannot be loaded fails before the sweep folder exists, not once per point."""
    bad = ["--set", f"benchmark={tmp_path / 'missing.jsonl'}", "--set", f"train={tmp_path / 'missing.jsonl'}"]
    res = runner.invoke(app, ["sweep", *sets, *bad, "-p", "alpha=0.5,1", "--seeds", "2", "-o", str(tmp_path / "sw")])
    assert res.exit_code == 1 and "missing.jsonl" in res.output
    assert res.output.count("error") == 1
    assert not (tmp_path / "sw").exists()


def test_a_loss_by_alpha_grid_trains_one_ce_student_and_none_at_alpha_0(tmp_path, monkeypatch, sets):
    """loss kl, mse x alpha 0, 1: one CE-only student for both losses, and at alpha 0 the student and the control
    student are that CE-only student (no teacher signal at alpha 0): 2 students + 2 controls + 1 CE-only = 5
    layerings (10 before the keys were narrowed). The shared arms' scores come from the logit cache."""
    import pylaundering.phases.layering as layering

    rounds = []
    real_round = layering._one_round
    monkeypatch.setattr(layering, "_one_round", lambda *a, **k: rounds.append(a[2]) or real_round(*a, **k))
    out = tmp_path / "sw"
    res = runner.invoke(app, ["sweep", *sets, "-p", "loss=kl,mse", "-p", "alpha=0,1", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(rounds) == 5, rounds
    index = _index(out)
    assert [p["status"] for p in index["points"]] == ["done"] * 4
    ms = {p["name"]: json.loads((out / p["dir"] / "metrics.json").read_text()) for p in index["points"]}
    for loss in ("kl", "mse"):
        zero = ms[f"loss={loss}-alpha=0.0-seed=0"]
        assert zero["student"]["model_dir"] == zero["ce_student"]["model_dir"] == zero["control_student"]["model_dir"]
        assert zero["student"]["benchmark_correct"] == zero["ce_student"]["benchmark_correct"]
        assert any("alpha 0" in w for w in zero["warnings"])
        one = ms[f"loss={loss}-alpha=1.0-seed=0"]
        assert one["student"]["model_dir"] != one["ce_student"]["model_dir"]
        assert not any("alpha 0" in w for w in one["warnings"])
    # every point scored the shared teachers; only the first computed their logits
    states = [json.loads((out / p["dir"] / "eval" / "teacher" / "metrics.json").read_text())["score_cache"]
              for p in index["points"]]
    assert states.count("miss") <= 1 and states.count("hit") >= 3, states


def test_at_alpha_0_the_shortcut_is_the_student_it_replaces(tmp_path, quick):
    """The alpha-0 student trained as the run trains any student (from the teacher, alpha 0) is the CE-only student
    the run links in its place: same predictions, bit for bit."""
    from pylaundering.experiments.run import run_experiment
    from pylaundering.phases import layer

    run = tmp_path / "run"
    m = run_experiment(RunConfig(**{**quick, "alpha": 0.0, "loss": "mse"}), run, quiet=True)
    assert (run / "student").is_symlink() and (run / "control_student").is_symlink()
    ce = json.loads((run / "ce_student" / "metrics.json").read_text())
    spec = layering_spec_of(run)
    alone = layer(m["teacher"]["model_dir"], _train_examples(run), tmp_path / "alone", spec, quiet=True,
                  cache_dir=tmp_path / "cache")
    from pylaundering.data import load_examples
    from pylaundering.phases import integrate

    bench = load_examples(str(run / "data" / "benchmark.jsonl")).examples
    a = integrate(alone["model_dir"], bench, quiet=True)
    b = integrate(ce["model_dir"], bench, quiet=True)
    assert a["correct_mask"] == b["correct_mask"]
    assert alone["train_accuracy"] == ce["train_accuracy"]


def layering_spec_of(run: Path):
    from pylaundering.experiments.config import resolve_defaults
    from pylaundering.experiments.run import layering_spec

    cfg = RunConfig(**json.loads((run / "config.json").read_text()))
    resolve_defaults(cfg)
    m = json.loads((run / "metrics.json").read_text())
    base = json.loads((run / "ce_student" / "metrics.json").read_text())["params"]
    spec = layering_spec(cfg, str(run / "base-tiny"), m["task"], m["max_length"]["value"])
    assert base["alpha"] == spec.distill.alpha == 0.0
    return spec


def _train_examples(run: Path):
    from pylaundering.data import load_examples

    return load_examples(str(run / "data" / "train.jsonl")).examples
