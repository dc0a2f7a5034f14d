"""A study over several benchmarks, one line each: is there a laundering effect on this benchmark, and did the
audit call the models that never saw it clean? The counter-study (Luo et al., ICLR 2026) counts the benchmarks
with a significant effect (2 of 8); this table gives the same count for a `launder report` over sweeps.

Per benchmark, over its finished points (every loss x alpha x seed):

* the seeds are the independent units (a seed's points share its teachers and CE-only student), so the test is
  on the per-seed mean excess (laundered student minus control student, averaged over the seed's points): a
  one-sided one-sample t-test of mean > 0 with seeds - 1 degrees of freedom; "significant" is p < 0.05. With 3
  seeds that test is weak (t > 2.92 needed); the count of points whose own one-sided paired bootstrap gives
  p < 0.05 is shown beside it (under no effect about 5% of points would);
* the effect specific to the benchmark's items (collect's ``b_specific``: the student's accuracy gap between B and
  the held-back reference R minus its control's), tested over seeds the same way, with the count of points whose
  own item-level test (the audit's control test) gives p < 0.05. The excess on B alone is the counter-study's
  measure; it also moves with the student's general skill, which a memorising teacher can lower;
* the audit: the laundered students' verdicts, and the models that never saw the benchmark, each counted once
  (clean teacher and CE-only student per seed, control student per point): how many were called `clean`,
  `suspicious`, `laundered`/`contaminated`, or withheld.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from .detection import distinct_audits
from .groups import t975

ALPHA = 0.05


def _t_sf(t: float, df: int) -> float:
    """One-sided upper tail of Student's t (regularised incomplete beta by continued fraction; df >= 1)."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return tail if t >= 0 else 1 - tail


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    # Lentz's continued fraction (Numerical Recipes 6.4)
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return front * f / a


