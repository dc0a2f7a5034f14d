"""Non-finite settings (NaN, +-inf) are usage errors at parse time, from every path a value can come in by:
a command's flags, a TOML config, `launder sweep --param/--set` and a sweep's [sweep] table, and the phase
specs built directly. Exit 2 (as `-T 0`), one line naming the key, nothing written in --out."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.errors import ConfigError
from pylaundering.phases.specs import LayeringSpec, PlacementSpec
from pylaundering.validate import check_float, normalize_target

runner = CliRunner()
NON_FINITE = [math.nan, math.inf, -math.inf]
# a run small enough that the old code (which accepted these values) got through it quickly
BASE_RUN = ("model = 'tiny'\nsynth_benchmark = 8\nsynth_train = 16\nteacher_epochs = 1\nstudent_epochs = 1\n"
            "max_length = 32\ncontrols = false\naudit = false\n")


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("bounds", [{}, {"low": 0, "low_open": True}, {"low": 0, "high": 1}])
def test_check_float_refuses_non_finite_values(value, bounds):
    with pytest.raises(ConfigError, match=r"lr: must be a finite number, got -?(nan|inf)"):
        check_float("lr", value, **bounds)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", math.nan, math.inf])
def test_target_accuracy_refuses_non_finite_values(value):
    with pytest.raises(ConfigError, match="target_accuracy: must be a finite number"):
        normalize_target(value)


@pytest.mark.parametrize("build", [
    lambda: PlacementSpec(lr=math.inf),
    lambda: PlacementSpec(lr=math.nan),
    lambda: PlacementSpec(target_accuracy=math.nan),
    lambda: LayeringSpec.of(alpha=math.nan),
    lambda: LayeringSpec.of(temperature=math.nan),
    lambda: LayeringSpec.of(temperature=math.inf),
    lambda: LayeringSpec.of(beta=math.nan),  # kl ignores beta, but a NaN is still no setting
    lambda: LayeringSpec.of(loss="jsd", beta=math.nan),
    lambda: LayeringSpec.of(lr=math.inf),
])
def test_phase_specs_refuse_non_finite_values_as_usage_errors(build):
    with pytest.raises(ConfigError, match="must be a finite number"):
        build()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    r = runner.invoke(app, ["data", "synth", "--out", str(d), "--n-benchmark", "8", "--n-train", "16"])
    assert r.exit_code == 0, r.output
    return d


def _refused(r, out, key, message="must be a finite number"):
    assert r.exit_code == 2, r.output
    assert message in r.output and key in r.output, r.output
    assert "Traceback" not in r.output
    assert not out.exists() or not any(out.iterdir()), "refused before anything is written"


@pytest.mark.parametrize("flags, key", [
    (["--lr", "inf"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--target-accuracy", "nan"], "target_accuracy"),
])
def test_place_flags(data, tmp_path, flags, key):
    out = tmp_path / "o"
    r = runner.invoke(app, ["place", "-b", str(data / "benchmark.jsonl"), "--out", str(out), "--model", "tiny",
                            "--epochs", "1", *flags])
    _refused(r, out, key)


@pytest.mark.parametrize("flags, key, message", [
    (["--alpha", "nan"], "--alpha", "Invalid value"),  # the flag's own [0, 1] range (click) refuses NaN first
    (["-T", "nan"], "temperature", "must be a finite number"),
    (["-T", "inf"], "temperature", "must be a finite number"),
    (["--beta", "nan"], "beta", "must be a finite number"),
    (["--beta", "nan", "--loss", "jsd"], "beta", "must be a finite number"),
    (["--lr", "inf"], "lr", "must be a finite number"),
])
def test_layer_flags(data, tmp_path, flags, key, message):
    out = tmp_path / "o"
    r = runner.invoke(app, ["layer", "--teacher", str(tmp_path / "no-teacher"), "--train", str(data / "train.jsonl"),
                            "--out", str(out), "--base", "tiny", "--epochs", "1", *flags])
    _refused(r, out, key, message)


@pytest.mark.parametrize("flags, key", [
    (["--alpha", "nan"], "alpha"),
    (["-T", "nan"], "temperature"),
    (["-T", "-inf"], "temperature"),
    (["--beta", "nan"], "beta"),
    (["--target-accuracy", "nan"], "target_accuracy"),
])
def test_run_flags(tmp_path, flags, key):
    cfg, out = tmp_path / "base.toml", tmp_path / "run"
    cfg.write_text(BASE_RUN)
    r = runner.invoke(app, ["run", "--config", str(cfg), "--out", str(out), "--quiet", *flags])
    _refused(r, out, key)


@pytest.mark.parametrize("line, key", [
    ("alpha = nan", "alpha"),
    ("temperature = inf", "temperature"),
    ("beta = nan", "beta"),
    ("teacher_lr = inf", "teacher_lr"),
    ("student_lr = nan", "student_lr"),
    ("target_accuracy = nan", "target_accuracy"),
])
def test_run_toml_config(tmp_path, line, key):
    cfg, out = tmp_path / "bad.toml", tmp_path / "run"
    cfg.write_text(BASE_RUN + line + "\n")
    r = runner.invoke(app, ["run", "--config", str(cfg), "--out", str(out), "--quiet"])
    _refused(r, out, key)
    assert "bad.toml" in r.output, "the file the value came from is named"


@pytest.mark.parametrize("args, key", [
    (["--param", "alpha=0,nan"], "alpha"),
    (["--param", "temperature=inf"], "temperature"),
    (["--param", "student_lr=nan"], "student_lr"),
    (["--set", "beta=nan"], "beta"),
    (["--param", "target_accuracy=nan"], "target_accuracy"),
])
def test_sweep_params(tmp_path, args, key):
    cfg, out = tmp_path / "base.toml", tmp_path / "sweep"
    cfg.write_text("[run]\n" + BASE_RUN)
    r = runner.invoke(app, ["sweep", "--config", str(cfg), "--out", str(out), "--quiet", *args])
    _refused(r, out, key)


def test_sweep_toml_params(tmp_path):
    cfg, out = tmp_path / "sweep.toml", tmp_path / "sweep"
    cfg.write_text("[run]\n" + BASE_RUN + "[sweep]\nparams = {alpha = [0, nan]}\n")
    r = runner.invoke(app, ["sweep", "--config", str(cfg), "--out", str(out), "--quiet"])
    _refused(r, out, "alpha")
