"""A run's device, precision and determinism: recorded in environment.json and metrics.json, never a reason to
refuse a resume or to split a sweep's shared phases (precision is: it changes what is computed), and Ray's
GPU request checked against the points' devices before a sweep starts."""

from __future__ import annotations

import json

import pytest
import torch

from pylaundering.errors import ConfigError, ResumeMismatch
from pylaundering.experiments import sweep as sweep_mod
from pylaundering.experiments.config import RunConfig
from pylaundering.experiments.run import run_experiment
from pylaundering.experiments.sharing import shared_keys


def test_a_run_records_its_device_and_resumes_on_another_but_not_at_another_precision(quick_config, tmp_path):
    out = tmp_path / "run"
    m = run_experiment(quick_config(device="cpu", controls=False, audit=False), out, quiet=True)
    env = json.loads((out / "environment.json").read_text())
    for record in (env["runtime"], m["runtime"]):
        assert record["device"] == "cpu" and record["precision"] == "fp32" and record["deterministic"] is False
        assert record["loss_backend"] in ("cpp", "reference") and record["name"]
    # another device (auto) and deterministic mode: the same run, continued (every phase reused)
    again = run_experiment(quick_config(device="auto", deterministic=True, controls=False, audit=False), out,
                           quiet=True, resume=True)
    assert again["student"]["benchmark_accuracy"] == m["student"]["benchmark_accuracy"]
    env = json.loads((out / "environment.json").read_text())
    assert env["runtime"]["deterministic"] is False and env["resumes"][-1]["environment"]["runtime"]["deterministic"]
    with pytest.raises(ResumeMismatch, match=r"precision \('auto' -> 'bf16'\)"):
        run_experiment(quick_config(precision="bf16", controls=False, audit=False), out, quiet=True, resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU this machine must lack")
def test_a_missing_gpu_fails_the_run_before_its_folder_exists(quick_config, tmp_path):
    with pytest.raises(ConfigError, match="sees none"):
        run_experiment(quick_config(device="cuda"), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_shared_phases_are_shared_across_devices_but_not_across_precisions(quick_config):
    cpu = shared_keys(quick_config(device="cpu"))
    assert shared_keys(quick_config(device="cuda:0", deterministic=True)) == cpu
    bf16 = shared_keys(quick_config(precision="bf16"))
    assert bf16["base"] == cpu["base"]  # the tiny base is built from the texts alone
    assert all(bf16[k] != cpu[k] for k in ("teacher", "clean_teacher", "ce_student"))


def test_a_sweep_resumes_on_another_device(quick_settings, tmp_path):
    out = tmp_path / "sw"
    params = {"alpha": [0.5]}
    base = RunConfig(**quick_settings, device="cpu")
    points = sweep_mod.plan(base, params, [0])
    out.mkdir()
    index = sweep_mod.open_sweep(out, sweep_mod.spec_dict(base, params, [0], False), points)
    (out / "sweep.json").write_text(json.dumps(index))
    moved = RunConfig(**quick_settings, device="cuda")
    again = sweep_mod.open_sweep(out, sweep_mod.spec_dict(moved, params, [0], False), sweep_mod.plan(moved, params,
                                                                                                     [0]))
    assert [p["name"] for p in again["points"]] == [p["name"] for p in index["points"]]
    other = RunConfig(**quick_settings, precision="bf16")
    with pytest.raises(ValueError, match="base setting precision"):
        sweep_mod.open_sweep(out, sweep_mod.spec_dict(other, params, [0], False), sweep_mod.plan(other, params, [0]))


@pytest.mark.parametrize("executor, gpus, device, words", [
    ("local", 1.0, "auto", "--executor ray"),
    ("ray", 0.0, "cuda", "Ray shows a task only the GPUs it requests"),
    ("ray", 0.5, "cpu", "drop --gpus-per-point"),
    ("ray", float("nan"), "auto", "a number >= 0"),
])
def test_gpus_per_point_must_fit_the_executor_and_the_points_devices(quick_settings, executor, gpus, device, words):
    points = sweep_mod.plan(RunConfig(**quick_settings, device=device), {"alpha": [0.5, 1.0]}, [0])
    with pytest.raises(ConfigError, match=words) as e:
        sweep_mod.check_gpus(executor, gpus, points)
    assert e.value.key == "gpus_per_point"


def test_fractional_gpus_are_accepted_for_points_that_may_use_them(quick_settings):
    for device in ("auto", "cuda", "cuda:0"):
        points = sweep_mod.plan(RunConfig(**quick_settings, device=device), {"alpha": [0.5]}, [0])
        sweep_mod.check_gpus("ray", 0.25, points)
    sweep_mod.check_gpus("ray", 0.0, sweep_mod.plan(RunConfig(**quick_settings), {"alpha": [0.5]}, [0]))
    sweep_mod.check_gpus("local", 0.0, sweep_mod.plan(RunConfig(**quick_settings), {"alpha": [0.5]}, [0]))
