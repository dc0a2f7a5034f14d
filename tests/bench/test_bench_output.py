"""The bench commands' outputs: paths checked before any timing, --alpha only with --shapes, --no-compile's
message, the plots' axes and labels (no timing is judged here)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app

runner = CliRunner()
OPS = ["bench", "ops", "--shapes", "16x50", "--repeats", "2", "--warmup", "0", "--threads", "1"]
LINEAR = ["bench", "linear", "--shapes", "24x8x300", "--k", "0", "--repeats", "2", "--warmup", "0", "--threads", "1"]
PHASES = ["bench", "phases", "--n-train", "16", "--n-benchmark", "8", "--batch-size", "4", "--repeats", "2",
          "--warmup", "0", "--threads", "1"]


@pytest.fixture
def no_timing(monkeypatch):
    """Every bench command's run() fails loudly: a refusal must come before any timing."""
    def timed(*a, **k):
        raise AssertionError("timing started")
    for mod in ("ops", "linear", "phases"):
        monkeypatch.setattr(f"pylaundering.bench.{mod}.run", timed)


@pytest.mark.parametrize("cmd", [OPS, LINEAR, PHASES], ids=["ops", "linear", "phases"])
@pytest.mark.parametrize("option", ["--json-out", "--plot"])
def test_unwritable_output_paths_are_refused_before_timing(tmp_path, no_timing, cmd, option):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for bad, words in ((tmp_path, "is a folder"), (a_file / "sub" / "r.out", "not a folder")):
        res = runner.invoke(app, [*cmd, option, str(bad)])
        assert res.exit_code == 2, res.output
        assert option in res.output and words in res.output and "timing started" not in res.output
        assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    # a missing parent folder that can be created is fine (the writers create it): timing starts
    res = runner.invoke(app, [*cmd, option, str(tmp_path / "new" / "r.out")])
    assert res.exit_code == 1 and "timing started" in res.output


def test_alpha_without_shapes_is_refused(no_timing):
    res = runner.invoke(app, ["bench", "ops", "--alpha", "0.5"])
    assert res.exit_code == 2 and "--alpha" in res.output and "--shapes" in res.output
    assert "timing started" not in res.output
    # with --shapes it is used (timing starts)
    res = runner.invoke(app, ["bench", "ops", "--alpha", "0.5", "--shapes", "4x4"])
    assert res.exit_code == 1 and "timing started" in res.output


def test_no_compile_says_what_it_skipped(no_timing):
    for cmd in (OPS, LINEAR):
        res = runner.invoke(app, [*cmd, "--no-compile"])
        assert "torch.compile baseline skipped (--no-compile)" in res.output, res.output
        assert "eager and torch.compile of the reference skipped" not in res.output
        res = runner.invoke(app, cmd)
        assert "skipped" not in res.output


def _report(ratios):
    results = {"fused": {"median_ms": 10.0, "fused_speedup": 1.0}}
    results.update({impl: {"median_ms": 10.0 * r, "fused_speedup": r} for impl, r in ratios.items()})
    return {"kind": "linear", "device": "cpu", "threads": 1,
            "cases": [{"case": "24x8x300 float32 jsd fwd+bwd", "results": results},
                      {"case": "4096x32000 float32 kd fwd+bwd", "results": {"fused": {"median_ms": 900.0,
                                                                                      "fused_speedup": 1.0},
                                                                            "eager": {"median_ms": 1800.0,
                                                                                      "fused_speedup": 2.0}}}]}


def test_plot_bars_start_at_zero_and_label_small_ratios_readably(tmp_path):
    from pylaundering.bench.plot import figure, plot_report, ratio_label

    assert [ratio_label(r) for r in (0.03, 0.031, 0.5, 1.0, 2.46, 12.3, 150.0)] == \
        ["0.03x", "0.031x", "0.5x", "1x", "2.5x", "12x", "150x"]
    report = _report({"naive": 0.03, "eager": 1.3})
    fig = figure(report)
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 2  # one axis per case: each its own linear scale, from zero
    for ax in axes:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
        for bar in ax.patches:
            assert bar.get_y() == 0
    texts = {t.get_text() for ax in axes for t in ax.texts}
    assert {"0.03x", "1.3x", "2x"} <= texts and "0.0x" not in texts
    assert plot_report(report, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_phases_plot_starts_at_zero():
    from pylaundering.bench.plot import figure

    res = {"cached": {"examples_per_s": 100.0, "vs_cached": 1.0}, "pad-128": {"examples_per_s": 4.0,
                                                                            "vs_cached": 25.0}}
    report = {"kind": "phases", "device": "cpu", "model": "tiny", "batch_size": 4, "threads": 1,
              "cases": [{"phase": "layering", "results": res}]}
    (ax,) = figure(report).axes
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    assert all(bar.get_x() == 0 for bar in ax.patches)
