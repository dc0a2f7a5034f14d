"""How well `launder audit` separates laundered students from controls across a study's points.

Every `launder run` audits its own arms, and the run knows the truth: its student was distilled
from a contaminated teacher (positive, when alpha > 0), its control and CE-only students were not
(negatives). Over a sweep (seeds, alpha, losses) that gives a labelled set of audit scores:

  roc_auc        probability that a random positive scores above a random negative (Mann-Whitney;
                 ties count one half)
  tpr_at_fpr     share of positives above the score threshold that keeps the false-positive share
                 at or below the target (1%); with fewer than 100 negatives the threshold is the
                 largest negative score, i.e. 0 observed false positives: stated as such
  verdicts       the verdict counts per arm, and the share of negatives called laundered or
                 suspicious (the measured false-positive rates of the verdicts)

Students with alpha = 0 are trained by cross-entropy alone: they are left out of the positives.
A withheld verdict (``insufficient_data``: sets too small for the audit's thresholds;
``not_comparable``: a reference set unlike the benchmark) is neither clean nor a detection: it is
counted apart and left out of the verdict rates' denominators.

A model counts once however many points share it (collect's ``_models``: a sweep's CE-only student is one
model audited alike at every alpha, and at alpha 0 the student and control student are that model): counted
per point, one clean CE-only student made 22 "negatives" of an alpha sweep. Every rate comes with its 95%
Wilson interval, which treats each model as independent; but the models audited on one benchmark/reference
pair share that split's draw of items, and models trained on the same data share their errors, so one split
that happens to suit the legitimate data can flag several clean models at once (the ARC study in
docs/real-data.md). The rates therefore also say over how many pairs they were measured and in how many the
flags fell (collect's ``_pair``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ..stats import wilson_interval

NEGATIVE_ARMS = ("control_student", "ce_student")
INSUFFICIENT = "insufficient_data"  # audit.verdict.INSUFFICIENT (not imported: that module loads numpy)
NOT_COMPARABLE = "not_comparable"  # audit.verdict's, likewise
WITHHELD = (INSUFFICIENT, NOT_COMPARABLE)
VERDICT_COLUMNS = ("clean", "suspicious", "laundered", "contaminated", *WITHHELD)


def roc_auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def tpr_at_fpr(pos: list[float], neg: list[float], fpr: float = 0.01) -> dict[str, Any]:
    """The largest share of positives caught while at most ``fpr`` of the negatives are."""
    if not pos or not neg:
        return {"fpr_target": fpr, "tpr": None, "threshold": None, "false_positives_allowed": None}
    allowed = math.floor(fpr * len(neg))
    ranked = sorted(neg, reverse=True)
    threshold = ranked[allowed] if allowed < len(ranked) else -math.inf  # strictly above this score
    return {"fpr_target": fpr, "tpr": sum(p > threshold for p in pos) / len(pos), "threshold": threshold,
            "false_positives_allowed": allowed, "negatives": len(neg), "positives": len(pos)}


def distinct_audits(rows: list[dict], arms, fallback=None) -> list[tuple[dict, str]]:
    """(row, arm) for each distinct model among ``arms`` that was audited, in row order: a model that several
    rows (or arms of one row) share is taken once, from the first. A row without collect's ``_models`` names
    its arm by ``fallback(row, arm)`` (default: every row's arm is its own model)."""
    seen, out = set(), []
    for i, r in enumerate(rows):
        models = r.get("_models") or {}
        for arm in arms:
            if r.get(f"audit_{arm}_verdict") is None and r.get(f"audit_{arm}_score") is None:
                continue
            key = models.get(arm) or (fallback(r, arm) if fallback else (i, arm))
            if key not in seen:
                seen.add(key)
                out.append((r, arm))
    return out


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"k": k, "n": n, "rate": k / n if n else None, "ci95": list(wilson_interval(k, n)) if n else None}


def _pairs(by_pair: dict[str | None, list[str]]) -> dict[str, Any] | None:
    """Over how many benchmark/reference pairs the negatives' verdicts were made, and where the flags fell
    (None when a row does not say which pair it audited on)."""
    if not by_pair or None in by_pair:
        return None
    per = [{"negatives": len(vs), "suspicious_or_above": sum(v in ("suspicious", "laundered") for v in vs),
            "laundered": sum(v == "laundered" for v in vs)} for vs in by_pair.values()]
    return {"count": len(per), "with_a_flag": sum(p["suspicious_or_above"] > 0 for p in per),
            "most_flags_in_one": max(p["suspicious_or_above"] for p in per), "per_pair": per}


