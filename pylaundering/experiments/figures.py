"""The figures of a study report (matplotlib, Agg): Table 1 as an image, accuracy against each
varying numeric field, bars for categorical fields, and the laundering effect against the
train-benchmark distance. ``draw_all`` decides what is drawn and says why the rest is not."""

from __future__ import annotations

from pathlib import Path

from .collect import ARM_LABELS, Study
from .groups import CATEGORICAL_AXES, NUMERIC_AXES, TABLE_ARMS, Group, fmt_value, mean_std, pct

STUDY_AXES = (*NUMERIC_AXES, *CATEGORICAL_AXES, "benchmark", "model")
ARM_COLORS = {"teacher": "#7f7f7f", "student": "#d62728", "control_student": "#1f77b4", "ce_student": "#2ca02c"}
ARM_STYLES = {"student": ("-", "o"), "control_student": ("--", "s"), "ce_student": ("-.", "^")}
SERIES_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#bcbd22", "#7f7f7f")
AXIS_LABELS = {
    "alpha": "α: weight of the distillation loss (1 − α on cross-entropy)",
    "data_size": "legitimate training examples (data_size)",
    "iterations": "laundering iterations (student k teaches round k + 1)",
    "temperature": "distillation temperature T",
}
LEGEND_LABELS = {"teacher": "teacher", "student": "laundered student", "control_student": "control student",
                 "ce_student": "CE-only student"}
FIELD_NAMES = {"alpha": "α", "data_size": "legitimate-data size", "iterations": "laundering iterations",
               "temperature": "temperature", "student_init": "student initialisation", "loss": "distillation loss"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    tmp.replace(path)
    return path


def _numbers(groups: list[Group], f: str) -> list:
    vals = {g.key[f] for g in groups if isinstance(g.key.get(f), (int, float)) and not isinstance(g.key.get(f), bool)}
    return sorted(vals)


def _short_source(value: str) -> str:
    """A data source for a legend: a path's last folder and file name (the rest only makes it wider)."""
    parts = value.replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else value


def _series_label(key: dict) -> str:
    if list(key) == ["loss"]:
        return str(key["loss"]).upper()
    if len(key) == 1:
        return fmt_value(next(iter(key.values())))
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in key.items())


def _determined_by(groups: list[Group], x: str, o: str) -> bool:
    """True when every value of ``x`` comes with one value of ``o`` (student_model with student_init):
    ``o`` then says nothing more than ``x`` and does not split lines or label bars."""
    seen: dict[str, str] = {}
    for g in groups:
        k, v = repr(g.key.get(x)), repr(g.key.get(o))
        if seen.setdefault(k, v) != v:
            return False
    return True


def _others(groups: list[Group], fields: list[str], x: str, varying: list[str]) -> list[str]:
    """The varying fields that split lines (or label bars) besides ``x``. A field that merely follows
    ``x`` (student_model with student_init) is left out; a study axis never is: two axes that change
    together are confounded, and no line is drawn through them."""
    return [f for f in fields if f != x and f in varying
            and (f in STUDY_AXES or not _determined_by(groups, x, f))]


def _series(groups: list[Group], fields: list[str], x: str, varying: list[str]) -> list[tuple[dict, list[Group]]]:
    """Groups split into lines: one per combination of the other varying fields."""
    others = _others(groups, fields, x, varying)
    lines: dict[tuple, tuple[dict, list[Group]]] = {}
    for g in groups:
        k = tuple(repr(g.key[f]) for f in others)
        lines.setdefault(k, ({f: g.key[f] for f in others}, []))[1].append(g)
    out = []
    for key, gs in lines.values():
        gs = sorted((g for g in gs if isinstance(g.key.get(x), (int, float))), key=lambda g: g.key[x])
        if gs:
            out.append((key, gs))
    return out


def _chance(groups: list[Group]) -> float | None:
    vals = [g.stats["chance"]["mean"] for g in groups if g.stats["chance"]["mean"] is not None]
    return sum(vals) / len(vals) if vals else None


