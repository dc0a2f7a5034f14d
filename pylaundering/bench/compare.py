"""Regression check between two benchmark reports (the JSON of ``launder bench ops --json``).

A case + implementation regresses when its median time grew by more than the noise of the two
runs: ``threshold = max(min_threshold, k * (spread_old + spread_new))``, where spread is each
run's interquartile range over its median (measured from its repeats). Cases present in only one
report are listed, not judged.
"""

from __future__ import annotations


def _index(report: dict) -> dict[tuple[str, str], dict]:
    return {(c["case"], impl): r for c in report.get("cases", []) for impl, r in c.get("results", {}).items()}


def compare(new: dict, old: dict, *, min_threshold: float = 0.05, k: float = 2.0, impls=("fused",)) -> dict:
    """Rows for every (case, impl) in both reports (impls=None: all implementations)."""
    a, b = _index(new), _index(old)
    rows, regressions = [], []
    for key in sorted(set(a) & set(b)):
        if impls is not None and key[1] not in impls:
            continue
        rn, ro = a[key], b[key]
        ratio = rn["median_ms"] / ro["median_ms"] if ro["median_ms"] > 0 else float("inf")
        threshold = max(min_threshold, k * (rn.get("spread", 0.0) + ro.get("spread", 0.0)))
        row = {"case": key[0], "impl": key[1], "old_ms": ro["median_ms"], "new_ms": rn["median_ms"],
               "ratio": ratio, "threshold": threshold, "regression": ratio > 1 + threshold,
               "improvement": ratio < 1 - threshold}
        rows.append(row)
        if row["regression"]:
            regressions.append(row)
    # (case, implementation) pairs: a baseline missing from one run is not a missing case
    only_new = sorted(f"{c} [{i}]" for c, i in set(a) - set(b) if impls is None or i in impls)
    only_old = sorted(f"{c} [{i}]" for c, i in set(b) - set(a) if impls is None or i in impls)
    same_machine = (new.get("device"), new.get("threads")) == (old.get("device"), old.get("threads"))
    return {"rows": rows, "regressions": regressions, "only_new": only_new, "only_old": only_old,
            "same_machine": same_machine}


def format_comparison(result: dict) -> str:
    lines = [f"{'case':<40}{'impl':<9}{'old ms':>10}{'new ms':>10}{'new/old':>9}{'noise':>8}  verdict"]
    for r in result["rows"]:
        verdict = "REGRESSION" if r["regression"] else "faster" if r["improvement"] else "same (within noise)"
        lines.append(f"{r['case']:<40}{r['impl']:<9}{r['old_ms']:>10.3f}{r['new_ms']:>10.3f}{r['ratio']:>9.2f}"
                     f"{100 * r['threshold']:>7.0f}%  {verdict}")
    for c in result["only_new"]:
        lines.append(f"{c:<40}only in the new report")
    for c in result["only_old"]:
        lines.append(f"{c:<40}only in the old report")
    if not result["same_machine"]:
        lines.append("note: the reports come from different devices or thread counts; ratios mix machine and code")
    return "\n".join(lines)