def seed_test(values: list[float]) -> dict:
    """One-sided one-sample t-test of mean > 0: n, mean, its t-based 95% interval, t and p (None below 2 values)."""
    n = len(values)
    mean = sum(values) / n if n else None
    if n < 2:
        return {"n": n, "mean": mean, "ci95": None, "t": None, "p_value": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    half = t975(n - 1) * se
    if se == 0:
        t, p = (math.inf, 0.0) if mean > 0 else (-math.inf if mean < 0 else 0.0, 1.0 if mean < 0 else 0.5)
    else:
        t = mean / se
        p = _t_sf(t, n - 1)
    return {"n": n, "mean": mean, "ci95": [mean - half, mean + half], "t": t, "p_value": p}


def per_benchmark(rows: list[dict]) -> list[dict]:
    """One summary per benchmark (module docstring), in the order the benchmarks first appear."""
    # one benchmark is one set of items, wherever its file lies: two studies of the same B (one split, two
    # legitimate sets) are one benchmark, whose seeds share their teacher. The synthetic benchmark is one
    # generator whose items each seed draws afresh: one benchmark by its name.
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        name = r.get("benchmark") or "?"
        by[name if name == "synthetic" else r.get("_benchmark_hash") or name].append(r)
    out = []
    for rs in by.values():
        names = list(dict.fromkeys(r.get("benchmark") or "?" for r in rs))
        per_seed = _per_seed(rs, "excess")
        test = seed_test(_seed_means(per_seed))
        specific = seed_test(_seed_means(_per_seed(rs, "b_specific")))
        boot = [r.get("excess_p") for r in rs if r.get("excess_p") is not None]
        item_tests = [r.get("b_specific_p") for r in rs if r.get("b_specific_p") is not None]
        # rows read without collect's model identities: one clean teacher and CE-only student per seed
        clean = Counter(r[f"audit_{arm}_verdict"] for r, arm in distinct_audits(
            rs, ("clean_teacher", "ce_student", "control_student"),
            lambda r, arm: (arm, r.get("name") if arm == "control_student" else r.get("seed")))
            if r.get(f"audit_{arm}_verdict") is not None)
        def mean(key: str, rs=rs) -> float | None:
            return _mean([r.get(key) for r in rs])
        out.append({
            "benchmark": names[0], "also_at": names[1:], "points": len(rs), "seeds": len(per_seed),
            "chance": mean("chance"),
            "teacher": mean("teacher_acc"), "student": mean("student_acc"), "control": mean("control_student_acc"),
            "ce": mean("ce_student_acc"), "excess": test,
            "significant": test["p_value"] is not None and test["p_value"] < ALPHA and test["mean"] > 0,
            "points_bootstrap_significant": sum(p < ALPHA for p in boot), "points_with_bootstrap": len(boot),
            "b_specific": specific,
            "b_specific_significant": specific["p_value"] is not None and specific["p_value"] < ALPHA
            and specific["mean"] > 0,
            "points_control_test_significant": sum(p < ALPHA for p in item_tests),
            "points_with_control_test": len(item_tests),
            "distance": mean("distance"),
            "audit_students": dict(Counter(r.get("audit_student_verdict") for r in rs
                                           if r.get("audit_student_verdict"))),
            "audit_clean_models": dict(clean),
        })
    return out


def _per_seed(rows: list[dict], key: str) -> dict:
    per_seed: dict = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            per_seed[r.get("seed")].append(r[key])
    return per_seed


def _seed_means(per_seed: dict) -> list[float]:
    return [sum(v) / len(v) for _, v in sorted(per_seed.items(), key=lambda kv: str(kv[0]))]


def _with_ci(test: dict) -> str:
    text = "–" if test["mean"] is None else f"{100 * test['mean']:+.1f}"
    if test["ci95"]:
        text += f" [{100 * test['ci95'][0]:+.1f}, {100 * test['ci95'][1]:+.1f}]"
    return text


def _mean(values) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _counts(c: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "–"


def markdown(summaries: list[dict]) -> list[str]:
    """The report's per-benchmark section (empty for a study of one benchmark)."""
    if len(summaries) < 2:
        return []
    lines = ["## Per benchmark: is there an effect? (the counter-study's count)", "",
             "Excess: laundered student minus control student (percentage points), mean over seeds of each seed's "
             "mean over its points, with its t interval; p: one-sided t-test over seeds (the seeds are the "
             "independent units). Bootstrap: points whose own one-sided paired bootstrap gives p < 0.05. Audit: "
             "the laundered students' verdicts, and every model that never saw the benchmark counted once (clean "
             "teacher and CE-only student per seed, control student per point). B-specific: the student's accuracy "
             "on B minus on the held-back reference R, minus the same for its control (what it knows of B's own "
             "items, not a change of general skill), tested over seeds the same way; control test: points whose "
             "own item-level test of it (the audit's, on p(correct)) gives p < 0.05. The seeds of one benchmark "
             "share its B and R: a test over seeds covers training randomness, the control test the items.", ""]
    header = ["Benchmark", "Points (seeds)", "Chance", "Teacher", "Student", "Control", "CE", "Excess (pp)", "p",
              "Effect", "Bootstrap p < 0.05", "B-specific (pp)", "p", "Control test p < 0.05", "Distance",
              "Audit: students", "Audit: models that never saw B"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        e, b = s["excess"], s["b_specific"]
        ex = _with_ci(e)
        name = f"`{s['benchmark']}`" + (f" (the same items at {len(s['also_at'])} more path(s))"
                                         if s.get("also_at") else "")
        effect = "**yes**" if s["significant"] else ("no" if e["p_value"] is not None else "untested (1 seed)")
        cells = [name, f"{s['points']} ({s['seeds']})", _pct(s["chance"]), _pct(s["teacher"]),
                 _pct(s["student"]), _pct(s["control"]), _pct(s["ce"]), ex,
                 "–" if e["p_value"] is None else f"{e['p_value']:.3g}", effect,
                 f"{s['points_bootstrap_significant']} of {s['points_with_bootstrap']}",
                 _with_ci(b) + (" **yes**" if s["b_specific_significant"] else ""),
                 "–" if b["p_value"] is None else f"{b['p_value']:.3g}",
                 f"{s['points_control_test_significant']} of {s['points_with_control_test']}",
                 "–" if s["distance"] is None else f"{s['distance']:.4f}", _counts(s["audit_students"]),
                 _counts(s["audit_clean_models"])]
        lines.append("| " + " | ".join(cells) + " |")
    k = sum(s["significant"] for s in summaries)
    tested = [s for s in summaries if s["excess"]["p_value"] is not None]
    untested = len(summaries) - len(tested)
    lines += ["", f"A significant laundering effect on **{k} of {len(tested)}** benchmarks tested over seeds (the "
              "counter-study: 2 of 8)" + ("." if not untested else
                                          f"; {untested} more with one seed, which a test over seeds cannot judge "
                                          "(see its points' own bootstrap)."), ""]
    specific_tested = sum(s["b_specific"]["p_value"] is not None for s in summaries)
    if specific_tested:  # runs audited against a control (none: --no-controls, or no audit)
        lines += [f"An effect specific to the benchmark's items (B-specific, over seeds) on **"
                  f"{sum(s['b_specific_significant'] for s in summaries)} of {specific_tested}**.", ""]
    return lines
