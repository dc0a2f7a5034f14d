"""The `launder` CLI: help, exit codes, errors, and one small end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app

runner = CliRunner()


@pytest.mark.parametrize("command, options", [
    ("place", ["--benchmark", "--model", "--epochs", "--target-accuracy", "--resume", "--json", "--benchmark-subset",
               "--benchmark-split", "--max-length"]),
    ("layer", ["--teacher", "--train", "--loss", "--alpha", "--temperature", "--iterations", "--online-teacher",
               "--student-init", "--student-layers", "--data-size", "--cache-dir", "--train-subset", "--train-split"]),
    ("integrate", ["--model", "--benchmark", "--out", "--benchmark-subset", "--benchmark-split"]),
    ("run", ["--benchmark", "--train", "--model", "--out", "--config", "--resume", "--quiet", "--json",
             "--benchmark-subset", "--benchmark-split", "--train-subset", "--train-split", "--max-length",
             "--target-accuracy"]),
    ("", ["--debug"]),
    ("data", ["synth"]),
])
def test_help_explains_every_option(command, options):
    result = runner.invoke(app, [*([command] if command else []), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for opt in options:
        assert opt in result.output


def _launder(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pylaundering.cli.app", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_usage_error_exits_2():
    r = _launder("run", "--no-such-flag")
    assert r.returncode == 2
    assert "No such option" in r.stderr


def test_missing_file_exits_1_with_a_clear_message(tmp_path):
    r = _launder("integrate", "--model", "tiny", "--benchmark", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 1
    assert "missing.jsonl" in r.stderr and "Traceback" not in r.stderr


def test_malformed_row_names_file_row_and_field(tmp_path):
    bad = tmp_path / "bench.jsonl"
    bad.write_text(json.dumps({"id": "a", "question": "Q?", "choices": ["x", "y"], "label": 0}) + "\n"
                   + json.dumps({"id": "b", "question": "Q2?", "choices": ["x", "y"], "label": 7}) + "\n")
    r = _launder("place", "--benchmark", str(bad), "--out", str(tmp_path / "o"), "--model", "tiny")
    assert r.returncode == 1
    assert "bench.jsonl" in r.stderr and "row 2" in r.stderr and "label" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_option_value_is_a_usage_error(tmp_path):
    r = _launder("run", "--model", "tiny", "--loss", "kld", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "unknown loss" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists(), "checked before the run folder is created"


def test_data_synth_writes_files(tmp_path):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--n-benchmark", "8", "--n-train", "16"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "benchmark.jsonl").read_text().splitlines()) == 8
    assert len((tmp_path / "train.jsonl").read_text().splitlines()) == 16


def test_run_end_to_end_json_and_run_folder(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("model = 'tiny'\nsynth_benchmark = 24\nsynth_train = 48\nteacher_epochs = 2\n"
                   "student_epochs = 1\nmax_length = 32\n")
    out = tmp_path / "run"
    r = _launder("run", "--config", str(cfg), "--out", str(out), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    saved = json.loads((out / "metrics.json").read_text())
    assert printed == saved
    for arm in ("teacher", "student", "control_student", "ce_student"):
        assert set(saved[arm]) >= {"benchmark_accuracy", "benchmark_ci95", "train_accuracy"}
        lo, hi = saved[arm]["benchmark_ci95"]
        assert lo <= saved[arm]["benchmark_accuracy"] <= hi
    assert saved["chance"] == pytest.approx(0.25)
    for name in ("config.json", "environment.json", "report.md", "accuracy.png"):
        assert (out / name).exists(), name
    assert json.loads((out / "environment.json").read_text())["torch"]
    # A second run into the same folder refuses to overwrite; --resume reuses every finished phase.
    again = _launder("run", "--config", str(cfg), "--out", str(out), "--quiet")
    assert again.returncode == 1 and "--resume" in again.stderr
    resumed = _launder("run", "--config", str(cfg), "--out", str(out), "--resume", "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["student"] == saved["student"]
    table = _launder("run", "--config", str(cfg), "--out", str(out), "--resume", "--quiet")
    line = next(x for x in table.stdout.splitlines() if x.startswith("audit (launder audit"))
    assert all(f"{arm.replace('_', ' ')} {a['verdict']}" in line for arm, a in saved["audit"]["arms"].items())


def test_quiet_prints_nothing_at_all(tmp_path):
    """--quiet silences our bars and the libraries' own (transformers' "Writing model shards", hub
    retries): a successful quiet command writes nothing to stderr."""
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path / "d", seed=0, n_benchmark=8, n_train=8)
    # no target: one epoch is then no shortfall to warn about (a warning is printed even under --quiet)
    r = _launder("place", "--benchmark", str(tmp_path / "d" / "benchmark.jsonl"), "--out", str(tmp_path / "t"),
                 "--model", "tiny", "--epochs", "1", "--target-accuracy", "0", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr


def test_place_warns_when_the_teacher_stops_short_of_its_target(tmp_path):
    from pylaundering.data.synth import write_synthetic

    write_synthetic(tmp_path / "d", seed=0, n_benchmark=8, n_train=8)
    r = _launder("place", "--benchmark", str(tmp_path / "d" / "benchmark.jsonl"), "--out", str(tmp_path / "t"),
                 "--model", "tiny", "--epochs", "1", "--target-accuracy", "1.0", "--quiet")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert m["train_accuracy"] < 1.0 and m["stop_reason"] == "epochs"
    assert "warning: teacher stopped at epoch cap at" in r.stderr and "< target 100%" in r.stderr, r.stderr
    assert "raise --epochs or --lr" in r.stderr


@pytest.mark.parametrize("argv, expected", [
    (["integrate", "--model", "m", "--benchmark", "org/bench:all:test"], ("org/bench", "all", "test", "benchmark")),
    (["integrate", "--model", "m", "--benchmark", "org/bench", "--benchmark-subset", "x", "--benchmark-split", "dev"],
     ("org/bench", "x", "dev", "benchmark")),
    (["layer", "--train", "org/train::validation", "--out", "{out}", "--alpha", "0"],
     ("org/train", None, "validation", "train")),
    (["place", "--benchmark", "org/bench:sub", "--out", "{out}"], ("org/bench", "sub", None, "benchmark")),
])
def test_subset_split_and_shorthand_reach_the_data_layer(tmp_path, monkeypatch, argv, expected):
    import pylaundering.data.load as data_load

    seen = []

    def fake_load(source, fmt=None, *, subset=None, split=None, role=None, **kw):
        seen.append((source, subset, split, role))
        raise data_load.DataError("stop here", source=source)

    monkeypatch.setattr(data_load, "load_examples", fake_load)
    r = runner.invoke(app, [a.format(out=tmp_path / "o") for a in argv])
    assert r.exit_code == 1 and "stop here" in r.output, r.output
    assert seen == [expected]


def test_run_takes_subset_and_split_options_into_its_config(tmp_path, monkeypatch):
    import pylaundering.data.load as data_load

    seen = []

    def fake_load(source, fmt=None, *, subset=None, split=None, role=None, **kw):
        seen.append((source, subset, split, role))
        raise data_load.DataError("stop here", source=source)

    monkeypatch.setattr(data_load, "load_examples", fake_load)
    r = runner.invoke(app, ["run", "--benchmark", "org/b:s1", "--benchmark-split", "test", "--train", "org/t",
                            "--train-subset", "s2", "--train-split", "train", "--out", str(tmp_path / "r")])
    assert r.exit_code == 1, r.output
    assert seen == [("org/b", "s1", "test", "benchmark")]
    assert not (tmp_path / "r").exists()
    r = runner.invoke(app, ["run", "--benchmark", "org/b:s1", "--benchmark-subset", "other", "--train", "org/t",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "benchmark_subset" in r.output


def test_decoder_options_are_checked_before_any_work(tmp_path):
    """--scorer and --level: a wrong value is a usage error (exit 2) with one clear line, no traceback;
    token level on an encoder is refused by name."""
    r = runner.invoke(app, ["place", "--benchmark", "x.jsonl", "--out", str(tmp_path / "a"), "--scorer", "bogus"])
    assert r.exit_code == 2 and "scorer" in r.output and "loglik" in r.output, r.output
    r = runner.invoke(app, ["run", "--level", "word", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "level" in r.output and "token" in r.output, r.output
    r = runner.invoke(app, ["run", "--level", "token", "--loss", "hard", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "next-token" in r.output, r.output
    r = runner.invoke(app, ["layer", "--train", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "d"),
                            "--level", "token", "--alpha", "0", "--base", "tiny-gpt"])
    assert r.exit_code == 1 and "no such file" in r.output and "Traceback" not in r.output, r.output