def detection_quality(rows: list[dict]) -> dict | None:
    """Detection quality over the study's rows (collect.make_row); None when no point was audited."""
    audited = [r for r in rows if r.get("audit_student_score") is not None]
    if not audited:
        return None
    pos_rows = [r for r, _ in distinct_audits([r for r in audited if (r.get("alpha") or 0) > 0], ("student",))]
    negatives = distinct_audits(audited, NEGATIVE_ARMS)
    pos = [r["audit_student_score"] for r in pos_rows]
    neg = [r[f"audit_{arm}_score"] for r, arm in negatives if r.get(f"audit_{arm}_score") is not None]
    verdicts = {arm: dict(Counter(r[f"audit_{arm}_verdict"] for r, _ in distinct_audits(audited, (arm,))
                                  if r.get(f"audit_{arm}_verdict")))
                for arm in ("teacher", "clean_teacher", "student", "control_student", "ce_student")}
    all_neg = [r[f"audit_{arm}_verdict"] for r, arm in negatives if r.get(f"audit_{arm}_verdict")]
    neg_verdicts = [v for v in all_neg if v not in WITHHELD]
    by_alpha: dict[Any, dict] = {}
    for r in pos_rows:
        d = by_alpha.setdefault(r.get("alpha"), {"n": 0, "laundered": 0, INSUFFICIENT: 0, NOT_COMPARABLE: 0})
        if r.get("audit_student_verdict") in WITHHELD:
            d[r["audit_student_verdict"]] += 1
            continue
        d["n"] += 1
        d["laundered"] += r.get("audit_student_verdict") == "laundered"
    n_neg = len(neg_verdicts)
    by_pair: dict[str, list[str]] = {}
    for r, arm in negatives:
        v = r.get(f"audit_{arm}_verdict")
        if v and v not in WITHHELD:
            by_pair.setdefault(r.get("_pair"), []).append(v)
    laundered = _rate(sum(v == "laundered" for v in neg_verdicts), n_neg)
    flagged = _rate(sum(v in ("suspicious", "laundered") for v in neg_verdicts), n_neg)
    return {
        "points": len(audited), "positives": len(pos), "negatives": len(neg),
        "shared_models_counted_once": sum(1 for r in audited for arm in NEGATIVE_ARMS
                                          if r.get(f"audit_{arm}_verdict")) - len(all_neg),
        "roc_auc": roc_auc(pos, neg), "tpr_at_1pct_fpr": tpr_at_fpr(pos, neg, 0.01),
        "verdicts": verdicts,
        "false_positive_rate": {
            "laundered": laundered["rate"], "laundered_ci95": laundered["ci95"],
            "suspicious_or_above": flagged["rate"], "suspicious_or_above_ci95": flagged["ci95"],
            "negatives": n_neg, **{w: sum(v == w for v in all_neg) for w in WITHHELD},
            "pairs": _pairs(by_pair)},
        "detection_rate_by_alpha": {str(a): {**d, **{k: v for k, v in _rate(d["laundered"], d["n"]).items()
                                                     if k in ("rate", "ci95")}}
                                    for a, d in sorted(by_alpha.items(), key=lambda kv: kv[0])},
    }


def markdown(q: dict) -> list[str]:
    """The report.md section."""
    t = q["tpr_at_1pct_fpr"]
    fp = q["false_positive_rate"]

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    def ci(pair):
        return "" if not pair else f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"

    auc = "n/a" if q["roc_auc"] is None else f"{q['roc_auc']:.3f}"
    lines = ["## Audit detection quality", "",
             f"`launder audit student` scores (z of its core test) over {q['points']} audited points: "
             f"{q['positives']} laundered students (alpha > 0) against {q['negatives']} control and CE-only "
             "students.", "",
             f"- ROC AUC: **{auc}**",
             f"- True-positive rate at 1% false positives: **{pct(t['tpr'])}**"
             + ("" if t["tpr"] is None or t["negatives"] >= 100 else
                f" (with {t['negatives']} negatives, 1% allows no false positive: threshold = the highest "
                "control score)"),
             f"- Controls called laundered: {pct(fp['laundered'])}{ci(fp.get('laundered_ci95'))}, suspicious or "
             f"laundered: {pct(fp['suspicious_or_above'])}{ci(fp.get('suspicious_or_above_ci95'))} (of "
             f"{fp['negatives']}; 95% Wilson intervals; the thresholds are calibrated to at most 1% and 5% + 1% per "
             "secondary test)"]
    pairs = fp.get("pairs")
    if pairs and fp["negatives"] > 1:
        flags = sum(p["suspicious_or_above"] for p in pairs["per_pair"])
        where = ("" if not flags else f"; the {flags} flagged model(s) fall in {pairs['with_a_flag']} of them, at most "
                 f"{pairs['most_flags_in_one']} in one")
        lines.append(
            f"- Measured on {pairs['count']} benchmark/reference pair(s){where}. The models audited on one pair "
            "share its draw of items (and those trained on the same data share their errors), so flags can "
            "cluster in a pair; the Wilson intervals treat each model as independent and are too narrow when they "
            "do" + (": with one pair these are one split's counts, not rates over splits" if pairs["count"] == 1
                    else ""))
    if q.get("shared_models_counted_once"):
        lines.append(f"- Each model counted once: {q['shared_models_counted_once']} audit(s) of a model that "
                     "several points share (a sweep's CE-only student, the alpha-0 student) are not counted again")
    lines.append("")
    cols = [v for v in VERDICT_COLUMNS if v not in WITHHELD or any(c.get(v) for c in q["verdicts"].values())]
    lines += ["| Model | " + " | ".join(v.replace("_", " ") for v in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for arm, counts in q["verdicts"].items():
        if counts:
            lines.append(f"| {arm.replace('_', ' ')} | " + " | ".join(str(counts.get(v, 0)) for v in cols) + " |")
    if fp.get(INSUFFICIENT):
        lines += ["", f"{fp[INSUFFICIENT]} control verdict(s) were `insufficient_data` (too few items for the audit's "
                  "thresholds): counted neither as clean nor as false positives."]
    if fp.get(NOT_COMPARABLE):
        lines += ["", f"{fp[NOT_COMPARABLE]} control verdict(s) were `not_comparable` (the reference set differs from "
                  "the benchmark in kind: see each audit.md): counted neither as clean nor as false positives."]
    if q["detection_rate_by_alpha"]:
        lines += ["", "Laundered students called `laundered`, by alpha (95% Wilson interval, in %): " + ", ".join(
            f"{a}: {d['laundered']}/{d['n']}{ci(d.get('ci95'))}" + (f" ({d[INSUFFICIENT]} more with insufficient data)"
                                                 if d.get(INSUFFICIENT) else "")
            + (f" ({d[NOT_COMPARABLE]} more withheld: reference not comparable)" if d.get(NOT_COMPARABLE) else "")
            for a, d in q["detection_rate_by_alpha"].items()), ""]
    return lines
