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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .collect import ARM_LABELS, ARMS, Study, collect, columns
from .detection import detection_quality
from .detection import markdown as detection_markdown

NUMERIC_AXES = ("alpha", "data_size", "iterations", "temperature")
CATEGORICAL_AXES = ("student_init", "loss")
TABLE_ARMS = ("teacher", "student", "control_student", "ce_student")
MEASURES = ("acc", "train_acc")

# Two-sided 95% Student t quantiles (0.975) for 1..30 degrees of freedom.
_T975 = (12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252,
         2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688,
         2.131449546, 2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845,
         2.073873068, 2.068657610, 2.063898562, 2.059538553, 2.055529439, 2.051830516, 2.048407142,
         2.045229642, 2.042272456)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (table up to 30, then the
    Cornish-Fisher expansion, within 1e-5)."""
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if df <= 30:
        return _T975[df - 1]
    z, v = 1.959963984540054, float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


def describe(values) -> dict:
    """n, mean, sample std (n - 1) and the t-based 95% interval of the mean of the non-missing values."""
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = sum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


# ------------------------------------------------------------------------------------------------
# Groups over seeds


@dataclass
class Group:
    key: dict  # group field -> value
    rows: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # "<arm>_<measure>" and "excess" -> describe()

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def seeds(self) -> list:
        return sorted({r["seed"] for r in self.rows if r.get("seed") is not None})

    def band(self, arm: str, measure: str = "acc") -> tuple[float | None, float | None, str]:
        """The 95% band drawn for this group: the t interval of the mean over seeds, or for a single
        point its Wilson interval (benchmark accuracy only)."""
        s = self.stats[f"{arm}_{measure}"]
        if s["n"] >= 2:
            return s["ci_low"], s["ci_high"], "t"
        if s["n"] == 1 and measure == "acc":
            r = self.rows[0]
            return r.get(f"{arm}_ci_low"), r.get(f"{arm}_ci_high"), "wilson"
        return None, None, ""


def group_fields(study: Study) -> list[str]:
    varying = study.varying
    return ["benchmark"] + [f for f in varying if f != "benchmark"]


def _sort_value(v):
    if v is None:
        return (2, 0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, "")
    return (1, 0, str(v))


def group_rows(rows: list[dict], fields: list[str]) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for r in rows:
        k = tuple(_hashable(r.get(f)) for f in fields)
        if k not in groups:
            groups[k] = Group(key={f: r.get(f) for f in fields})
        groups[k].rows.append(r)
    out = sorted(groups.values(), key=lambda g: tuple(_sort_value(g.key[f]) for f in fields))
    for g in out:
        for arm in ARMS:
            for m in MEASURES:
                g.stats[f"{arm}_{m}"] = describe(r.get(f"{arm}_{m}") for r in g.rows)
        g.stats["excess"] = describe(r.get("excess") for r in g.rows)
        g.stats["chance"] = describe(r.get("chance") for r in g.rows)
    return out


def _hashable(v):
    return repr(v) if isinstance(v, (list, dict)) else v


def summary_columns(fields: list[str]) -> list[str]:
    cols = [*fields, "n", "seeds"]
    for arm in ARMS:
        for m in MEASURES:
            cols += [f"{arm}_{m}_{s}" for s in ("mean", "std", "ci_low", "ci_high")]
    cols += [f"excess_{s}" for s in ("mean", "std", "ci_low", "ci_high")]
    cols += ["chance"]
    return cols


def summary_rows(groups: list[Group], fields: list[str]) -> list[dict]:
    rows = []
    for g in groups:
        row: dict[str, Any] = {**g.key, "n": g.n, "seeds": " ".join(str(s) for s in g.seeds)}
        for arm in ARMS:
            for m in MEASURES:
                s = g.stats[f"{arm}_{m}"]
                for k in ("mean", "std", "ci_low", "ci_high"):
                    row[f"{arm}_{m}_{k}"] = s[k]
        for k in ("mean", "std", "ci_low", "ci_high"):
            row[f"excess_{k}"] = g.stats["excess"][k]
        row["chance"] = g.stats["chance"]["mean"]
        rows.append(row)
    return rows


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


def pct(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def mean_std(s: dict) -> str:
    if s["mean"] is None:
        return "–"
    return f"{pct(s['mean'])} ± {pct(s['std'])}" if s["std"] is not None else pct(s["mean"])


def mean_ci(s: dict) -> str:
    if s["mean"] is None:
        return "–"
    if s["ci_low"] is None:
        return pct(s["mean"])
    return f"{pct(s['mean'])} [{pct(s['ci_low'])}, {pct(s['ci_high'])}]"


def fmt_value(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    align = align or ["---"] * len(header)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |", *("| " + " | ".join(r) + " |" for r in esc)]


WARNING_KINDS = (
    (re.compile(r"^clean teacher stopped"), "the clean teacher stopped short of its target training accuracy"),
    (re.compile(r"^teacher stopped"), "the teacher stopped short of its target training accuracy"),
    (re.compile(r"were truncated"), "sequences were truncated"),
    (re.compile(r"exact copies of benchmark items"), "the training set holds exact copies of benchmark items"),
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

    # Figures
    quality = detection_quality(rows)
    if quality is not None:
        lines += detection_markdown(quality)
    lines += ["## Figures", ""]
    for name, info in figures.items():
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
    return sorted(seen.values(), key=_sort_value)


# ------------------------------------------------------------------------------------------------


OUR_FILES = ("points.csv", "summary.csv", "report.md", "table1.png")


def write_study_report(paths, out: str | Path, *, study: Study | None = None) -> dict:
    """Collects ``paths`` and writes the report into ``out``; returns what was written."""
    from ..train.checkpoint import write_text
    from . import figures as figs

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
        "varying": study.varying, "group_fields": fields,
        "figures": {k: v["file"] for k, v in figures.items()}, "skipped_figures": skipped,
        "warnings": [{"kind": w["kind"], "points": len(w["points"])} for w in warnings],
        "groups": summary,
        "detection": detection_quality(study.rows),
    }
