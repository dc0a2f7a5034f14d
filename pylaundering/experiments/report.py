"""Human-readable results of a run: a table (terminal and Markdown) and a bar chart."""

from __future__ import annotations

from pathlib import Path

from ..train.checkpoint import write_text
from .run_audit import b_specific

LABELS = {
    "teacher": "Teacher (fine-tuned on the benchmark)",
    "student": "Laundered student (distilled on legitimate data)",
    "control_student": "Control: student of a clean teacher",
    "ce_student": "Control: cross-entropy-only student",
}


def _tick(label: str) -> str:
    """A bar's label: the arm's name without its parenthesis or 'Control: ', capitalised like the others."""
    short = label.split(" (")[0]
    if short.startswith("Control: "):
        short = short[len("Control: "):]
        short = short[:1].upper() + short[1:]
    return short


def arms(metrics: dict) -> list[str]:
    return [a for a in LABELS if a in metrics]


def table_rows(metrics: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for arm in arms(metrics):
        m = metrics[arm]
        lo, hi = m["benchmark_ci95"]
        train_acc = m.get("train_accuracy")  # None: a token-level student has no choices to be right on
        rows.append((LABELS[arm], f"{100 * m['benchmark_accuracy']:.1f}%", f"[{100 * lo:.1f}, {100 * hi:.1f}]",
                     "-" if train_acc is None else f"{100 * train_acc:.1f}%"))
    rows.append(("Chance", f"{100 * metrics['chance']:.1f}%", "", ""))
    return rows


#: The primary test's threshold: the label follows it alone (the Wilson intervals, the bootstrap and the CE-only
#: student are reported beside it, never a second condition that could contradict it).
P_DETECT = 0.01
VERDICT_RULE = (
    "Verdict rule: `train_contains_benchmark_items` when the legitimate set holds exact copies of benchmark items; "
    "else `no_controls` when no control student was trained; else `laundering_detected` when the primary test, the "
    "exact McNemar test (two-sided) of the student against the control student on the same benchmark items, gives "
    f"p < {P_DETECT} and the student is right on more of the items they disagree on (a positive excess); else "
    "`no_clear_effect`. The paired bootstrap, the CE-only student's comparison and the audit are further evidence, "
    "not part of the rule.")


def verdict(metrics: dict) -> tuple[str, str]:
    """(code, sentence): laundering_detected | no_clear_effect | no_controls | train_contains_benchmark_items,
    by VERDICT_RULE."""
    overlap = metrics.get("data", {}).get("overlap") or {}
    if overlap.get("exact_duplicates", 0) > 0:
        return ("train_contains_benchmark_items",
                f"Not laundering: the legitimate set holds {overlap['exact_duplicates']} exact copies of benchmark "
                "items, so the student saw benchmark items; its score cannot be attributed to the teacher's soft "
                "labels.")
    if "control_student" not in metrics:
        return "no_controls", "No controls were run, so the student's score cannot be attributed to laundering."
    vs = metrics.get("comparisons", {}).get("student_vs_control_student") or {}
    p = vs.get("p_value")
    if p is None:
        return "no_clear_effect", "No clear laundering effect: no paired comparison with the control student."
    excess = vs.get("a_only", 0) - vs.get("b_only", 0)
    s_lo = metrics["student"]["benchmark_ci95"][0]
    c_hi = metrics["control_student"]["benchmark_ci95"][1]
    ce_hi = metrics["ce_student"]["benchmark_ci95"][1] if "ce_student" in metrics else 0.0
    separated = s_lo > max(c_hi, ce_hi, metrics["chance"])
    test = f"exact McNemar p = {p:.2g} against the control student"
    if p < P_DETECT and excess > 0:
        return ("laundering_detected",
                f"Laundering detected: the student beats the control student on the same items ({test} < "
                f"{P_DETECT}; right on {vs.get('a_only')} items the control missed, wrong on {vs.get('b_only')} it "
                "got)" + ("; its 95% interval lies entirely above both controls' and chance" if separated else "")
                + ". It never trained on the benchmark; the teacher's soft labels carried it over.")
    why = (f"{test} >= {P_DETECT}" if p >= P_DETECT else
           f"{test}, but the student is right on fewer of the disputed items ({vs.get('a_only')} against "
           f"{vs.get('b_only')})")
    return "no_clear_effect", f"No clear laundering effect: {why}."


def _p(p: float, resamples: int) -> str:
    """A resampling p-value: '= 0.012'; '<= 1e-04' at the +1-corrected floor 1 / (resamples + 1) (no resample
    reached the observed value; older metrics.json files recorded 0 there)."""
    floor = 1 / (resamples + 1)
    return f"<= {floor:.2g}" if p <= floor * (1 + 1e-9) else f"= {p:.3g}"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _source(data: dict, role: str, n: int) -> str:
    """How a dataset was read: source, format, subset and split where known, items, skipped rows."""
    how = [f"format {data[f'{role}_format']}"] if data.get(f"{role}_format") else []
    how += [f"{k} {data[f'{role}_{k}']}" for k in ("subset", "split") if data.get(f"{role}_{k}")]
    how.append(f"{n} items")
    skipped = data.get(f"{role}_skipped") or 0
    if skipped:
        how.append(f"{skipped} malformed row{'s' if skipped != 1 else ''} skipped")
    return f"`{data[role]}` ({', '.join(how)})"


#: The data roles of a run, as the report names them
ROLES = (("benchmark", "Benchmark"), ("train", "Legitimate set"), ("reference", "Reference set"))


def _label_lines(data: dict) -> list[str]:
    """The run's label set (classification) and, one line per role, how each source wrote its answers; a blank
    line after them (none when metrics.json predates them)."""
    lines = []
    ls = data.get("label_set")
    if ls:
        shown = ", ".join(ls["names"][:8]) + (f", ... ({ls['count']} in all)" if ls["count"] > 8 else "")
        lines.append(f"Label set: {ls['count']} classes ({shown}); from {ls['source']}. Every model has one output "
                     "per class, and every set is matched to it by class name.")
    conventions = data.get("label_conventions") or {}
    lines += [f"- {name} labels: {conventions[role]}." for role, name in ROLES if conventions.get(role)]
    return lines + [""] if lines else lines


def render_markdown(metrics: dict) -> str:
    data = metrics["data"]
    lines = ["# pylaundering run report", "",
             f"Benchmark: {_source(data, 'benchmark', metrics['n_benchmark'])}, "
             f"legitimate set: {_source(data, 'train', metrics['n_train'])}. Task: "
             + ("text classification (a sequence-classification head over the label set; the counter-study's "
                "setting)" if metrics.get("task") == "classification" else
                "multiple choice at token level (causal LMs: the teacher fine-tuned on the benchmark items written "
                "as text, the students distilled on next-token distributions of the legitimate items written as "
                "text, every model scored by the log-likelihood of each choice after the item's prompt)"
                if metrics.get("level") == "token" else
                "multiple choice (each question + choice scored; the paper's setting)") + ".", "",
             *_label_lines(data),
             "| Model | Benchmark accuracy | 95% Wilson interval | Accuracy on its own training data |",
             "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(metrics)]
    text = metrics.get("verdict_text") or verdict(metrics)[1]
    lines += ["", f"**{text}**", "", VERDICT_RULE, ""]
    for w in metrics.get("warnings", []):
        lines.append(f"- Warning: {w}.")
    if metrics.get("warnings"):
        lines.append("")
    for name, c in metrics.get("comparisons", {}).items():
        line = (f"- {name}: student-only correct {c['a_only']}, other-only correct {c['b_only']}, "
                f"exact McNemar p = {c['p_value']:.3g}")
        bs = c.get("bootstrap")
        if bs:
            lo, hi = bs["ci95"]
            line += (f"; excess accuracy {100 * bs['diff']:+.1f} points, 95% paired-bootstrap interval "
                     f"[{100 * lo:+.1f}, {100 * hi:+.1f}], one-sided bootstrap p {_p(bs['p_value'], bs['resamples'])} "
                     f"({bs['resamples']} resamples)")
        lines.append(line)
    audit = metrics.get("audit")
    if audit and audit.get("arms"):
        ref = audit["reference"]
        lines += ["", f"Audit (`launder audit`, each model on the benchmark vs the reference set `{ref['source']}`, "
                  f"{ref['n']} items that no model here saw):", "",
                  "| Model | Verdict | Expected | Score (z) | Core p | Accuracy benchmark / reference |",
                  "|---|---|---|---|---|---|"]
        for arm, a in audit["arms"].items():
            flag = "" if a["correct"] else {"insufficient_data": " (too few items to decide)",
                                             "not_comparable": " (reference set not comparable)"}.get(a["verdict"],
                                                                                                      " (wrong)")
            lines.append(f"| {arm.replace('_', ' ')} | **{a['verdict']}**{flag} | {a['expected']} | {a['score']:.2f} | "
                         f"{a['core_p']:.3g} | {_pct(a['accuracy_benchmark'])} / {_pct(a['accuracy_reference'])} |")
        spec = b_specific(audit["arms"])
        if spec["b_specific"] is not None:
            st, co = audit["arms"]["student"], audit["arms"]["control_student"]
            gap = 100 * (st["accuracy_benchmark"] - st["accuracy_reference"])
            gap_c = 100 * (co["accuracy_benchmark"] - co["accuracy_reference"])
            lines += ["", f"Specific to the benchmark's items: the student's accuracy on the benchmark minus on the "
                      f"reference set, {gap:+.1f} points, against its control's {gap_c:+.1f}: "
                      f"**{100 * spec['b_specific']:+.1f} points**"
                      + ("" if spec["b_specific_p"] is None else
                         f" (the audit's control test over items: p = {spec['b_specific_p']:.3g})")
                      + ". The excess on the benchmark alone also moves with the student's general skill, which a "
                      "teacher that memorised the benchmark can lower; this difference takes that out."]
        lines += ["", "Thresholds and their false-positive rates: `audit/<model>/audit.md`."]
    elif audit and audit.get("skipped"):
        lines += ["", f"Audit: not run ({audit['skipped']})."]
    dist = metrics.get("distance")
    if dist and dist.get("value") is not None:
        lines += ["", f"Distance of the legitimate set from the benchmark: MMD^2 = {dist['value']:.4f} "
                  f"(permutation p = {dist['p_value']:.3g}; {dist['method']}, {dist['n_benchmark']} + "
                  f"{dist['n_train']} items, embeddings of `{dist['model']}`)."]
    elif dist and dist.get("error"):
        lines += ["", f"Distance of the legitimate set from the benchmark: not measured ({dist['error']})."]
    teachers = [(label, metrics[arm]) for arm, label in (("teacher", "Teacher"), ("clean_teacher", "Clean teacher"))
                if arm in metrics and "training" in metrics[arm]]
    if teachers:
        lines += ["", "| Teacher | Training accuracy (final / last epoch) | Steps | Epochs | Stopped by |",
                  "|---|---|---|---|---|"]
        for label, m in teachers:
            t = m["training"]
            lines.append(f"| {label} | {_pct(m['train_accuracy'])} / {_pct(t['last_epoch_train_accuracy'])} | "
                         f"{t['steps']} | {t['epochs_run']} | {t['stop_reason']} |")
    budget = metrics.get("control_budget")
    if budget:
        lines += ["", f"Control budget ({budget['rule']}): {budget['why']}"]
    ml = metrics.get("max_length") or {}
    token = metrics.get("level") == "token"
    for arm, t in (data.get("text_truncation") or {}).items():
        lines.append(f"Text length ({arm.replace('_', ' ')}): {t['truncated']} of {t['documents']} documents cut at "
                     f"{t['max_length']} tokens ({t['tokens_dropped']} tokens dropped).")
    if ml.get("value") is not None and not token:
        whose = "each dataset's" if ml.get("covers") == "each dataset" else "the"  # older runs: the pool
        cover = ("every text whole, up to the model's limit" if metrics.get("task") == "classification" else
                 f"{100 * (ml.get('coverage') or 0):.0f}% of {whose} sequences and every question whole")
        how = f"chosen to cover {cover}" if ml.get("chosen") == "auto" else "as configured"
        lines += ["", f"Max length: {ml['value']} tokens ({how})."]
    for name, t in (data.get("truncation") or {}).items():
        if t.get("truncated_sequences"):
            lines.append(f"Truncation ({name}): {t['truncated_sequences']} of {t['sequences']} sequences cut "
                         f"(context {t.get('context_truncated', 0)}, question {t.get('question_truncated', 0)}, "
                         f"choice {t.get('choice_truncated', 0)}).")
    ov = data.get("overlap")
    if ov:
        lines += ["", f"Benchmark/training overlap ({ov.get('method', '?')}): {ov.get('exact_duplicates', 0)} exact "
                  f"duplicates, {ov.get('question_duplicates', 0)} question duplicates of "
                  f"{ov.get('benchmark_items', metrics['n_benchmark'])} benchmark items "
                  f"(rate {100 * (ov.get('rate') or 0):.1f}%)."]
    rt = metrics.get("runtime")
    if rt:
        mem = f", {rt['memory_gib']} GiB" if rt.get("memory_gib") else ""
        det = (f"; deterministic algorithms on (CUBLAS_WORKSPACE_CONFIG={rt.get('cublas_workspace_config')}; "
               "`make gpu-check-pipeline` measures what they cost)") if rt.get("deterministic") else ""
        lines += ["", f"Device: {rt['device']} ({rt['name']}{mem}), precision {rt['precision']}, "
                      f"loss kernels {rt['loss_backend']}{det}."]
    lines += ["", f"Checkpoint selection: {metrics['checkpoint_selection']}.",
              ("Teacher distributions: computed online each step through the fused LM-head op (no [tokens, V] "
               "logits of either model held)." if token else
               f"Teacher logits: {metrics.get('teacher_logits', {}).get('cache', 'n/a')} "
               "(computed once and cached, unless --online-teacher)."), "",
              "Timings (s): " + ", ".join(f"{k} {v}" for k, v in metrics["timings_s"].items() if v is not None), ""]
    if data["benchmark_format"] == "pylaundering" and "data" in data["benchmark"]:
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
    ax.set_xticks(range(len(names)), [_tick(LABELS[a]) for a in names],
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
