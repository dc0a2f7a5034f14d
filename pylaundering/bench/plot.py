"""The benchmark reports as figures: median time per case and implementation (log scale), with
each implementation's time relative to the fused op written on its bar; for the phases report,
examples per second of each measurement."""

from __future__ import annotations

from pathlib import Path

COLORS = {"fused": "#d62728", "naive": "#ff7f0e", "compile": "#1f77b4", "eager": "#7f7f7f", "liger": "#2ca02c",
          "sampled": "#9467bd", "dense": "#8c564b", "ce": "#bcbd22", "dynamic": "#17becf", "cached": "#d62728",
          "online": "#ff7f0e", "pad-512": "#7f7f7f", "teacher-logits": "#bcbd22"}


def _pyplot():
    import matplotlib  # import time: only a --plot needs matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_report(report: dict, path: str | Path) -> Path:
    if report.get("kind") == "phases":
        return plot_phases(report, path)
    plt = _pyplot()

    cases = report["cases"]
    impls = [i for i in COLORS if any(i in c["results"] for c in cases)]
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(cases) + 2), 4.2))
    for k, impl in enumerate(impls):
        xs, ys = [], []
        for i, c in enumerate(cases):
            r = c["results"].get(impl)
            if r is not None:
                xs.append(i + (k - (len(impls) - 1) / 2) * width)
                ys.append(r["median_ms"])
                label = f"{r['fused_speedup']:.1f}x" if impl != "fused" and "fused_speedup" in r else ""
                if label:
                    ax.text(xs[-1], ys[-1] * 1.08, label, ha="center", va="bottom", fontsize=7)
        ax.bar(xs, ys, width=width, label=impl, color=COLORS.get(impl))
    ax.set_yscale("log")
    tops = [r["median_ms"] for c in cases for r in c["results"].values()]
    if tops:
        ax.set_ylim(top=max(tops) * 2.5)  # room for the labels above the tallest bar
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([c["case"].replace(" ", "\n", 2) for c in cases], fontsize=8)
    ax.set_ylabel("median time per call (ms, log scale)")
    ax.set_title(f"pylaundering fused loss vs baselines on {report['device']} ({report.get('threads', '?')} threads)"
                 if report["device"] == "cpu" else f"pylaundering fused loss vs baselines on {report['device']}",
                 fontsize=10)
    ax.legend(fontsize=8, title="bars: ms; labels: time / fused", title_fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_phases(report: dict, path) -> Path:
    """Horizontal bars: examples per second of each measurement (log scale), labelled with the time per
    example relative to cached layering."""
    plt = _pyplot()
    rows = [(f"{c['phase']}: {impl}", r) for c in report["cases"] for impl, r in c["results"].items()]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    ys = range(len(rows))
    ax.barh(list(ys), [r["examples_per_s"] for _, r in rows],
            color=[COLORS.get(name.split(": ")[1], "#7f7f7f") for name, _ in rows])
    for y, (_, r) in zip(ys, rows):
        label = f"{r['examples_per_s']:.0f}/s" + (f"  (time {r['vs_cached']:.2f}x cached)" if "vs_cached" in r else "")
        ax.text(r["examples_per_s"] * 1.05, y, label, va="center", fontsize=8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(right=max(r["examples_per_s"] for _, r in rows) * 8)
    ax.set_xlabel("examples per second (log scale; teacher-logits: the one-off pass, per example)")
    ax.set_title(f"pylaundering phases on {report['device']}: {report['model']}, batch {report['batch_size']}, "
                 f"{report['threads']} threads", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