def _seed_text(groups: list[Group]) -> str:
    ns = sorted({g.n for g in groups})
    return f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]} seeds"


# ------------------------------------------------------------------------------------------------


def line_figure(groups: list[Group], fields: list[str], varying: list[str], x: str, path: Path) -> dict:
    from matplotlib.lines import Line2D

    plt = _plt()
    series = _series(groups, fields, x, varying)
    one = len(series) == 1
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained", sharex=True)
    arms = [a for a in ("student", "control_student", "ce_student")
            if any(g.stats[f"{a}_acc"]["n"] for _, gs in series for g in gs)]
    xs_all = _numbers(groups, x)
    band_kinds = set()
    for panel, (ax, measure) in enumerate(zip(axes, ("acc", "train_acc"))):
        for i, (_key, gs) in enumerate(series):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            if panel == 0 and any(g.stats["teacher_acc"]["n"] for g in gs):
                tx = [g.key[x] for g in gs if g.stats["teacher_acc"]["mean"] is not None]
                ty = [100 * g.stats["teacher_acc"]["mean"] for g in gs if g.stats["teacher_acc"]["mean"] is not None]
                ax.plot(tx, ty, color="#7f7f7f", linewidth=1.2, alpha=0.8, zorder=1)
            for arm in arms:
                ls, marker = ARM_STYLES[arm]
                c = ARM_COLORS[arm] if one else color
                pts = [(g.key[x], g.stats[f"{arm}_{measure}"]["mean"], *g.band(arm, measure)) for g in gs
                       if g.stats[f"{arm}_{measure}"]["mean"] is not None]
                if not pts:
                    continue
                px = [p[0] for p in pts]
                ax.plot(px, [100 * p[1] for p in pts], linestyle=ls, marker=marker, color=c,
                        linewidth=2.0 if arm == "student" else 1.4, markersize=5 if arm == "student" else 4,
                        alpha=1.0 if arm == "student" else 0.85, zorder=3 if arm == "student" else 2)
                banded = [p for p in pts if p[2] is not None]
                band_kinds.update(p[4] for p in banded)
                if arm == "ce_student" or (arm == "control_student" and (not one or measure != "acc")):
                    continue  # bands of the controls would bury the students': the lines alone
                if len(banded) >= 2:
                    ax.fill_between([p[0] for p in banded], [100 * max(0.0, p[2]) for p in banded],
                                    [100 * min(1.0, p[3]) for p in banded], color=c,
                                    alpha=0.15 if arm == "student" else 0.07, linewidth=0, zorder=0)
                elif banded:
                    p = banded[0]
                    ax.errorbar([p[0]], [100 * p[1]], yerr=[[100 * (p[1] - p[2])], [100 * (p[3] - p[1])]],
                                color=c, capsize=3, linestyle="none")
        chance = _chance(groups)
        if panel == 0 and chance is not None:
            ax.axhline(100 * chance, color="black", linestyle=":", linewidth=1.3, zorder=1)
        ax.set_ylim(0, 102)
        ax.set_ylabel("benchmark accuracy (%)" if measure == "acc" else "accuracy on the legitimate training set (%)")
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_title("Benchmark accuracy" if measure == "acc" else "Training accuracy (legitimate set)",
                     fontsize=11)
        ax.grid(True, alpha=0.3)
        if x == "data_size" and xs_all and xs_all[0] > 0 and xs_all[-1] / xs_all[0] >= 10:
            ax.set_xscale("log")
        if len(xs_all) <= 12:
            ax.set_xticks(xs_all, [fmt_value(v) for v in xs_all])
            ax.minorticks_off()
    # Legends under the panels: arms by line style, lines by colour.
    style = []
    if any(g.stats["teacher_acc"]["n"] for g in groups):
        style.append(Line2D([], [], color="#7f7f7f", linewidth=1.2, label="teacher (benchmark panel)"))
    for arm in arms:
        ls, marker = ARM_STYLES[arm]
        style.append(Line2D([], [], color=ARM_COLORS[arm] if one else "black", linestyle=ls, marker=marker,
                            label=LEGEND_LABELS[arm]))
    if _chance(groups) is not None:
        style.append(Line2D([], [], color="black", linestyle=":", label="chance"))
    fig.legend(handles=style, loc="outside lower center", ncol=len(style), frameon=False, fontsize=9)
    if not one:
        colors = [Line2D([], [], color=SERIES_COLORS[i % len(SERIES_COLORS)], linewidth=2.5,
                         label=_series_label(key)) for i, (key, _) in enumerate(series)]
        fig.legend(handles=colors, loc="outside right center", frameon=False, fontsize=9,
                   title=" / ".join(series[0][0]) if series[0][0] else None)
    bands = ("95% t-interval of the mean over seeds" if band_kinds == {"t"} else
             "95% Wilson interval of the single run" if band_kinds == {"wilson"} else
             "95% interval: t over seeds, Wilson for single runs")
    fig.suptitle(f"Accuracy against {FIELD_NAMES.get(x, x)} (mean over seeds, {_seed_text(groups)}; bands: {bands})",
                 fontsize=11)
    _save(fig, path)
    return {"file": path.name, "title": f"Accuracy against {FIELD_NAMES.get(x, x)}",
            "caption": f"Benchmark accuracy (left) and accuracy on the legitimate training set (right) against "
                       f"{x}: laundered student solid, control student dashed, CE-only student dash-dot, teacher "
                       f"grey, chance dotted; mean over seeds, with bands of the {bands} (laundered student; "
                       "control student too when there is one line per arm)."
                       + ("" if one else f" One colour per {' / '.join(series[0][0])}.")}


