"""Per-model defaults (MODEL_DEFAULTS): each built-in model resolves its own settings, a value given explicitly
is never replaced by them (however it was given: file, flag, argument, sweep value), and `launder run
--print-config` shows every resolved setting with its origin without writing anything."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.experiments.config import (
    COMMAND_LINE,
    MODEL_DEFAULTS,
    RunConfig,
    load_config,
    resolve_defaults,
    validate,
)

runner = CliRunner()
TOKEN = dict(level="token", model="tiny-gpt")
# equal to the declared (minilm) defaults: the case a comparison with the default value gets wrong
EXPLICIT = dict(teacher_lr=2e-4, student_lr=1e-4)


def test_tiny_defaults_differ_from_minilm():
    tiny, minilm = RunConfig(model="tiny"), RunConfig(model="minilm")
    validate(tiny)
    validate(minilm)
    table = MODEL_DEFAULTS[("tiny", "choice")]
    assert table and all(getattr(tiny, k) == v for k, v in table.items())
    assert any(getattr(tiny, k) != getattr(minilm, k) for k in table)
    # the demo's settings: exactly the declared defaults, teacher cap from the synthetic benchmark
    assert (minilm.teacher_lr, minilm.student_lr, minilm.batch_size, minilm.student_epochs,
            minilm.teacher_epochs) == (2e-4, 1e-4, 16, 3, 8)


def test_explicit_values_are_kept_through_every_resolution():
    # as arguments, resolved twice (validate, then run_experiment's resolve_defaults)
    cfg = RunConfig(**TOKEN, **EXPLICIT)
    validate(cfg)
    resolve_defaults(cfg)
    assert (cfg.teacher_lr, cfg.student_lr) == (2e-4, 1e-4)
    assert cfg.teacher_epochs == MODEL_DEFAULTS[("tiny-gpt", "token")]["teacher_epochs"]  # not given: the table
    # from the command line (load_config), then resolved again as run_experiment does
    cfg = load_config(None, {**TOKEN, **EXPLICIT})
    resolve_defaults(cfg)
    assert (cfg.teacher_lr, cfg.student_lr) == (2e-4, 1e-4)
    # a config written out and read back (a sweep point, a resume) keeps its values
    again = RunConfig(**cfg.to_dict())
    resolve_defaults(again)
    assert again.to_dict() == cfg.to_dict()


def test_a_model_default_follows_the_model_when_it_changes():
    base = load_config(None, {})  # minilm, resolved
    tiny = base.replace(model="tiny")
    validate(tiny)
    assert tiny.teacher_lr == MODEL_DEFAULTS[("tiny", "choice")]["teacher_lr"]
    given = load_config(None, {"teacher_lr": 5e-4}).replace(model="tiny")
    validate(given)
    assert given.teacher_lr == 5e-4


def test_a_sweep_over_student_lr_runs_each_value(tmp_path, monkeypatch):
    """Two points, two values: in the plan and in each point's config.json (written by run_experiment)."""
    from pylaundering.experiments import run as run_module
    from pylaundering.experiments import sweep as sweep_module
    from pylaundering.experiments.sweep import plan

    base = load_config(None, dict(TOKEN))
    points = plan(base, {"student_lr": [1e-4, 1e-3]}, [0])
    assert [p.config.student_lr for p in points] == [1e-4, 1e-3]

    def stop_after_config(cfg, out, *_, **__):  # the real start (resolve, checks) without the training
        from pylaundering.train.checkpoint import write_json

        resolve_defaults(cfg)
        write_json(cfg.to_dict(), out / "config.json")
        raise RuntimeError("stopped")

    monkeypatch.setattr(run_module, "_run_arms", lambda cfg, out, *a, **k: stop_after_config(cfg, out))
    monkeypatch.setattr(run_module, "preflight", lambda cfg: (None, None))
    monkeypatch.setattr(run_module, "run_task", lambda cfg, bench: "multiple_choice")
    for p in points:
        out = tmp_path / p.name
        out.mkdir()
        result = sweep_module.run_point(p.config.to_dict(), str(out), str(tmp_path / "shared"))
        assert "stopped" in result["error"]
    written = [json.loads((tmp_path / p.name / "config.json").read_text())["student_lr"] for p in points]
    assert written == [1e-4, 1e-3]


def _print_config(tmp_path, *args):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--out", str(out), "--print-config", *args], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert not out.exists() and not (tmp_path / "data").exists()  # nothing trained or written
    return res.output


def test_print_config_shows_every_setting_with_its_origin(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("student_epochs = 4\n")
    rows = json.loads(_print_config(tmp_path, "--model", "tiny", "--teacher-lr", "5e-4", "--config", str(toml),
                                    "--json"))
    assert set(rows) == set(RunConfig().to_dict()) - {"extra"}
    assert rows["teacher_lr"] == {"value": 5e-4, "origin": COMMAND_LINE}
    assert rows["model"] == {"value": "tiny", "origin": COMMAND_LINE}
    assert rows["student_epochs"] == {"value": 4, "origin": str(toml)}
    assert rows["student_lr"] == {"value": MODEL_DEFAULTS[("tiny", "choice")]["student_lr"],
                                  "origin": "model default (tiny, choice)"}
    assert rows["alpha"] == {"value": 1.0, "origin": "default"}
    text = _print_config(tmp_path, "--model", "tiny", "--batch-size", "4", "--student-lr", "1e-4")
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "command line" in lines["batch_size"] and " 4 " in lines["batch_size"] + " "
    assert "command line" in lines["student_lr"] and "0.0001" in lines["student_lr"]
    assert "model default (tiny, choice)" in lines["teacher_lr"]


@pytest.mark.parametrize("flag, key, value", [("--teacher-lr", "teacher_lr", "5e-4"),
                                              ("--student-lr", "student_lr", "2e-3"),
                                              ("--batch-size", "batch_size", "4"),
                                              ("--teacher-epochs", "teacher_epochs", "5"),
                                              ("--student-epochs", "student_epochs", "2")])
def test_run_takes_each_models_settings(tmp_path, flag, key, value):
    rows = json.loads(_print_config(tmp_path, "--model", "tiny", flag, value, "--json"))
    assert rows[key]["origin"] == COMMAND_LINE and rows[key]["value"] == json.loads(value)
