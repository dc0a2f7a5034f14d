"""`launder bench ops` on tiny shapes (the numbers are not judged: speed targets live in the
benchmarks), its JSON report, plot, regression check and errors."""

from __future__ import annotations

import copy
import json

import torch
from typer.testing import CliRunner

from pylaundering.bench.compare import compare
from pylaundering.cli.app import app

runner = CliRunner()
TINY = ["bench", "ops", "--shapes", "16x50,64x4", "--repeats", "3", "--warmup", "1", "--no-compile", "--threads", "1"]


def _report(tmp_path, name="r.json", extra=()):
    out = tmp_path / name
    res = runner.invoke(app, [*TINY, "--json-out", str(out), *extra])
    return res, out


def test_bench_ops_writes_a_valid_report_and_plot(tmp_path):
    png = tmp_path / "bench.png"
    res, out = _report(tmp_path, extra=["--plot", str(png), "--profile", str(tmp_path / "prof")])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["backend"].startswith(("cpp", "reference"))
    assert [c["case"] for c in report["cases"]] == ["16x50 float32 kd fwd+bwd", "64x4 float32 kd fwd+bwd"]
    for c in report["cases"]:
        assert set(c["results"]) == {"fused", "eager"}
        for r in c["results"].values():
            assert r["median_ms"] > 0 and r["min_ms"] <= r["median_ms"] and r["repeats"] == 3
            assert r["GBps"] > 0 and 0 < r["fraction_of_copy"]
        assert c["results"]["fused"]["fused_speedup"] == 1.0
        # the copy is timed before and after the implementations and pooled: its bandwidth drifts
        cp = c["copy"]
        assert cp["GBps"] > 0 and cp["repeats"] == 6 and cp["median_ms_before"] > 0 and cp["median_ms_after"] > 0
        for r in c["results"].values():
            assert abs(r["fraction_of_copy"] - r["GBps"] / cp["GBps"]) < 1e-9 * r["fraction_of_copy"]
        # never dropped silently: each missing baseline has its reason
        assert "--no-compile" in c["missing"]["compile"] and "CUDA" in c["missing"]["liger"]
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    traces = report["profiles"]
    assert len(traces) == 2 and all(json.loads(open(t).read())["traceEvents"] for t in traces)
    assert "fused" in res.output and "copy" in res.output


def test_compare_passes_an_identical_report_and_flags_a_planted_regression(tmp_path):
    res, old = _report(tmp_path)
    assert res.exit_code == 0, res.output
    report = json.loads(old.read_text())
    same = compare(report, report)
    assert same["rows"] and not same["regressions"]
    # The noise threshold comes from the measured spreads; a 3-call timing of a microsecond op on a busy
    # machine can have a spread above 1 (a threshold above 200%). Fix the spreads: this tests the logic.
    for c in report["cases"]:
        for r in c["results"].values():
            r["spread"] = 0.02
    slower = copy.deepcopy(report)
    slower["cases"][1]["results"]["fused"]["median_ms"] *= 3  # planted: the fused op got 3x slower
    flagged = compare(slower, report)
    assert [(r["case"], r["impl"]) for r in flagged["regressions"]] == [("64x4 float32 kd fwd+bwd", "fused")]
    # within noise: a 1% change is not a regression
    noisy = copy.deepcopy(report)
    noisy["cases"][0]["results"]["fused"]["median_ms"] *= 1.01
    assert not compare(noisy, report)["regressions"]

    # through the CLI: an old report 10x faster than anything this machine does -> exit 1
    fast = copy.deepcopy(report)
    for c in fast["cases"]:
        c["results"]["fused"]["median_ms"] /= 10
        c["results"]["fused"]["spread"] = 0.0
    fast_path = tmp_path / "fast.json"
    fast_path.write_text(json.dumps(fast))
    res = runner.invoke(app, [*TINY, "--compare", str(fast_path)])
    assert res.exit_code == 1 and "REGRESSION" in res.output


def test_bench_errors_are_one_line_usage_errors(tmp_path):
    res = runner.invoke(app, ["bench", "ops", "--shapes", "4096by32000"])
    assert res.exit_code == 2 and "ROWSxV" in res.output
    res = runner.invoke(app, ["bench", "ops", "--dtype", "float8", "--shapes", "4x4"])
    assert res.exit_code == 2 and "unknown dtype" in res.output
    res = runner.invoke(app, ["bench", "ops", "--compare", str(tmp_path / "missing.json"), "--shapes", "4x4"])
    assert res.exit_code == 1 and "missing.json" in res.output
    assert "Traceback" not in res.output


LINEAR = ["bench", "linear", "--shapes", "24x8x300", "--repeats", "2", "--warmup", "0", "--no-compile",
          "--threads", "1"]