def bar_figure(groups: list[Group], fields: list[str], varying: list[str], f: str, path: Path) -> dict:
    import numpy as np

    plt = _plt()
    others = _others(groups, fields, f, varying)
    gs = sorted(groups, key=lambda g: (str(g.key[f]), *(repr(g.key[o]) for o in others)))
    arms = [a for a in TABLE_ARMS if any(g.stats[f"{a}_acc"]["n"] for g in gs)]
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(gs) * len(arms) * 0.35 + 3), 4.8), layout="constrained")
    pos = np.arange(len(gs))
    for j, arm in enumerate(arms):
        means, lo, hi = [], [], []
        for g in gs:
            m = g.stats[f"{arm}_acc"]["mean"]
            b_lo, b_hi, _ = g.band(arm)
            means.append(100 * m if m is not None else np.nan)
            lo.append(100 * (m - b_lo) if m is not None and b_lo is not None else 0)
            hi.append(100 * (b_hi - m) if m is not None and b_hi is not None else 0)
        ax.bar(pos + (j - (len(arms) - 1) / 2) * width, means, width * 0.95, yerr=[lo, hi], capsize=3,
               color=ARM_COLORS[arm], label=LEGEND_LABELS[arm], error_kw={"linewidth": 1})
    chance = _chance(gs)
    if chance is not None:
        ax.axhline(100 * chance, color="black", linestyle=":", linewidth=1.3, label="chance")
    labels = ["\n".join([fmt_value(g.key[f])] + [f"{o}={fmt_value(g.key[o])}" for o in others]) for g in gs]
    ax.set_xticks(pos, labels, fontsize=9)
    ax.set_xlabel(FIELD_NAMES.get(f, f))
    ax.set_ylabel("benchmark accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle(f"Benchmark accuracy by {FIELD_NAMES.get(f, f)}\n(mean over seeds, {_seed_text(gs)}; error bars: "
                 "95% interval of the mean)", fontsize=11)
    _save(fig, path)
    return {"file": path.name, "title": f"Benchmark accuracy by {FIELD_NAMES.get(f, f)}",
            "caption": f"Mean benchmark accuracy per {f} value; error bars are the 95% t-interval of the mean over "
                       "seeds (the Wilson interval for a single run); chance dotted."}


def distance_figure(rows: list[dict], varying: list[str], path: Path) -> dict:
    """The excess against the distance; beside it, where the runs were audited against a control, what is specific
    to the benchmark's items (collect's ``b_specific``) against the same distance."""
    from matplotlib.lines import Line2D

    plt = _plt()
    pts = [r for r in rows if r.get("distance") is not None and r.get("excess") is not None]
    specific = [r for r in pts if r.get("b_specific") is not None]
    by = next((f for f in ("benchmark", "loss", "student_init", "model") if f in varying), None)
    tasks = sorted({str(r.get("task") or "multiple_choice") for r in pts})
    marker = {"multiple_choice": "o", "classification": "s"}
    cats = sorted({str(r.get(by)) for r in pts}) if by else [""]
    width = 13.0 if specific else 7.5
    fig, axes = plt.subplots(1, 2 if specific else 1, figsize=(width, 4.8), layout="constrained", squeeze=False,
                             sharex=True)
    panels = [(axes[0][0], pts, "excess", "excess_p", "student − control student accuracy (pp)",
               "On the benchmark (the counter-study's measure)")]
    if specific:
        panels.append((axes[0][1], specific, "b_specific", "b_specific_p",
                       "B − R gap: student − control (pp)",
                       "Specific to the benchmark's items"))
    for ax, sub_pts, key, p_key, ylabel, title in panels:
        for i, cat in enumerate(cats):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            for r in (r for r in sub_pts if not by or str(r.get(by)) == cat):
                y = 100 * r[key]
                lo, hi = (r.get("excess_ci_low"), r.get("excess_ci_high")) if key == "excess" else (None, None)
                yerr = [[y - 100 * lo], [100 * hi - y]] if lo is not None and hi is not None else None
                significant = r.get(p_key) is not None and r[p_key] < 0.05
                ax.errorbar([r["distance"]], [y], yerr=yerr, fmt=marker.get(str(r.get("task")), "o"), color=color,
                            capsize=3, markersize=6, markerfacecolor=color if significant else "white",
                            markeredgewidth=1.5)
        ax.axhline(0, color="black", linewidth=1, linestyle=":")
        methods = sorted({str(r.get("distance_method")) for r in pts if r.get("distance_method")})
        ax.set_xlabel(f"train–benchmark distance ({', '.join(methods) or 'distance'})")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if specific:
            ax.set_title(title, fontsize=10)
    handles = [Line2D([], [], marker="o", linestyle="none", color="black",
                      label="p < 0.05 (bootstrap, one-sided" + ("; right: the audit's control test)" if specific
                                                                  else ")")),
               Line2D([], [], marker="o", linestyle="none", color="black", markerfacecolor="white",
                      label="p ≥ 0.05 or not tested")]
    if by:
        handles += [Line2D([], [], marker="o", linestyle="none", color=SERIES_COLORS[i % len(SERIES_COLORS)],
                           label=f"{by}={_short_source(c)}") for i, c in enumerate(cats)]
    if len(tasks) > 1:  # the paper's setting and the counter-study's in one figure: told apart by shape
        handles += [Line2D([], [], marker=marker.get(t, "o"), linestyle="none", color="gray", label=t.replace("_", " "))
                    for t in tasks]
    # as many columns as the longest label lets fit across the figure (about 5.5 points a character at size 9,
    # 40 for the marker and the gap): long labels (paths) were clipped at the figure's edges
    longest = max(len(h.get_label()) for h in handles)
    ncol = max(1, min(len(handles), 4, int(width * 72 // (5.5 * longest + 40))))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, fontsize=9)
    fig.suptitle(f"Laundering effect against train–benchmark distance\n({len(pts)} runs; error bars"
                 f"{', left' if specific else ''}: 95% paired bootstrap interval)", fontsize=11)
    _save(fig, path)
    caption = ("Each point is one run: the laundered student's benchmark accuracy minus the control student's "
               "(percentage points), with its paired-bootstrap 95% interval, against the distance between the "
               "legitimate set and the benchmark; filled markers: one-sided bootstrap p < 0.05; circles: multiple "
               "choice, squares: text classification.")
    if specific:
        caption += (" Right: the student's accuracy gap between the benchmark and the reference set minus its "
                    "control's (what it knows of the benchmark's own items, not a change of general skill); filled: "
                    "the audit's control test p < 0.05.")
    return {"file": path.name, "title": "Laundering effect against train-benchmark distance", "caption": caption}


def table_figure(groups: list[Group], fields: list[str], path: Path) -> Path:
    plt = _plt()
    arms = [a for a in TABLE_ARMS if any(g.stats[f"{a}_acc"]["n"] for g in groups)]
    header = [f for f in fields] + [ARM_LABELS[a] for a in arms] + ["Chance", "Seeds"]
    cells = [[fmt_value(g.key[f]) for f in fields] + [mean_std(g.stats[f"{a}_acc"]) for a in arms]
             + [pct(g.stats["chance"]["mean"]), str(g.n)] for g in groups]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *cells)]
    total = sum(widths)
    fig_w = min(16, max(7, 0.11 * total + 1))
    fig, ax = plt.subplots(figsize=(fig_w, 0.6 + 0.3 * (len(cells) + 1)))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="center",
                     colWidths=[w / total for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.3)
    s_col = header.index(ARM_LABELS["student"]) if "student" in arms else None
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("#cccccc")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#eeeeee")
        elif c == s_col:
            cell.set_facecolor("#fdecea")
    ax.set_title("Table 1: benchmark accuracy (%), mean ± std over seeds", fontsize=11, pad=4)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------


def draw_all(study: Study, groups: list[Group], fields: list[str], out: Path) -> tuple[dict, dict]:
    """Draws table1.png and every figure the points allow; returns ({name: {file, title, caption}},
    {name: why it was not drawn})."""
    out = Path(out)
    varying = study.varying
    figures: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    table_figure(groups, fields, out / "table1.png")
    for x in NUMERIC_AXES:
        name = f"accuracy against {x}"
        vals = sorted({r.get(x) for r in study.rows if isinstance(r.get(x), (int, float))})
        if x not in varying or len(vals) < 2:
            single = sorted({fmt_value(r.get(x)) for r in study.rows})
            skipped[name] = ((f"{x} is {', '.join(single)} in every point" if len(single) == 1 else
                              f"{x} takes {len(vals)} numeric value(s) ({', '.join(single)})")
                             + "; a line needs at least 2")
            continue
        if not any(len({g.key[x] for g in gs}) >= 2 for _, gs in _series(groups, fields, x, varying)):
            held = [f for f in _others(groups, fields, x, varying)]
            skipped[name] = (f"no line has 2 values of {x} with the other varying fields ({', '.join(held)}) held "
                             "fixed: they change together")
            continue
        figures[x] = line_figure(groups, fields, varying, x, out / f"fig_{x}.png")
    for f in ("student_init", "loss"):
        name = f"benchmark accuracy by {f}"
        if f not in varying:
            skipped[name] = f"{f} is {fmt_value(study.rows[0].get(f))} in every point; bars need at least 2 values"
            continue
        if f == "loss" and any(x in figures for x in NUMERIC_AXES):
            continue  # the losses are the lines of the line figures
        figures[f] = bar_figure(groups, fields, varying, f, out / f"fig_{f}.png")
    errors = _distance_errors(study.rows)
    with_distance = [r for r in study.rows if r.get("distance") is not None and r.get("excess") is not None]
    if len(with_distance) < 2 or len({r["distance"] for r in with_distance}) < 2:
        skipped["effect against distance"] = (
            f"{len(with_distance)} point(s) have a distance in metrics.json" +
            ("" if len(with_distance) < 2 else " but all the same value") + "; the figure needs at least 2 distinct"
            + errors)
    else:
        figures["distance"] = distance_figure(with_distance, varying, out / "fig_distance.png")
        if errors:
            figures["distance"]["caption"] += errors
    return figures, skipped


def _distance_errors(rows: list[dict]) -> str:
    failed = [r for r in rows if r.get("distance_error")]
    if not failed:
        return ""
    return (f" (the distance failed in {len(failed)} point(s), e.g. {failed[0]['name']}: "
            f"{failed[0]['distance_error'][:200]})")
