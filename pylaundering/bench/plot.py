"""The benchmark reports as figures: median time per implementation, one panel per case (each on its own
linear axis from zero, so a bar's height is its time and no truncated axis exaggerates a gap), with each
implementation's time relative to the fused op written on its bar; for the phases report, examples per
second of each measurement (linear, from zero)."""

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


def ratio_label(r: float) -> str:
    """A time ratio, readable at any size: two significant digits below 10 (0.03x, 0.031x, 2.5x, 1x), whole
    numbers above (12x, 150x)."""
    return f"{r:.0f}x" if r >= 10 else f"{r:.2g}x"


def _color(impl: str) -> str:
    return COLORS.get(impl, COLORS["pad-512"] if impl.startswith("pad-") else "#7f7f7f")


def figure(report: dict):
    """The report's matplotlib figure (plot_report saves it)."""
    if report.get("kind") == "phases":
        return _phases_figure(report)
    plt = _pyplot()
    cases = report["cases"]
    impls = [i for i in COLORS if any(i in c["results"] for c in cases)]
    fig, axes = plt.subplots(1, max(1, len(cases)), figsize=(max(6.0, 2.4 * len(cases) + 1), 4.4), squeeze=False)
    for ax, c in zip(axes[0], cases):
        here = [i for i in impls if i in c["results"]]
        ys = [c["results"][i]["median_ms"] for i in here]
        ax.bar(range(len(here)), ys, color=[_color(i) for i in here])
        for x, impl in enumerate(here):
            r = c["results"][impl]
            if impl != "fused" and "fused_speedup" in r:
                ax.text(x, r["median_ms"], ratio_label(r["fused_speedup"]), ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, max(ys, default=1.0) * 1.15)  # from zero; room for the labels above the tallest bar
        ax.set_xticks(range(len(here)))
        ax.set_xticklabels(here, fontsize=7, rotation=45, ha="right")
        ax.set_title(c["case"].replace(" ", "\n", 1), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel("median time per call (ms)")
    where = f"{report['device']} ({report.get('threads', '?')} threads)" if report["device"] == "cpu" \
        else report["device"]
    fig.suptitle(f"pylaundering fused loss vs baselines on {where}; labels: time / fused", fontsize=10)
    fig.tight_layout()
    return fig


def _save(fig, path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_report(report: dict, path: str | Path) -> Path:
    return _save(figure(report), path)


def plot_phases(report: dict, path) -> Path:
    return _save(_phases_figure(report), path)


def _phases_figure(report: dict):
    """Horizontal bars: examples per second of each measurement (linear, from zero), labelled with the time
    per example relative to cached layering."""
    plt = _pyplot()
    rows = [(f"{c['phase']}: {impl}", impl, r) for c in report["cases"] for impl, r in c["results"].items()]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    ys = range(len(rows))
    ax.barh(list(ys), [r["examples_per_s"] for *_, r in rows], color=[_color(impl) for _, impl, _ in rows])
    for y, (*_, r) in zip(ys, rows):
        label = f"{r['examples_per_s']:.0f}/s" + (f"  (time {ratio_label(r['vs_cached'])} cached)"
                                                  if "vs_cached" in r else "")
        ax.text(r["examples_per_s"], y, " " + label, va="center", fontsize=8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([name for name, *_ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max((r["examples_per_s"] for *_, r in rows), default=1.0) * 1.6)  # room for the labels
    ax.set_xlabel("examples per second (teacher-logits: the one-off pass, per example)")
    ax.set_title(f"pylaundering phases on {report['device']}: {report['model']}, batch {report['batch_size']}, "
                 f"{report['threads']} threads", fontsize=10)
    fig.tight_layout()
    return fig