def test_bench_linear_times_every_implementation_on_the_same_loss(tmp_path):
    out, png = tmp_path / "linear.json", tmp_path / "linear.png"
    res = runner.invoke(app, [*LINEAR, "--json-out", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["kind"] == "linear" and len(report["cases"]) == 2
    case, topk = report["cases"]
    assert case["case"] == "24x8x300 float32 jsd fwd+bwd" and case["flops"] == 8 * 24 * 8 * 300
    assert {"fused", "naive", "eager"} <= set(case["results"])
    assert "--no-compile" in case["missing"]["compile"]
    assert "liger" in case["results"] or "liger-kernel" in case["missing"]["liger"]  # never dropped silently
    losses = case["losses"]
    assert not case["losses_disagree"] and abs(losses["fused"] - losses["eager"]) < 1e-4
    assert case["results"]["fused"]["fused_speedup"] == 1.0 and case["results"]["naive"]["GFLOPs"] > 0
    # the top-k case beside it: same top-k loss from kernel and formulas; the other losses are timed only
    assert topk["case"] == "24x300 k=128 float32 top-k kl fwd+bwd" and topk["kind"] == "topk"
    assert {"fused", "sampled", "eager", "dense", "ce"} <= set(topk["results"]) and not topk["losses_disagree"]
    assert abs(topk["losses"]["fused"] - topk["losses"]["eager"]) < 1e-4 * abs(topk["losses"]["eager"])
    assert topk["results"]["fused"]["GBps"] > 0 and topk["copy_gbps"] > 0
    assert "top-k kl" in res.output and "GB/s" in res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    # --k 0: no top-k case
    res0 = runner.invoke(app, [*LINEAR, "--k", "0", "--json"])
    assert res0.exit_code == 0 and len(json.loads(res0.stdout)["cases"]) == 1
    # its own report compares clean against itself, through the shared --compare path
    res = runner.invoke(app, [*LINEAR, "--compare", str(out)])
    assert res.exit_code in (0, 1) and "only in the" not in res.output


def test_bench_linear_errors_are_one_line_usage_errors():
    res = runner.invoke(app, ["bench", "linear", "--shapes", "24x300"])
    assert res.exit_code == 2 and "NxHxV" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["bench", "linear", "--device", "tpu"])
    assert res.exit_code == 2 and "expected cpu or cuda" in res.output


PHASES = ["bench", "phases", "--n-train", "32", "--n-benchmark", "16", "--batch-size", "4", "--repeats", "2",
          "--warmup", "0", "--threads", "1"]


def test_bench_phases_reports_every_phase_and_compares_with_itself(tmp_path):
    out, png = tmp_path / "phases.json", tmp_path / "phases.png"
    res = runner.invoke(app, [*PHASES, "--json-out", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["kind"] == "phases" and report["model"] == "tiny" and report["batch_size"] == 4
    got = {c["phase"]: set(c["results"]) for c in report["cases"]}
    # named for what ran: tiny's limit is 128 tokens, so the paper's pad-512 recipe pads to 128 here
    pad = f"pad-{report['pad_length']}"
    assert report["pad_length"] == 128 and pad == "pad-128"
    assert got == {"placement": {"dynamic"}, "layering": {"cached", "online", pad, "teacher-logits"},
                   "integration": {"dynamic"}}
    lay = next(c for c in report["cases"] if c["phase"] == "layering")["results"]
    assert lay["cached"]["vs_cached"] == 1.0 and all(r["examples_per_s"] > 0 for r in lay.values())
    assert report["pad_length"] >= report["max_length"]  # the recipe pads beyond what dynamic padding needs
    assert "examples/s" in res.output and png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, [*PHASES, "--compare", str(out)])
    assert res.exit_code in (0, 1) and "layering" in res.output  # every measurement is compared, not only "fused"
    res = runner.invoke(app, [*PHASES, "--device", "tpu"])
    assert res.exit_code == 2 and "expected cpu or cuda" in res.output and "Traceback" not in res.output


def test_module_entry_runs_the_linear_table_for_the_gpu_check(tmp_path, capsys):
    """`python -m pylaundering.bench linear` (what tools/gpu_check.sh runs, without the CLI): a linear and a
    top-k case per shape, as JSON."""
    import json

    from pylaundering.bench.__main__ import main

    out = tmp_path / "lin.json"
    assert main(["linear", "--shapes", "16x8x50", "--repeats", "1", "--no-compile", "--json", str(out)]) == 0
    cases = json.loads(out.read_text())["cases"]
    assert [c.get("kind", "linear") for c in cases] == ["linear", "topk"] and "fused" in cases[0]["results"]
    assert "16x8x50" in capsys.readouterr().out


def test_a_fast_call_is_timed_in_batches_and_a_cold_one_alone():
    """timeit-style autorange: after warm-up, each sample of a call shorter than MIN_SAMPLE_S averages
    enough back-to-back calls to span it; with no warm-up asked for, single cold calls are timed."""
    import time

    from pylaundering.bench import ops as B

    calls = []

    def fn():
        calls.append(time.perf_counter())
        time.sleep(B.MIN_SAMPLE_S / 8)

    samples = B._time(fn, torch.device("cpu"), repeats=4, warmup=1)
    timed = len(calls) - 1
    assert len(samples) == 4
    # the settling calls span MIN_WARMUP_S; then 4 batches of at least 2 calls each
    settle = [c for c in calls if c - calls[0] < B.MIN_WARMUP_S]
    assert len(settle) >= 2 and timed - len(settle) >= 4 * 2
    for s in samples:  # a sample is one call's time, not the batch's
        assert B.MIN_SAMPLE_S / 8 <= s < B.MIN_SAMPLE_S
    calls.clear()
    assert len(B._time(fn, torch.device("cpu"), repeats=3, warmup=0)) == 3 and len(calls) == 3
