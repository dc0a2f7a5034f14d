"""--device, --precision and --deterministic on the commands that load a model: offered with one help text, a
device this machine lacks (or fp16 on the CPU) is one line and exit 2 before anything is written, and a config
naming a GPU still prints and validates on a machine without one."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.data.schema import write_jsonl
from pylaundering.data.synth import make_synthetic

runner = CliRunner()
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU this machine must lack")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("device-cli")
    bench, train = make_synthetic(seed=0, n_benchmark=8, n_train=8)
    write_jsonl(bench, root / "bench.jsonl")
    write_jsonl(train, root / "train.jsonl")
    return root


@pytest.mark.parametrize("command, flags", [
    ("run", ["--device", "--precision", "--deterministic"]), ("place", ["--device", "--precision", "--deterministic"]),
    ("layer", ["--device", "--precision", "--deterministic"]), ("integrate", ["--device", "--precision"]),
    ("sweep", ["--device", "--precision", "--deterministic", "--gpus-per-point"]),
    ("bench phases", ["--device", "--precision"]),
])
def test_every_command_that_loads_a_model_takes_a_device(command, flags):
    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in flags:
        assert flag in result.output, (command, flag)


def _one_usage_line(result, *words):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("usage error:") and "Traceback" not in result.output, result.output
    for w in words:
        assert w in lines[0], result.output


@no_cuda
@pytest.mark.parametrize("command", ["run", "place", "layer", "integrate", "sweep", "bench"])
def test_a_cuda_device_where_there_is_none_is_one_line_before_anything_is_written(files, tmp_path, command):
    out = tmp_path / "out"
    args = {
        "run": ["run", "--model", "tiny", "--out", str(out)],
        "place": ["place", "-b", str(files / "bench.jsonl"), "--out", str(out), "--model", "tiny"],
        "layer": ["layer", "--train", str(files / "train.jsonl"), "--alpha", "0", "--out", str(out), "--model", "tiny"],
        "integrate": ["integrate", "-m", "tiny", "-b", str(files / "bench.jsonl"), "--out", str(out)],
        "sweep": ["sweep", "--model", "tiny", "-p", "alpha=0,1", "--out", str(out)],
        "bench": ["bench", "phases", "--json-out", str(out / "b.json")],
    }[command]
    _one_usage_line(runner.invoke(app, [*args, "--device", "cuda"]), "device:", "sees none", "--device cpu")
    assert not out.exists()


def test_fp16_on_the_cpu_and_an_unknown_device_are_usage_errors(files, tmp_path):
    out = tmp_path / "out"
    _one_usage_line(runner.invoke(app, ["place", "-b", str(files / "bench.jsonl"), "--out", str(out), "--device",
                                        "cpu", "--precision", "fp16"]), "precision:", "fp16 is for CUDA devices")
    _one_usage_line(runner.invoke(app, ["run", "--out", str(out), "--device", "tpu"]), "device:",
                    "expected cpu or cuda")
    _one_usage_line(runner.invoke(app, ["run", "--out", str(out), "--precision", "fp8"]), "precision:", "fp8")
    assert not out.exists()


def test_a_config_for_a_gpu_machine_prints_here_with_each_value_where_it_came_from(tmp_path):
    cfg = tmp_path / "gpu.toml"
    cfg.write_text('model = "tiny"\ndevice = "cuda:1"\nprecision = "bf16"\n')
    r = runner.invoke(app, ["run", "--config", str(cfg), "--deterministic", "--print-config", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows["device"] == {"value": "cuda:1", "origin": str(cfg)}
    assert rows["precision"] == {"value": "bf16", "origin": str(cfg)}
    assert rows["deterministic"] == {"value": True, "origin": "command line"}
    r = runner.invoke(app, ["run", "--print-config", "--json"])
    rows = json.loads(r.stdout)
    assert rows["device"]["value"] == "auto" and rows["precision"]["value"] == "auto"
    assert rows["deterministic"] == {"value": False, "origin": "default"}


def test_gpus_per_point_is_a_ray_request(tmp_path):
    _one_usage_line(runner.invoke(app, ["sweep", "--model", "tiny", "-p", "alpha=0,1", "--gpus-per-point", "0.5",
                                        "--out", str(tmp_path / "s")]), "gpus_per_point:", "--executor ray")
    assert not (tmp_path / "s").exists()


def test_info_says_what_auto_resolves_to_here():
    from pylaundering.device import runtime

    r = runner.invoke(app, ["info", "--json"])
    assert r.exit_code == 0, r.output
    auto = json.loads(r.stdout)["device_auto"]
    expected = runtime()
    assert auto["device"] == expected.device and auto["precision"] == expected.precision and auto["loss_backend"]
    assert "--device auto:" in runner.invoke(app, ["info"]).output
