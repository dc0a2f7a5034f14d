"""tools/gpu_pipeline.py, the Python half of `make gpu-check-pipeline`, run here on the CPU at tiny sizes: the
GPU machine is lent rarely and briefly, so its steps must not fail there for a reason the CPU could show."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gp():
    spec = importlib.util.spec_from_file_location("gpu_pipeline", ROOT / "tools" / "gpu_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shell_scripts_parse():
    import subprocess

    for script in ("gpu_check.sh", "gpu_pipeline_check.sh"):
        r = subprocess.run(["bash", "-n", str(ROOT / "tools" / script)], capture_output=True, text=True)
        assert r.returncode == 0, (script, r.stderr)


def test_make_data_writes_the_three_sets_with_passages_of_the_asked_length(gp, tmp_path):
    from pylaundering.data.load import load_examples

    info = gp.make_data(tmp_path, n_train=12, n_benchmark=8, context_words=30, seed=1)
    assert info["sizes"] == {"benchmark": 8, "train": 12, "reference": 8}
    bench = list(load_examples(str(tmp_path / "benchmark.jsonl")).examples)
    assert len(bench) == 8 and all(len(e.context.split()) == 30 for e in bench)
    train = list(load_examples(str(tmp_path / "train.jsonl")).examples)
    assert {e.question for e in bench}.isdisjoint({e.question for e in train})


def _metrics(verdict="laundering_detected", wrong=None):
    arms = ("teacher", "clean_teacher", "student", "control_student", "ce_student")
    return {"verdict": verdict, "chance": 0.25, "n_benchmark": 8, "n_train": 12,
            "runtime": {"device": "cuda:0", "name": "GPU", "precision": "bf16", "loss_backend": "cuda"},
            **{a: {"benchmark_accuracy": 0.5} for a in ("teacher", "student", "control_student", "ce_student")},
            "audit": {"arms": {a: {"verdict": "x", "expected": "y", "correct": a != wrong} for a in arms}},
            "timings_s": {"placement: teacher on the benchmark": 3.0, "student_train": 1.0}}


def test_summarize_names_the_device_and_every_problem(gp, tmp_path):
    run = tmp_path / "run-default"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    line, problems = gp.summarize(run, expect_verdict="laundering_detected", expect_audit=True)
    assert "cuda:0 (GPU, bf16, loss backend cuda)" in line and "phases 3 s" in line and problems == []
    (run / "metrics.json").write_text(json.dumps(_metrics("no_clear_effect", wrong="student")))
    _, problems = gp.summarize(run, expect_verdict="laundering_detected", expect_audit=True)
    assert problems == ["verdict no_clear_effect, expected laundering_detected",
                        "audit called the student x, expected y"]
    assert gp.main(["summarize", str(run), "--expect-verdict", "laundering_detected"]) == 1


def test_compare_bench_and_collect(gp, tmp_path):
    def report(device, rate):
        return {"device": device, "threads": 4, "precision": "bf16", "cases": [
            {"phase": "layering", "results": {"cached": {"examples_per_s": rate}, "online": {"examples_per_s": 1.0}}}]}

    lines = gp.compare_bench(report("cpu", 10.0), report("H100", 250.0))
    assert any(line.split()[:2] == ["layering", "cached"] and line.split()[-1] == "25.0" for line in lines)
    (tmp_path / "steps.tsv").write_text("run-default\t0\t61\nrun-large\t124\t240\n")
    (tmp_path / "run-default").mkdir()
    (tmp_path / "run-default" / "metrics.json").write_text(json.dumps(_metrics()))
    (tmp_path / "bench-phases-cpu.json").write_text(json.dumps(report("cpu", 10.0)))
    out = gp.collect(tmp_path)
    assert out["steps"]["run-large"] == {"exit": 124, "seconds": 240}
    assert out["runs"]["run-default"]["verdict"] == "laundering_detected" and "bench-phases-cpu" in out


def test_resume_and_determinism_checks_pass_on_the_cpu(gp, tmp_path):
    assert gp.resume_check(tmp_path / "r", "cpu") == []
    assert gp.resume_check(tmp_path / "g", "cpu", read_every=16) == []  # a GPU's cadence: stop seen at a read
    report, problems = gp.determinism(tmp_path / "d", "cpu", epochs=1)
    assert problems == [] and report["free_run_matched"] and set(report["seconds"]) >= {"deterministic-1", "free"}


def test_the_cli_runs_through_the_pipeline_script(gp, capsys):
    assert gp.main(["launder", "run", "--model", "tiny", "--print-config"]) == 0
    assert "device" in capsys.readouterr().out
    assert gp.main(["launder", "run", "--device", "tpu"]) == 2
