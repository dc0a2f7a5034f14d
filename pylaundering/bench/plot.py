"""The benchmark report as a figure: median time per case and implementation (log scale), with
each implementation's time relative to the fused op written on its bar."""

from __future__ import annotations

from pathlib import Path

COLORS = {"fused": "#d62728", "naive": "#ff7f0e", "compile": "#1f77b4", "eager": "#7f7f7f", "liger": "#2ca02c",
          "sampled": "#9467bd", "dense": "#8c564b", "ce": "#bcbd22", "dynamic": "#17becf", "cached": "#d62728",
          "online": "#ff7f0e", "pad-512": "#7f7f7f", "teacher-logits": "#bcbd22"}


def plot_report(report: dict, path: str | Path) -> Path:
    if report.get("kind") == "phases":
        from .phases import plot_phases

        return plot_phases(report, path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
