"""Resumes that check what they reuse, checks before training, and run files that follow the umask."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.errors import ConfigError, ResumeMismatch
from pylaundering.experiments.run import run_experiment
from pylaundering.phases import layer, place

runner = CliRunner()


def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "timings_s"}


# ---------------------------------------------------------------------------------------- resume


def test_place_resume_with_a_changed_parameter_is_refused(tmp_path):
    from pylaundering.data.synth import make_synthetic

    bench, train = make_synthetic(seed=0, n_benchmark=12, n_train=12)
    first = place(bench, tmp_path, model="tiny", epochs=1, quiet=True)
    assert place(bench, tmp_path, model="tiny", epochs=1, resume=True, quiet=True) == first
    with pytest.raises(ResumeMismatch) as exc:
        place(bench, tmp_path, model="tiny", epochs=1, lr=1e-3, resume=True, quiet=True)
    assert "lr" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ResumeMismatch, match="data_hash"):
        place(bench[:-1], tmp_path, model="tiny", epochs=1, resume=True, quiet=True)


def test_layer_resume_with_a_changed_parameter_is_refused(tmp_path):
    from pylaundering.data.synth import make_synthetic

    _, train = make_synthetic(seed=0, n_benchmark=12, n_train=16)
    kw = dict(base="tiny", student_layers=1, epochs=1, batch_size=8, alpha=0.0, quiet=True)
    first = layer(None, train, tmp_path, **kw)
    assert layer(None, train, tmp_path, resume=True, **kw) == first
    with pytest.raises(ResumeMismatch, match="lr"):
        layer(None, train, tmp_path, resume=True, **{**kw, "lr": 3e-3})
    # at alpha 0 nothing is distilled: the loss kind and T are not read, so a change of them is the same work
    assert layer(None, train, tmp_path, resume=True, **{**kw, "temperature": 3.0, "loss": "mse"}) == first


def test_iterations_resume_after_the_last_finished_round(tmp_path, monkeypatch):
    from pylaundering.data.synth import make_synthetic
    from pylaundering.phases import layering

    bench, train = make_synthetic(seed=0, n_benchmark=12, n_train=16)
    teacher = place(bench + train, tmp_path / "t", model="tiny", epochs=1, quiet=True)["model_dir"]
    kw = dict(base=teacher, student_layers=1, epochs=1, batch_size=8, iterations=3, cache_dir=tmp_path / "c",
              quiet=True)
    full = layer(teacher, train, tmp_path / "s", **kw)
    # A crash during round 3: rounds 1 and 2 are finished, the phase is not.
    import shutil

    (tmp_path / "s" / "metrics.json").unlink()
    shutil.rmtree(tmp_path / "s" / "round-3")
    calls = []
    original = layering._one_round
    monkeypatch.setattr(layering, "_one_round", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    resumed = layer(teacher, train, tmp_path / "s", resume=True, **kw)
    assert [p.name for p in calls] == ["round-3"], "finished rounds are reused, not retrained"
    assert [r["train_accuracy"] for r in resumed["rounds"]] == [r["train_accuracy"] for r in full["rounds"]]
    assert resumed["rounds"][2]["history"] == full["rounds"][2]["history"]


def test_run_resume_same_settings_same_metrics_and_environment_appended(tmp_path, quick_config):
    out = tmp_path / "r"
    cfg = quick_config()
    first = run_experiment(cfg, out, quiet=True)
    env_before = json.loads((out / "environment.json").read_text())
    again = run_experiment(quick_config(), out, resume=True, quiet=True)
    assert _numbers(again) == _numbers(first)
    env = json.loads((out / "environment.json").read_text())
    assert env["started_at"] == env_before["started_at"] and env["torch"] == env_before["torch"]
    assert len(env["resumes"]) == 1 and env["resumes"][0]["environment"]["torch"]
    with pytest.raises(ResumeMismatch) as exc:
        run_experiment(quick_config(student_lr=1e-3), out, resume=True, quiet=True)
    assert "student_lr" in str(exc.value)
    # Without --resume the folder is refused: it holds a run.
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_experiment(cfg, out, quiet=True)


def test_cli_resume_with_a_changed_flag_is_one_line_exit_1(tmp_path):
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path / "d", seed=0, n_benchmark=12, n_train=12)
    args = ["place", "--benchmark", str(tmp_path / "d" / "benchmark.jsonl"), "--out", str(tmp_path / "t"),
            "--model", "tiny", "--epochs", "1", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, [*args, "--resume", "--lr", "0.001"])
    assert r.exit_code == 1 and "lr" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------- checks before training


@pytest.mark.parametrize("overrides, key", [
    (dict(student_layers=9), "student_layers"),
    (dict(data_size=10_000), "data_size"),
    (dict(data_size=0), "data_size"),
    (dict(student_init="pretrained"), "student_model"),
])
def test_bad_settings_fail_before_the_run_folder_exists(tmp_path, quick_config, overrides, key):
    cfg = quick_config()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    with pytest.raises(ConfigError) as exc:
        run_experiment(cfg, tmp_path / "r", quiet=True)
    assert exc.value.key == key
    assert not (tmp_path / "r").exists()


def test_bad_student_model_path_fails_before_training(tmp_path, quick_config):
    cfg = quick_config(student_init="pretrained", student_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="no-such-model"):
        run_experiment(cfg, tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_missing_data_leaves_no_run_behind(tmp_path):
    """`launder run --benchmark nope.jsonl ...` fails cleanly; after fixing the path the same
    --out is free (it used to be refused: "already holds a run")."""
    from pylaundering.data.synth import write_synthetic

    out = tmp_path / "r"
    r = runner.invoke(app, ["run", "--benchmark", str(tmp_path / "nope.jsonl"), "--train", str(tmp_path / "nope.jsonl"),
                            "--out", str(out), "--model", "tiny", "--quiet"])
    assert r.exit_code == 1 and "nope.jsonl" in r.output
    assert not out.exists()
    write_synthetic(tmp_path / "d", seed=0, n_benchmark=12, n_train=24)
    # A folder left with only a config.json (a run that failed before training) is free too.
    out.mkdir()
    (out / "config.json").write_text("{}")
    r = runner.invoke(app, ["run", "--benchmark", str(tmp_path / "d" / "benchmark.jsonl"),
                            "--train", str(tmp_path / "d" / "train.jsonl"), "--out", str(out), "--model", "tiny",
                            "--teacher-epochs", "1", "--student-epochs", "1", "--quiet", "--no-controls"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["n_benchmark"] == 12


# --------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_run_files_follow_the_umask(tmp_path, umask, mode):
    import torch

    from pylaundering.train.cache import save_cached
    from pylaundering.train.checkpoint import save_torch, write_json, write_text

    old = os.umask(umask)
    try:
        paths = [write_json({"a": 1}, tmp_path / "m.json"), write_text("x", tmp_path / "r.md"),
                 save_torch({"a": 1}, tmp_path / "c.pt"),
                 save_cached(tmp_path, "k" * 40, torch.zeros(2, 2), ["a", "b"])]
    finally:
        os.umask(old)
    for p in paths:
        assert (p.stat().st_mode & 0o777) == mode, (p, oct(p.stat().st_mode))


def test_a_setting_added_later_with_a_none_default_does_not_block_a_resume(tmp_path, quick_config):
    out = tmp_path / "r"
    first = run_experiment(quick_config(), out, quiet=True)
    config = json.loads((out / "config.json").read_text())
    del config["train_split"]  # as written by a version without that setting
    (out / "config.json").write_text(json.dumps(config))
    assert _numbers(run_experiment(quick_config(), out, resume=True, quiet=True)) == _numbers(first)
    config["max_length"] = 48
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ResumeMismatch, match=r"max_length \(48 -> None\)"):
        run_experiment(quick_config(), out, resume=True, quiet=True)


def test_a_ce_only_phase_recorded_by_an_older_version_still_resumes(tmp_path):
    """Before 2026-12-07 an alpha-0 layering recorded the loss, T, beta and online teacher it never reads; such a
    finished phase (an existing run folder, `make demo` run again) resumes instead of being refused."""
    import json

    from pylaundering.data.synth import make_synthetic

    _, train = make_synthetic(seed=0, n_benchmark=12, n_train=16)
    kw = dict(base="tiny", student_layers=1, epochs=1, batch_size=8, alpha=0.0, quiet=True)
    first = layer(None, train, tmp_path, **kw)
    record = json.loads((tmp_path / "phase.json").read_text())
    record["params"].update(loss="kl", temperature=2.0, beta=0.5, online_teacher=False)
    (tmp_path / "phase.json").write_text(json.dumps(record))
    assert layer(None, train, tmp_path, resume=True, **kw) == first
    record["params"]["lr"] = 123.0  # a real difference is still refused
    (tmp_path / "phase.json").write_text(json.dumps(record))
    with pytest.raises(ResumeMismatch, match="lr"):
        layer(None, train, tmp_path, resume=True, **kw)
