"""Issue 33 item 1: no command overwrites its inputs or a finished result unless told to (--overwrite),
and every refusal says how."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app

runner = CliRunner()


def _rows(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.fixture()
def synth(tmp_path):
    r = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "d"), "--n-benchmark", "16", "--n-train", "32"])
    assert r.exit_code == 0, r.output
    return tmp_path / "d"


def test_data_split_refuses_to_write_over_its_source(synth):
    src = synth / "benchmark.jsonl"
    before, ref_before = src.read_bytes(), (synth / "reference.jsonl").read_bytes()
    r = runner.invoke(app, ["data", "split", str(src), "--out", str(synth)])
    assert r.exit_code == 1, r.output
    assert "benchmark.jsonl" in r.output and "input" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert src.read_bytes() == before and (synth / "reference.jsonl").read_bytes() == ref_before
    # --overwrite never makes a command write over its own input
    r = runner.invoke(app, ["data", "split", str(src), "--out", str(synth), "--overwrite"])
    assert r.exit_code == 1 and src.read_bytes() == before


def test_data_split_refuses_existing_outputs_without_overwrite(synth, tmp_path):
    out = tmp_path / "split"
    assert runner.invoke(app, ["data", "split", str(synth / "benchmark.jsonl"), "--out", str(out)]).exit_code == 0
    first = (out / "benchmark.jsonl").read_bytes()
    r = runner.invoke(app, ["data", "split", str(synth / "benchmark.jsonl"), "--out", str(out), "--seed", "3"])
    assert r.exit_code == 1 and "--overwrite" in r.output and "exists" in r.output, r.output
    assert (out / "benchmark.jsonl").read_bytes() == first
    r = runner.invoke(app, ["data", "split", str(synth / "benchmark.jsonl"), "--out", str(out), "--seed", "3",
                            "--overwrite"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "split.json").read_text())["seed"] == 3


def test_data_synth_refuses_existing_files_without_overwrite(synth):
    before = (synth / "train.jsonl").read_bytes()
    r = runner.invoke(app, ["data", "synth", "--out", str(synth), "--n-benchmark", "8", "--n-train", "16"])
    assert r.exit_code == 1 and "--overwrite" in r.output, r.output
    assert (synth / "train.jsonl").read_bytes() == before
    r = runner.invoke(app, ["data", "synth", "--out", str(synth), "--n-benchmark", "8", "--n-train", "16",
                            "--overwrite"])
    assert r.exit_code == 0, r.output
    assert _rows(synth / "train.jsonl") == 16


def test_place_refuses_a_finished_model_without_resume_or_overwrite(synth, tmp_path):
    out = tmp_path / "teacher"
    argv = ["place", "--benchmark", str(synth / "benchmark.jsonl"), "--out", str(out), "--model", "tiny",
            "--epochs", "1", "-q"]
    assert runner.invoke(app, argv).exit_code == 0
    metrics = (out / "metrics.json").read_bytes()
    weights = {p.name: p.read_bytes() for p in (out / "model").iterdir()}
    r = runner.invoke(app, [*argv, "--lr", "1e-3"])
    assert r.exit_code == 1, r.output
    assert "--resume" in r.output and "--overwrite" in r.output and str(out) in r.output.replace("\n", "")
    assert (out / "metrics.json").read_bytes() == metrics
    assert {p.name: p.read_bytes() for p in (out / "model").iterdir()} == weights
    (out / "model" / "stale.bin").write_text("old")
    r = runner.invoke(app, [*argv, "--lr", "1e-3", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["params"]["lr"] == 1e-3
    assert not (out / "model" / "stale.bin").exists()
    r = runner.invoke(app, [*argv, "--resume", "--overwrite"])
    assert r.exit_code == 2, r.output


def test_layer_refuses_a_finished_model_without_resume_or_overwrite(synth, tmp_path):
    from pylaundering.data.load import load_examples
    from pylaundering.phases import layer

    examples = list(load_examples(str(synth / "train.jsonl"), None).examples)
    out = tmp_path / "ce"
    kw = dict(alpha=0.0, base="tiny", epochs=1, quiet=True)
    layer(None, examples, out, **kw)
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(FileExistsError, match="--resume to reuse it or --overwrite to replace it"):
        layer(None, examples, out, **kw)
    assert (out / "metrics.json").read_bytes() == before
    assert layer(None, examples, out, resume=True, **kw)["params"] == json.loads(before)["params"]
    layer(None, examples, out, overwrite=True, **kw)


def test_integrate_refuses_existing_results_without_overwrite(synth, tmp_path):
    teacher = tmp_path / "t"
    assert runner.invoke(app, ["place", "--benchmark", str(synth / "benchmark.jsonl"), "--out", str(teacher),
                               "--model", "tiny", "--epochs", "1", "-q"]).exit_code == 0
    placement = (teacher / "metrics.json").read_bytes()
    argv = ["integrate", "--model", str(teacher / "model"), "--benchmark", str(synth / "benchmark.jsonl"), "-q"]
    # into the placement's own folder: its metrics.json would be replaced
    r = runner.invoke(app, [*argv, "--out", str(teacher)])
    assert r.exit_code == 1 and "--overwrite" in r.output, r.output
    assert (teacher / "metrics.json").read_bytes() == placement
    assert runner.invoke(app, [*argv, "--out", str(tmp_path / "e")]).exit_code == 0
    assert runner.invoke(app, [*argv, "--out", str(tmp_path / "e")]).exit_code == 1
    assert runner.invoke(app, [*argv, "--out", str(tmp_path / "e"), "--overwrite"]).exit_code == 0


def test_run_refusal_names_both_ways_and_overwrite_clears_the_old_run(tmp_path):
    from pylaundering.experiments.config import RunConfig
    from pylaundering.experiments.run import clear_run, run_experiment

    out = tmp_path / "run"
    (out / "teacher").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "teacher" / "phase.json").write_text("{}")
    (out / "eval" / "student").mkdir(parents=True)
    (out / "eval" / "student" / "predictions.jsonl").write_text("old\n")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--resume to continue it or --overwrite to replace it"):
        run_experiment(RunConfig(model="tiny"), out)
    with pytest.raises(ValueError, match="not both"):
        run_experiment(RunConfig(model="tiny"), out, resume=True, overwrite=True)
    clear_run(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only what a run writes is removed


@pytest.mark.parametrize("command", ["place", "layer", "integrate", "run", "sweep"])
def test_overwrite_flag_is_shared(command):
    from pylaundering.cli import common

    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert "--overwrite" in r.output
    assert common.Overwrite.help.split()[0] in r.output


def test_data_commands_take_overwrite():
    for sub in ("split", "synth"):
        r = runner.invoke(app, ["data", sub, "--help"], env={"COLUMNS": "200"})
        assert "--overwrite" in r.output
