"""`launder report`: the report of a study (run folders and sweeps) for a paper.

``write_study_report(paths, out)`` collects the points (collect.py) and writes into ``out``:
  points.csv    every finished point, one row, stable columns (accuracies as fractions in [0, 1])
  summary.csv   the points grouped over seeds (every varying configuration field, plus the
                benchmark): per arm n, mean, sample std and the t-based 95% interval of the mean
  report.md     the whole study: Table 1, grouped results, figures, points, warnings, failures
  table1.png    the paper's Table 1: teacher, laundered student, control and CE student per group
  fig_<field>.png  accuracy against each varying numeric field (alpha, data_size, iterations,
                temperature), bars for student_init (and loss when no line figure is drawn), and
                the student's excess over the control against the train-benchmark distance
Files of an earlier report in ``out`` with these names are replaced (a figure not drawn this time
is removed, so the folder never mixes two studies).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from . import figures as figs
from .collect import ARM_LABELS, Study, collect, columns
from .detection import detection_quality
from .detection import markdown as detection_markdown
from .groups import (
    TABLE_ARMS,
    Group,
    fmt_value,
    group_fields,
    group_rows,
    mean_ci,
    mean_std,
    pct,
    sort_value,
    summary_columns,
    summary_rows,
)
from .per_benchmark import markdown as benchmark_lines
from .per_benchmark import per_benchmark

# ------------------------------------------------------------------------------------------------
# CSV


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # round-trips exactly
    return str(v)


def csv_text(rows: list[dict], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Markdown


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    align = align or ["---"] * len(header)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(r) + " |" for r in esc)]


WARNING_KINDS = (
    (re.compile(r"^clean teacher stopped"), "the clean teacher stopped short of its target training accuracy"),
    (re.compile(r"^teacher stopped"), "the teacher stopped short of its target training accuracy"),
    (re.compile(r"were truncated"), "sequences were truncated"),
    (re.compile(r"exact copies of benchmark items"), "the training set holds exact copies of benchmark items"),
    (re.compile(r"^the (\w+ ?\w*) gives .* it learnt no usable rule"), "a model gave one prediction to nearly every "
     "benchmark item (it learnt no usable rule)"),
    (re.compile(r"^the student trained for only"), "the student trained for too few optimiser steps to show an "
     "effect that exists"),
    (re.compile(r"^models that never saw the benchmark were flagged"), "the audit flagged models that never saw the "
     "benchmark (each point's report.md says why, and the student's test against its control)"),
)


def warning_kind(text: str) -> str:
    for pattern, label in WARNING_KINDS:
        if pattern.search(text):
            return label
    return re.sub(r"\d+(\.\d+)?", "N", text).strip()


def aggregate_warnings(rows: list[dict]) -> list[dict]:
    """One entry per kind of warning: how many points raised it, which, and one example."""
    kinds: dict[str, dict] = {}
    for r in rows:
        for w in r.get("_warnings", []):
            k = kinds.setdefault(warning_kind(w), {"kind": warning_kind(w), "points": [], "example": w})
            if r["name"] not in k["points"]:
                k["points"].append(r["name"])
    return sorted(kinds.values(), key=lambda k: -len(k["points"]))


def render_markdown(study: Study, groups: list[Group], fields: list[str], figures: dict, skipped: dict,
                    warnings: list[dict]) -> str:
    rows = study.rows
    varying = study.varying
    n_points = len(rows) + len(study.failed)
    lines = ["# pylaundering study report", ""]
    lines.append(f"{len(rows)} finished point(s)" + (f", {len(study.failed)} failed or pending (listed below, not "
                                                      "plotted)" if study.failed else "") +
                 f", from {', '.join(f'`{p}`' for p in study.inputs)}.")
    if study.duplicates:
        lines.append(f"Dropped as duplicates ({len(study.duplicates)}: the same configuration and seed as a run kept, "
                     "so not another seed): " + "; ".join(f"`{d['source']}` (same as {d['same_as']})"
                                                           for d in study.duplicates) + ".")
    lines.append("")
    lines.append("Varying: " + (", ".join(f"**{f}** ({', '.join(fmt_value(v) for v in _distinct(rows, f))})"
                                          for f in varying) if varying else "nothing but the seed") + ".")
    constant = [f for f in ("benchmark", "train", "model", "loss", "alpha", "temperature", "data_size", "iterations",
                            "student_init", "student_layers") if f not in varying]
    lines.append("Constant: " + ", ".join(f"{f} = {fmt_value(rows[0].get(f))}" for f in constant) + ".")
    counts = sorted({g.n for g in groups})
    lines.append(f"Seeds per group: {_seed_count_text(groups)}" + (
        " (groups with one seed have no standard deviation or interval of the mean)" if 1 in counts else "") + ".")
    short = [g for g in groups if g.n < counts[-1]]
    if short and len(short) <= 10:
        varying_keys = [f for f in fields if f in varying]
        lines.append("Fewer seeds: " + "; ".join(
            (", ".join(f"{f} = {fmt_value(g.key[f])}" for f in varying_keys) or "the group")
            + f" ({g.n}: seeds {', '.join(map(str, g.seeds))})" for g in short) + ".")
    lines += ["", "Accuracies are percentages; `data_size` is the number of legitimate examples the students trained "
              "on (the whole legitimate set when not set). Intervals of a mean over seeds are t-based 95% intervals "
              "(n - 1 degrees of freedom); a single run's interval is its 95% Wilson interval. points.csv and "
              "summary.csv hold the same numbers as fractions.", ""]

    # Table 1
    lines += ["## Table 1: benchmark accuracy (mean ± std over seeds, %)", ""]
    arms = [a for a in TABLE_ARMS if any(r.get(f"{a}_acc") is not None for r in rows)]
    header = [f for f in fields] + [ARM_LABELS[a] for a in arms] + ["Chance", "Seeds"]
    body = []
    for g in groups:
        body.append([fmt_value(g.key[f]) for f in fields] + [mean_std(g.stats[f"{a}_acc"]) for a in arms]
                    + [pct(g.stats["chance"]["mean"]), str(g.n)])
    lines += _md_table(header, body)
    lines += ["", "![Table 1](table1.png)", ""]

    # Grouped results
    lines += ["## Grouped results (mean [95% interval of the mean], %)", "",
              "Excess: laundered student minus control student, in percentage points (its bootstrap interval per "
              "point is in the points table).", ""]
    header = [f for f in fields] + ["n", "Laundered student", "Control student", "CE student", "Excess (pp)",
                                    "Student train acc."]
    body = [[fmt_value(g.key[f]) for f in fields] + [str(g.n), mean_ci(g.stats["student_acc"]),
                                                     mean_ci(g.stats["control_student_acc"]),
                                                     mean_ci(g.stats["ce_student_acc"]), mean_ci(g.stats["excess"]),
                                                     mean_ci(g.stats["student_train_acc"])] for g in groups]
    lines += _md_table(header, body)
    lines.append("")

    lines += benchmark_lines(per_benchmark(rows))

    # Figures
    quality = detection_quality(rows)
    if quality is not None:
        lines += detection_markdown(quality)
    lines += ["## Figures", ""]
    for _name, info in figures.items():
        lines += [f"### {info['title']}", "", info["caption"], "", f"![{info['title']}]({info['file']})", ""]
    if skipped:
        lines += ["Not drawn:", ""]
        lines += [f"- {name}: {why}" for name, why in skipped.items()]
        lines.append("")

    # Points
    lines += ["## Points", ""]
    pfields = [f for f in varying] + ["seed"]
    has_boot = any(r.get("excess_ci_low") is not None for r in rows)
    has_dist = any(r.get("distance") is not None for r in rows)
    has_audit = any(r.get("audit") for r in rows)
    header = ["Point", *pfields, "Teacher", "Student", "Control", "CE", "Excess (pp)"]
    header += ["Bootstrap p"] if has_boot else []
    header += ["McNemar p"]
    header += ["Distance"] if has_dist else []
    header += ["Audit"] if has_audit else []
    header += ["Verdict", "Warnings"]
    body = []
    for r in rows:
        ex = "n/a" if r.get("excess") is None else f"{100 * r['excess']:+.1f}"
        if r.get("excess_ci_low") is not None:
            ex += f" [{100 * r['excess_ci_low']:+.1f}, {100 * r['excess_ci_high']:+.1f}]"
        cells = [r["name"], *(fmt_value(r.get(f)) for f in pfields),
                 *(_acc_ci(r, a) for a in ("teacher", "student", "control_student", "ce_student")), ex]
        cells += [_p(r.get("excess_p"))] if has_boot else []
        cells += [_p(r.get("mcnemar_p"))]
        cells += [fmt_value(r.get("distance"))] if has_dist else []
        cells += [r.get("audit") or "–"] if has_audit else []
        cells += [str(r.get("verdict") or "–"), str(r.get("n_warnings", 0))]
        body.append(cells)
    lines += _md_table(header, body)
    lines.append("")

    # Warnings
    lines += ["## Warnings", ""]
    if not warnings:
        lines += ["No point raised a warning.", ""]
    for w in warnings:
        k = len(w["points"])
        who = ("" if k == len(rows) else " (" + (", ".join(w["points"]) if k <= 6 else ", ".join(w["points"][:6])
                                                 + f", and {k - 6} more") + ")")
        lines.append(f"- {w['kind'][0].upper() + w['kind'][1:]} in {'all ' if k == len(rows) and k > 1 else ''}"
                     f"{k} of {len(rows)} points{who}; e.g. \"{w['example']}\".")
    if warnings:
        lines.append("")

    # Failures
    lines += ["## Failed and pending points", ""]
    if not study.failed:
        lines += [f"None: all {n_points} points finished.", ""]
    else:
        lines += _md_table(["Point", "Status", "Error", "Folder"],
                           [[f["name"], f["status"], f.get("error") or "–", f"`{f['source']}`"] for f in study.failed])
        lines.append("")
    lines += ["## Files", "", "- `points.csv`: every finished point, one row.",
              "- `summary.csv`: points grouped over seeds (mean, std, n and 95% interval of the mean per arm).",
              "- Sources: " + ", ".join(f"`{p}`" for p in study.inputs), ""]
    return "\n".join(lines)


def _seed_count_text(groups: list[Group]) -> str:
    counts: dict[int, int] = {}
    for g in groups:
        counts[g.n] = counts.get(g.n, 0) + 1
    if len(counts) == 1:
        n = next(iter(counts))
        return f"{n} in each of the {len(groups)} group(s)"
    return ", ".join(f"{n} in {c} group(s)" for n, c in sorted(counts.items(), reverse=True))


def _acc_ci(r: dict, arm: str) -> str:
    a = r.get(f"{arm}_acc")
    if a is None:
        return "–"
    lo, hi = r.get(f"{arm}_ci_low"), r.get(f"{arm}_ci_high")
    return f"{pct(a)} [{pct(lo, 0)}, {pct(hi, 0)}]" if lo is not None else pct(a)


def _p(p) -> str:
    return "–" if p is None else f"{p:.2g}"


def _distinct(rows: list[dict], f: str) -> list:
    seen = {}
    for r in rows:
        seen.setdefault(repr(r.get(f)), r.get(f))
    return sorted(seen.values(), key=sort_value)


# ------------------------------------------------------------------------------------------------


OUR_FILES = ("points.csv", "summary.csv", "report.md", "table1.png")


def write_study_report(paths, out: str | Path, *, study: Study | None = None) -> dict:
    """Collects ``paths`` and writes the report into ``out``; returns what was written."""
    from ..train.checkpoint import write_text  # import time: train imports torch, which a report never needs

    study = study or collect(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*(out / n for n in OUR_FILES), *out.glob("fig_*.png")]:
        if old.is_file():
            old.unlink()
    fields = group_fields(study)
    groups = group_rows(study.rows, fields)
    written = {}
    written["points"] = write_text(csv_text(study.rows, columns()), out / "points.csv")
    summary = summary_rows(groups, fields)
    written["summary"] = write_text(csv_text(summary, summary_columns(fields)), out / "summary.csv")
    figures, skipped = figs.draw_all(study, groups, fields, out)
    written["table1"] = out / "table1.png"
    warnings = aggregate_warnings(study.rows)
    written["report"] = write_text(render_markdown(study, groups, fields, figures, skipped, warnings),
                                   out / "report.md")
    return {
        "out": str(out),
        "files": {**{k: str(v) for k, v in written.items()},
                  **{k: str(out / v["file"]) for k, v in figures.items()}},
        "points": len(study.rows), "failed": [{k: f[k] for k in ("name", "status", "error")} for f in study.failed],
        "duplicates": study.duplicates,
        "varying": study.varying, "group_fields": fields,
        "figures": {k: v["file"] for k, v in figures.items()}, "skipped_figures": skipped,
        "warnings": [{"kind": w["kind"], "points": len(w["points"])} for w in warnings],
        "groups": summary,
        "detection": detection_quality(study.rows),
        "per_benchmark": per_benchmark(study.rows),
    }
