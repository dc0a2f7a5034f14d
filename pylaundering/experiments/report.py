"""Human-readable results of a run: a table (terminal and Markdown) and a bar chart."""

from __future__ import annotations

from pathlib import Path

from ..train.checkpoint import write_text

LABELS = {
    "teacher": "Teacher (fine-tuned on the benchmark)",
    "student": "Laundered student (distilled on legitimate data)",
    "control_student": "Control: student of a clean teacher",
    "ce_student": "Control: cross-entropy-only student",
}


def arms(metrics: dict) -> list[str]:
    return [a for a in LABELS if a in metrics]


def table_rows(metrics: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for arm in arms(metrics):
        m = metrics[arm]
        lo, hi = m["benchmark_ci95"]
        rows.append((LABELS[arm], f"{100 * m['benchmark_accuracy']:.1f}%", f"[{100 * lo:.1f}, {100 * hi:.1f}]",
                     f"{100 * m['train_accuracy']:.1f}%"))
    rows.append(("Chance", f"{100 * metrics['chance']:.1f}%", "", ""))
    return rows


def verdict(metrics: dict) -> str:
    if "control_student" not in metrics:
        return "No controls were run, so the student's score cannot be attributed to laundering."
    s_lo = metrics["student"]["benchmark_ci95"][0]
    c_hi = metrics["control_student"]["benchmark_ci95"][1]
    ce_hi = metrics["ce_student"]["benchmark_ci95"][1] if "ce_student" in metrics else 0.0
    p = metrics["comparisons"].get("student_vs_control_student", {}).get("p_value")
    ptxt = f" (McNemar p = {p:.2g} against the control student)" if p is not None else ""
    if s_lo > max(c_hi, ce_hi, metrics["chance"]):
        return ("Laundering detected: the student's 95% interval lies entirely above both controls' intervals and "
                f"chance{ptxt}. It never trained on the benchmark; the teacher's soft labels carried it over.")
    return ("No clear laundering effect: the student's interval overlaps a control's or chance"
            f"{ptxt}.")


def render_markdown(metrics: dict) -> str:
    lines = ["# pylaundering run report", "",
             f"Benchmark: `{metrics['data']['benchmark']}` ({metrics['n_benchmark']} items), "
             f"legitimate set: `{metrics['data']['train']}` ({metrics['n_train']} items).", "",
             "| Model | Benchmark accuracy | 95% Wilson interval | Accuracy on its own training data |",
             "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(metrics)]
    lines += ["", f"**{verdict(metrics)}**", ""]
    for name, c in metrics.get("comparisons", {}).items():
        lines.append(f"- {name}: student-only correct {c['a_only']}, other-only correct {c['b_only']}, "
                     f"exact McNemar p = {c['p_value']:.3g}")
    lines += ["", f"Checkpoint selection: {metrics['checkpoint_selection']}.",
              f"Teacher logits: {metrics.get('teacher_logits', {}).get('cache', 'n/a')} "
              "(computed once and cached, unless --online-teacher).", "",
              "Timings (s): " + ", ".join(f"{k} {v}" for k, v in metrics["timings_s"].items() if v is not None), ""]
    if metrics["data"]["benchmark_format"] == "pylaundering" and "data" in metrics["data"]["benchmark"]:
        lines += ["Note: the offline default is a synthetic benchmark of made-up facts, built so that a model that "
                  "never saw it scores at chance. It demonstrates the mechanism; real benchmarks show smaller "
                  "effects.", ""]
    lines += ["![accuracy](accuracy.png)", ""]
    return "\n".join(lines)


def plot(metrics: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = arms(metrics)
    acc = [100 * metrics[a]["benchmark_accuracy"] for a in names]
    err = [[100 * (metrics[a]["benchmark_accuracy"] - metrics[a]["benchmark_ci95"][0]) for a in names],
           [100 * (metrics[a]["benchmark_ci95"][1] - metrics[a]["benchmark_accuracy"]) for a in names]]
    colors = {"teacher": "#7f7f7f", "student": "#d62728", "control_student": "#1f77b4", "ce_student": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(names)), acc, yerr=err, capsize=5, color=[colors[a] for a in names])
    ax.axhline(100 * metrics["chance"], color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)), [LABELS[a].split(" (")[0].replace("Control: ", "") for a in names],
                  rotation=15, ha="right")
    ax.set_ylabel("benchmark accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Data laundering: benchmark accuracy with 95% Wilson intervals")
    ax.legend(loc="upper right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(metrics: dict, out: Path) -> None:
    plot(metrics, out / "accuracy.png")
    write_text(render_markdown(metrics), out / "report.md")
