"""Points grouped over seeds: the axes a study varies, a group's statistics per arm (mean, sample std,
t-based 95% interval of the mean) and how those numbers are written. Shared by the study report's
tables (study_report.py) and its figures (figures.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .collect import ARMS, Study

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


def sort_value(v):
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
    out = sorted(groups.values(), key=lambda g: tuple(sort_value(g.key[f]) for f in fields))
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
# Numbers as text


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
