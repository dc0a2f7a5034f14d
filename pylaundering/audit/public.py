"""`launder audit public`: a benchmark audit that needs no secret holdout (after ConStat, Dekoninck et al. 2024).

`audits` compares a model on the benchmark B with a random holdout R of B itself. A leaderboard
maintainer with a public benchmark has no holdout: a launderer who trained on all of B leaves no gap.
Here R is *another benchmark of the same kind* (B = ARC-Challenge, R = ARC-Easy or OpenBookQA), of
other difficulty in general, and the audit learns how performance on B follows performance on R from
known-clean reference models of varied skill; the suspect is tested against that prediction.

Performance of a model on a set: accuracy minus chance, the mean over items of correct - 1/C_i, so
sets with different choice counts are comparable (0 is guessing on either set); raw accuracy is
reported next to it. Accuracy, not p(correct) as in `verdict`'s core test: the thresholds are in
accuracy points (MIN_ACCURACY_GAP), and across models of very different confidence p(correct) is not
one scale.

Fit: B performance = intercept + slope x R performance, least squares over the clean models, slope
constrained to >= 0 (monotone: a negative slope says R does not track B, and the fit is then the clean
models' mean, with a note). Why a line, in accuracy space:

* With the 3 to 10 clean models an audit usually has, two parameters are what the data support; a
  spline or an isotonic fit would chase the noise of single models.
* No transform, so no clipping: a line in logit space matches the sigmoid floor and ceiling, but weak
  models at chance on the harder set (performance <= 0 on ~50% of draws) then sit at a clipped,
  arbitrary logit and dominate the fit; on small sets every clean model does (a tiny run's students).
* Curvature is where a line is wrong. Simulated with `calibrate` (6 clean models of skill 0 to 1,
  1,000 items a set, B harder than R or easier, 90 clean suspects of skill 0.05 to 0.95), the line's
  bias at the suspect was -0.06 to +0.05, but resampling the clean models turns curvature into
  interval width, and p < 0.05 came out for 1.1% (B harder) and 3.3% (B easier) of clean suspects.
  A line through a convex relation (B harder than R: flat at the floor, steep above) lies above it
  mid-range, which makes the test conservative there; the extrapolation guard below keeps suspects
  off the ends, where the bias has the other sign.

Inflation delta = the suspect's B performance minus the fit's prediction at its R performance. Its
uncertainty comes from a bootstrap over items and over clean models together: each replicate draws B
items and R items with replacement, the *same* items for every model (the models are scored on the
same items, so a hard draw is hard for all of them and the pairing cancels it from delta), draws the
clean models with replacement (skipping replicates whose drawn models have no spread in R), refits
and recomputes delta. Reported: the 95% percentile interval and the one-sided p-value
(1 + #{delta* <= 0}) / (1 + usable replicates), never 0.

Verdict (`verdict`'s thresholds, imported): contaminated (kind "teacher") or laundered ("student")
when p < P_STRONG and delta >= MIN_ACCURACY_GAP; suspicious when p < P_WEAK; clean otherwise.
Withheld, before those (no finding either way): insufficient_data with fewer than MIN_CLEAN clean
models, clean models without spread in R, or fewer than half the replicates usable;
outside_calibration when the suspect's R performance lies outside the clean models' R range by more
than a margin (the largest of 0.02, a twentieth of the range and the standard error of the suspect's
own R performance): the line would be extrapolated.

What it assumes: the clean models are clean (on B and on R); B and R are of the same kind; the
relation between B and R is the same for the suspect as for the clean models (a suspect of another
family, better at B's style for honest reasons, reads as inflated: the test detects "better on B than
clean models of its R skill", which contamination is one cause of); more, and more varied, clean
models tighten the interval.

`assess_public` is the statistics alone, on per-item `ItemScores` (what a simulation calls);
`audit_public` scores model folders and writes ``audit.json``, ``audit.md`` and ``calibration.png``;
`clean_models_from` collects the clean arms of a `launder run` or `launder sweep` folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.schema import MCExample
from .evidence import ItemScores
from .verdict import INSUFFICIENT, LEVELS, MIN_ACCURACY_GAP, P_STRONG, P_WEAK, level_at_least

__all__ = ["CLEAN_ARMS", "MIN_CLEAN", "OUTSIDE", "REPLICATES", "SCHEMA_VERSION", "WITHHELD", "assess_public",
           "audit_public", "calibration_figure", "clean_models_from", "fails", "fit_line", "format_markdown",
           "resampled_means"]

SCHEMA_VERSION = 1
#: Bootstrap replicates: p-values down to 1/4001, and about a second for 10 models on 10,000 items a set.
REPLICATES = 4000
MIN_CLEAN = 3
#: The verdict of a suspect whose R performance is outside the clean models' range (the fit would extrapolate).
OUTSIDE = "outside_calibration"
WITHHELD = (INSUFFICIENT, OUTSIDE)
MARGIN_MIN = 0.02
MARGIN_SHARE = 0.05
#: Fewer usable replicates than this share (drawn clean models without spread in R): insufficient_data.
MIN_USABLE = 0.5
#: The arms of a `launder run` trained without the benchmark (`experiments.run`).
CLEAN_ARMS = ("clean_teacher", "control_student", "ce_student")
_CELLS = 4_000_000  # replicates x items per chunk of the bootstrap
_BAND_POINTS = 41
#: Clean models named in the figure up to this many (more would pile up; audit.md lists every one)
LABELLED_CLEAN = 8

QUESTION = ("Is this model's performance on the benchmark higher than its performance on another benchmark of the "
            "same kind predicts, judged by clean models of varied skill? (no secret holdout needed)")
METHOD = ("least-squares line (slope >= 0) of benchmark performance on reference performance (accuracy minus chance) "
          "across known-clean models; the suspect's inflation is its benchmark performance minus the line's "
          "prediction at its reference performance, with a bootstrap over items (the same items for every model "
          "in a replicate) and clean models together for its 95% interval and one-sided p-value")
ASSUMES = ("the clean models really are clean (never trained on the benchmark or the reference set); the benchmark "
           "and the reference set are of the same kind; performance on the benchmark follows performance on the "
           "reference set the same way for the suspect as for the clean models (a model better at the "
           "benchmark's style for honest reasons reads as inflated); the more varied and numerous the clean "
           "models, the tighter the interval")


# ------------------------------------------------------------------------------------------------
# Statistics


def _values(scores: ItemScores) -> np.ndarray:
    return scores.correct.astype(np.float64) - scores.chance


def _performance(scores: ItemScores) -> dict[str, float]:
    return {"performance": float(_values(scores).mean()), "accuracy": scores.accuracy,
            "chance": float(scores.chance.mean())}


def fit_line(x, y) -> dict[str, Any]:
    """Least-squares line y = intercept + slope x with slope >= 0, per row of ``x`` and ``y`` (``[rows, k]``, or
    one row as ``[k]``): ``intercept``, ``slope``, ``raw_slope`` (unconstrained) and ``usable`` (x has spread;
    elsewhere the parameters are NaN). A negative slope is replaced by 0, the constrained optimum: the mean."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    xm, ym = x.mean(axis=1), y.mean(axis=1)
    dx = x - xm[:, None]
    sxx = (dx * dx).sum(axis=1)
    usable = sxx > 1e-12
    raw = np.where(usable, (dx * (y - ym[:, None])).sum(axis=1) / np.where(usable, sxx, 1.0), np.nan)
    slope = np.maximum(raw, 0.0)
    return {"intercept": ym - slope * xm, "slope": slope, "raw_slope": raw, "usable": usable}


def resampled_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per replicate (row of ``indices``: item indices drawn with replacement) and model (row of ``values``,
    ``[models, items]``), the mean over the drawn items: ``[replicates, models]``. One draw serves every model,
    so models scored on the same items keep their pairing."""
    count, n = indices.shape
    flat = (indices + n * np.arange(count)[:, None]).ravel()
    weights = np.bincount(flat, minlength=count * n).reshape(count, n).astype(np.float64)
    return weights @ values.T / n


def _bootstrap(vb: np.ndarray, vr: np.ndarray, k: int, replicates: int, seed: int):
    """(intercepts, slopes, usable, deltas [replicates, suspects]) of the joint bootstrap (module docstring);
    rows 0..k-1 of ``vb`` / ``vr`` are the clean models, the rest the suspects."""
    rng = np.random.default_rng(seed)
    nb, nr = vb.shape[1], vr.shape[1]
    step = max(1, _CELLS // max(nb, nr))
    parts = []
    for start in range(0, replicates, step):
        size = min(step, replicates - start)
        pb = resampled_means(vb, rng.integers(0, nb, size=(size, nb)))
        pr = resampled_means(vr, rng.integers(0, nr, size=(size, nr)))
        pick = rng.integers(0, k, size=(size, k))
        rows = np.arange(size)[:, None]
        fit = fit_line(pr[:, :k][rows, pick], pb[:, :k][rows, pick])
        delta = pb[:, k:] - (fit["intercept"][:, None] + fit["slope"][:, None] * pr[:, k:])
        parts.append((fit["intercept"], fit["slope"], fit["usable"], delta))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def _check_scores(models: Mapping[str, tuple[ItemScores, ItemScores]]) -> tuple[int, int]:
    sizes = {name: (sb.correct.size, sr.correct.size) for name, (sb, sr) in models.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name}: {b}/{r}" for name, (b, r) in sizes.items())
        raise ValueError(f"every model must be scored on the same benchmark and reference items (items B/R: {shown})")
    return next(iter(sizes.values()))


def thresholds(kind: str) -> dict[str, Any]:
    strong = LEVELS[kind][2]
    return {
        strong: f"p < {P_STRONG} and inflation >= {MIN_ACCURACY_GAP} (accuracy minus chance on the benchmark, above "
                "the clean models' prediction)",
        "suspicious": f"p < {P_WEAK}",
        "clean": "otherwise",
        INSUFFICIENT: f"before the others: fewer than {MIN_CLEAN} clean models, clean models without spread in "
                      f"reference performance, or fewer than {MIN_USABLE:.0%} of the bootstrap replicates usable",
        OUTSIDE: f"before the others, after {INSUFFICIENT}: the suspect's reference performance lies outside the clean "
                 f"models' range by more than the margin, the largest of {MARGIN_MIN}, {MARGIN_SHARE} x the range "
                 "and the standard error of the suspect's reference performance (the line would be extrapolated)",
        "p_value": "one-sided: (1 + number of replicates with inflation <= 0) / (1 + usable replicates)",
        "min_clean_models": MIN_CLEAN,
    }


def _withheld_all(kind, clean_rows, suspects, reason, replicates, seed, notes) -> dict[str, Any]:
    return _report(kind, clean_rows, None, [
        {"model": name, "benchmark": _performance(sb), "reference": _performance(sr), "predicted_benchmark": None,
         "delta": None, "ci95": None, "p_value": None, "verdict": INSUFFICIENT, "reasons": [reason]}
        for name, (sb, sr) in suspects.items()], replicates, seed, notes)


def _report(kind, clean_rows, fit, suspect_rows, replicates, seed, notes) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "audit": "public", "kind": kind, "question": QUESTION,
            "clean_models": clean_rows, "fit": fit, "suspects": suspect_rows,
            "replicates": {"requested": replicates, **({"usable": fit["usable_replicates"]} if fit else {})},
            "seed": seed, "notes": notes, "thresholds": thresholds(kind), "method": METHOD, "assumes": ASSUMES}


def assess_public(kind: str, clean: Mapping[str, tuple[ItemScores, ItemScores]],
                  suspects: Mapping[str, tuple[ItemScores, ItemScores]], *, replicates: int = REPLICATES,
                  seed: int = 0) -> dict[str, Any]:
    """The public-benchmark audit of every suspect from per-item (B, R) scores of the ``clean`` models and the
    ``suspects`` (name -> (B scores, R scores), all on the same items); ``kind``: "student" or "teacher" (which
    word the strong verdict uses). JSON-ready: ``clean_models`` (B and R performance, residual), ``fit``
    (intercept, slope, r2, residual_sd, range, bootstrap ``band``; None when withheld), ``suspects`` (each with
    observed and predicted B performance, ``delta``, ``ci95``, ``p_value``, ``verdict``, ``reasons``),
    ``replicates``, ``notes``, ``thresholds``, ``method``, ``assumes``."""
    if kind not in LEVELS:
        raise ValueError(f"kind must be one of {', '.join(LEVELS)}, got {kind!r}")
    if not suspects:
        raise ValueError("no suspect to audit")
    if replicates < 1:
        raise ValueError("replicates must be >= 1")
    overlap = sorted(set(clean) & set(suspects))
    if overlap:
        raise ValueError(f"{', '.join(overlap)}: a suspect cannot also be a clean model")
    _check_scores({**clean, **suspects})
    strong_word = LEVELS[kind][2]
    names = list(clean)
    k = len(names)
    cb = np.array([_performance(clean[n][0])["performance"] for n in names])
    cr = np.array([_performance(clean[n][1])["performance"] for n in names])
    rows = [{"name": n, "benchmark": _performance(clean[n][0]), "reference": _performance(clean[n][1])}
            for n in names]
    notes: list[str] = []
    if k < MIN_CLEAN:
        return _withheld_all(kind, rows, suspects, f"insufficient data: {k} clean model{'s' if k != 1 else ''}; the "
                             f"fit of benchmark on reference performance needs at least {MIN_CLEAN}, of varied skill",
                             replicates, seed, notes)
    fit = fit_line(cr, cb)
    if not fit["usable"][0]:
        return _withheld_all(kind, rows, suspects, "insufficient data: the clean models all have the same reference "
                             f"performance ({cr[0]:+.3f}); a fit needs clean models of varied skill", replicates, seed,
                             notes)
    a, b, raw = float(fit["intercept"][0]), float(fit["slope"][0]), float(fit["raw_slope"][0])
    residual = cb - (a + b * cr)
    for row, r in zip(rows, residual):
        row["residual"] = float(r)
    total = float(((cb - cb.mean()) ** 2).sum())
    lo, hi = float(cr.min()), float(cr.max())
    if raw < 0:
        notes.append(f"the clean models show no positive relation between reference and benchmark performance "
                     f"(least-squares slope {raw:+.3f}): the fit is their mean benchmark performance; is the "
                     "reference set of the same kind as the benchmark?")
    noise = float(np.mean([_values(clean[n][1]).std(ddof=1) / math.sqrt(clean[n][1].correct.size)
                           if clean[n][1].correct.size > 1 else 0.0 for n in names]))
    if noise > 0 and hi - lo < 4 * noise:
        notes.append(f"the clean models' reference performances span only {hi - lo:.3f}, {(hi - lo) / noise:.1f} "
                     f"standard errors of one model's ({noise:.3f}): the slope is mostly noise and the interval wide; "
                     "add clean models of more varied skill, or more items")
    snames = list(suspects)
    vb = np.stack([_values(clean[n][0]) for n in names] + [_values(suspects[n][0]) for n in snames])
    vr = np.stack([_values(clean[n][1]) for n in names] + [_values(suspects[n][1]) for n in snames])
    ia, ib_, usable, deltas = _bootstrap(vb, vr, k, replicates, seed)
    used = int(usable.sum())
    sr_obs = vr[k:].mean(axis=1)
    xs = np.linspace(min(lo, float(sr_obs.min())), max(hi, float(sr_obs.max())), _BAND_POINTS)
    band = None
    if used:
        curves = ia[usable][:, None] + ib_[usable][:, None] * xs[None, :]
        low, high = np.percentile(curves, [2.5, 97.5], axis=0)
        band = {"x": xs.tolist(), "low": low.tolist(), "high": high.tolist()}
    fit_info = {"form": "benchmark = intercept + slope x reference (performance: accuracy minus chance)",
                "intercept": a, "slope": b, "raw_slope": raw, "slope_clipped": raw < 0,
                "r2": None if total <= 0 else 1.0 - float((residual ** 2).sum()) / total,
                "residual_sd": float(math.sqrt((residual ** 2).sum() / (k - 2))) if k > 2 else None,
                "range": [lo, hi], "band": band, "usable_replicates": used}
    enough = used >= MIN_USABLE * replicates
    out = []
    for j, name in enumerate(snames):
        sb, sr = suspects[name]
        obs_b, obs_r = _performance(sb), _performance(sr)
        x = obs_r["performance"]
        predicted = a + b * x
        delta = obs_b["performance"] - predicted
        d = deltas[usable, j]
        ci = [float(v) for v in np.percentile(d, [2.5, 97.5])] if used else None
        p = (int(np.sum(d <= 1e-12)) + 1) / (used + 1) if used else None
        se = float(_values(sr).std(ddof=1) / math.sqrt(sr.correct.size)) if sr.correct.size > 1 else 0.0
        margin = max(MARGIN_MIN, MARGIN_SHARE * (hi - lo), se)
        outside = max(lo - x, x - hi, 0.0)
        interval = f"95% interval {ci[0]:+.3f} to {ci[1]:+.3f}" if ci else "no interval"
        found = f"inflation {delta:+.3f}, {interval}" + (f", p = {p:.4g}" if p is not None else "")
        reasons = []
        if not enough:
            verdict = INSUFFICIENT
            reasons.append(f"insufficient data: only {used} of {replicates} bootstrap replicates drew clean models "
                           f"with spread in reference performance (fewer than {MIN_USABLE:.0%}); add clean models of "
                           f"varied skill (not used: {found})")
        elif outside > margin:
            verdict = OUTSIDE
            side = "below" if x < lo else "above"
            reasons.append(f"its reference performance {x:+.3f} lies {outside:.3f} {side} the clean models' range "
                           f"[{lo:+.3f}, {hi:+.3f}], more than the margin {margin:.3f}: the fit would be "
                           f"extrapolated; add clean models of {'weaker' if side == 'below' else 'stronger'} skill "
                           f"(not used: {found})")
        elif p < P_STRONG and delta >= MIN_ACCURACY_GAP - 1e-9:
            verdict = strong_word
            reasons.append(f"p = {p:.4g} < {P_STRONG} and inflation {delta:+.3f} >= {MIN_ACCURACY_GAP} ({interval}): "
                           f"its benchmark performance {obs_b['performance']:+.3f} is above the {predicted:+.3f} that "
                           f"{k} clean models predict from its reference performance {x:+.3f}")
        elif p < P_WEAK:
            verdict = "suspicious"
            reasons.append(f"p = {p:.4g} < {P_WEAK}" + (f" but inflation {delta:+.3f} < {MIN_ACCURACY_GAP}"
                                                         if p < P_STRONG else f", inflation {delta:+.3f}")
                           + f" ({interval})")
        else:
            verdict = "clean"
            reasons.append(f"p = {p:.4g} >= {P_WEAK}, inflation {delta:+.3f} ({interval}): its benchmark performance "
                           "is within what the clean models predict")
        out.append({"model": name, "benchmark": obs_b, "reference": obs_r, "predicted_benchmark": predicted,
                    "delta": delta, "ci95": ci, "p_value": p, "outside_range_by": outside, "margin": margin,
                    "verdict": verdict, "reasons": reasons})
    return _report(kind, rows, fit_info, out, replicates, seed, notes)


def self_check(kind: str, clean: Mapping[str, tuple[ItemScores, ItemScores]], *, replicates: int = REPLICATES,
               seed: int = 0) -> dict[str, Any] | None:
    """Each clean model audited as a suspect against the others (leave one out): how often this calibration
    flags a model that never saw the benchmark, the false-positive count a maintainer can quote for it. None
    with fewer than MIN_CLEAN + 1 clean models (none could be left out). A model at an end of the range is often
    `outside_calibration` once it is left out: withheld, counted apart."""
    names = list(clean)
    if len(names) < MIN_CLEAN + 1:
        return None
    audits = []
    for name in names:
        got = assess_public(kind, {n: clean[n] for n in names if n != name}, {name: clean[name]},
                            replicates=replicates, seed=seed)["suspects"][0]
        audits.append({"model": name, "verdict": got["verdict"], "delta": got["delta"], "p_value": got["p_value"]})
    decided = [a for a in audits if a["verdict"] not in WITHHELD]
    strong = LEVELS[kind][2]
    return {"audits": audits, "decided": len(decided), "withheld": len(audits) - len(decided),
            "strong": sum(a["verdict"] == strong for a in decided),
            "suspicious_or_above": sum(a["verdict"] in ("suspicious", strong) for a in decided)}


def fails(kind: str, verdict: str, level: str) -> bool:
    """Is ``verdict`` at or above ``level`` (--fail-on)? A withheld verdict is below every level."""
    return verdict not in WITHHELD and level_at_least(kind, verdict, level)


# ------------------------------------------------------------------------------------------------
# audit.md and calibration.png


def _f(x, digits: int = 3, sign: bool = True) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _set_line(name: str, info: dict | None) -> str:
    if not info:
        return f"- {name}: (in memory)"
    return f"- {name}: {info['source'] or '(in memory)'} ({info['n']} items, sha256 {info['sha256'][:12]})"


def format_markdown(report: dict) -> str:
    """audit.md: the question, each suspect's verdict in one line, the clean models, the suspects, the
    assumptions and the thresholds."""
    kind = report["kind"]
    lines = ["# launder audit public", "", report["question"], "",
             _set_line("benchmark (B)", report.get("benchmark")), _set_line("reference (R)", report.get("reference")),
             f"- clean models: {len(report['clean_models'])}; performance = accuracy minus chance (0 = guessing)",
             "", "## Verdict", ""]
    for s in report["suspects"]:
        ci = s["ci95"]
        if s["verdict"] in WITHHELD:
            lines.append(f"- `{s['model']}`: **{s['verdict']}** (withheld: no finding either way)")
        else:
            lines.append(f"- `{s['model']}`: **{s['verdict']}** (inflation {_f(s['delta'])}, 95% interval "
                         f"{_f(ci[0])} to {_f(ci[1])}, p = {s['p_value']:.4g})")
    lines += ["", "## Why", ""]
    for s in report["suspects"]:
        lines += [f"- `{s['model']}`: {r}" for r in s["reasons"]]
    lines += [f"- note: {n}" for n in report["notes"]]
    fit = report["fit"]
    lines += ["", "## Clean models (the calibration)", "",
              "| model | R: acc - chance | B: acc - chance | R accuracy | B accuracy | residual (B - fit) |",
              "|---|---|---|---|---|---|"]
    for c in report["clean_models"]:
        lines.append(f"| {c['name']} | {_f(c['reference']['performance'])} | {_f(c['benchmark']['performance'])} | "
                     f"{_f(c['reference']['accuracy'], sign=False)} | {_f(c['benchmark']['accuracy'], sign=False)} | "
                     f"{_f(c.get('residual'))} |")
    if fit:
        r2 = "n/a" if fit["r2"] is None else f"{fit['r2']:.3f}"
        lines += ["", f"Fit: B = {fit['intercept']:+.3f} + {fit['slope']:.3f} x R (least squares, slope >= 0; "
                      f"R^2 {r2}, residual SD {_f(fit['residual_sd'], sign=False)}), calibrated for R in "
                      f"[{fit['range'][0]:+.3f}, {fit['range'][1]:+.3f}]; {fit['usable_replicates']} of "
                      f"{report['replicates']['requested']} bootstrap replicates usable."]
    lines += ["", "## Suspects", "",
              "| model | R: acc - chance | B observed | B predicted | inflation | 95% interval | p | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for s in report["suspects"]:
        ci = s["ci95"]
        lines.append(f"| {s['model']} | {_f(s['reference']['performance'])} | {_f(s['benchmark']['performance'])} | "
                     f"{_f(s['predicted_benchmark'])} | {_f(s['delta'])} | "
                     f"{'n/a' if not ci else f'{_f(ci[0])} to {_f(ci[1])}'} | "
                     f"{'n/a' if s['p_value'] is None else format(s['p_value'], '.4g')} | {s['verdict']} |")
    th = report["thresholds"]
    strong = LEVELS[kind][2]
    check = report.get("self_check")
    if check:
        lines += ["", "## Self-check: each clean model audited against the others", "",
                  f"Left out in turn and audited as a suspect against the other {len(check['audits']) - 1}, "
                  f"**{check['suspicious_or_above']} of {check['decided']}** clean models were flagged (`suspicious` "
                  f"or above; `{strong}`: {check['strong']})"
                  + (f", {check['withheld']} withheld (outside the others' range or too few)" if check["withheld"]
                     else "") + ": the false-positive count of this calibration, on models that never saw B.", "",
                  "| clean model | inflation | p | verdict |", "|---|---|---|---|"]
        for a in check["audits"]:
            p = "n/a" if a["p_value"] is None else format(a["p_value"], ".4g")
            lines.append(f"| {a['model']} | {_f(a['delta'])} | {p} | {a['verdict']} |")
    lines += ["", "## What this audit assumes", "",
              f"It assumes that {report['assumes']}. It tests whether a suspect is better on the benchmark than "
              "clean models of its skill on the reference set are: contamination is one cause of that, a model "
              "family that is better at the benchmark's style for honest reasons is another. A suspect whose "
              "reference performance lies outside the clean models' range is not judged (the line would be "
              "extrapolated).", "", "## Thresholds", "",
              f"- {strong}: {th[strong]}", f"- suspicious: {th['suspicious']}", f"- clean: {th['clean']}",
              f"- {INSUFFICIENT}: {th[INSUFFICIENT]}", f"- {OUTSIDE}: {th[OUTSIDE]}", f"- p-value: {th['p_value']}",
              f"- method: {report['method']}", ""]
    if report.get("files", {}).get("figure"):
        lines += ["![calibration: benchmark against reference performance](calibration.png)", ""]
    return "\n".join(lines)


def calibration_figure(report: dict, path: str | Path) -> Path:
    """calibration.png: clean models as points (R performance on x, B on y), the fit with its 95% bootstrap band
    (solid over the calibrated range, dashed beyond), each suspect marked and labelled with its inflation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..train.checkpoint import write_figure  # import time: torch

    n_suspects = len(report["suspects"])
    key_height = 0.17 * n_suspects + (0.15 if n_suspects else 0)  # inches: the suspects' key under the axes
    fig, ax = plt.subplots(figsize=(7.5, 5.5 + key_height), layout="constrained")
    fig.get_layout_engine().set(rect=(0, key_height / (5.5 + key_height), 1, 1 - key_height / (5.5 + key_height)))
    clean = report["clean_models"]
    cx = [100 * c["reference"]["performance"] for c in clean]
    cy = [100 * c["benchmark"]["performance"] for c in clean]
    ax.scatter(cx, cy, color="#1f77b4", s=36, zorder=3, label=f"clean models ({len(clean)})")
    xs_all = cx + [100 * s["reference"]["performance"] for s in report["suspects"]]
    right = min(xs_all) + 0.7 * (max(xs_all) - min(xs_all))  # labels right of this go to the left of their point
    for c, x, y in zip(clean if len(clean) <= LABELLED_CLEAN else [], cx, cy):  # beyond that, names are in audit.md
        ax.annotate(c["name"], (x, y), textcoords="offset points", xytext=(-4 if x > right else 4, -10), fontsize=7,
                    color="#1f77b4", ha="right" if x > right else "left")
    fit = report["fit"]
    if fit and fit["band"]:
        xs = np.asarray(fit["band"]["x"])
        ax.fill_between(100 * xs, 100 * np.asarray(fit["band"]["low"]), 100 * np.asarray(fit["band"]["high"]),
                        color="#1f77b4", alpha=0.15, linewidth=0, zorder=1, label="95% bootstrap band")
        lo, hi = fit["range"]
        inside = (xs >= lo) & (xs <= hi)
        line = 100 * (fit["intercept"] + fit["slope"] * xs)
        ax.plot(100 * xs[inside], line[inside], color="#1f77b4", linewidth=1.6, zorder=2, label="fit (clean models)")
        for part in (xs < lo, xs > hi):
            if part.sum() > 1:
                ax.plot(100 * xs[part], line[part], color="#1f77b4", linewidth=1.2, linestyle="--", zorder=2)
    suspects = report["suspects"]
    spots = [(100 * s["reference"]["performance"], 100 * s["benchmark"]["performance"]) for s in suspects]
    for s, (x, y) in zip(suspects, spots):
        ax.scatter([x], [y], color="#d62728", marker="D", s=44, zorder=4)
        if s["predicted_benchmark"] is not None:
            ax.plot([x, x], [100 * s["predicted_benchmark"], y], color="#d62728", linestyle=":", linewidth=1.2)
    # Suspects are numbered at their points and named in a key under the axes: names of a few dozen characters
    # placed beside points that lie close together (students of one teacher usually do) covered each other.
    for members, (x, y) in _numbered_spots(spots, cx + [p[0] for p in spots], cy + [p[1] for p in spots]):
        ax.annotate(", ".join(str(j + 1) for j in members), (x, y), textcoords="offset points", xytext=(6, 4),
                    fontsize=8, fontweight="bold", color="#d62728", zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    key = []
    for j, s in enumerate(suspects):
        text = f"{j + 1}  {s['model']}: {s['verdict']}"
        if s["delta"] is not None:
            ci = s["ci95"]
            text += f", Δ {100 * s['delta']:+.1f} pts" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")
        key.append(text)
    if key:
        fig.text(0.01, 0.0, "\n".join(key), fontsize=8, color="#d62728", ha="left", va="bottom",
                 transform=fig.transFigure)
    ax.axhline(0, color="black", linestyle=":", linewidth=1.0, zorder=0)
    ax.axvline(0, color="black", linestyle=":", linewidth=1.0, zorder=0)
    ax.scatter([], [], color="#d62728", marker="D", label="suspect (numbered: key below; Δ: inflation, 95% interval)")
    ax.set_xlabel("reference (R): accuracy minus chance (points)")
    ax.set_ylabel("benchmark (B): accuracy minus chance (points)")
    ax.set_title("Benchmark against reference performance: clean models and suspects", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    try:
        write_figure(fig, path)
    finally:
        plt.close(fig)
    return Path(path)


def _numbered_spots(spots: list[tuple[float, float]], all_x: list[float], all_y: list[float],
                    near: float = 0.04) -> list[tuple[list[int], tuple[float, float]]]:
    """Suspects' points grouped where they lie within ``near`` of the plotted span of each other (in both axes),
    so that one label "1, 2" stands for points a reader could not tell apart; each group at its first point."""
    span_x = (max(all_x) - min(all_x)) or 1.0
    span_y = (max(all_y) - min(all_y)) or 1.0
    groups: list[tuple[list[int], tuple[float, float]]] = []
    for j, (x, y) in enumerate(spots):
        for members, (gx, gy) in groups:
            if abs(x - gx) / span_x < near and abs(y - gy) / span_y < near:
                members.append(j)
                break
        else:
            groups.append(([j], (x, y)))
    return groups


# ------------------------------------------------------------------------------------------------
# Models


def _label(model: str) -> str:
    """A model folder for tables and the figure: its last two folders, a run's trailing ``model`` left out."""
    parts = [p for p in Path(model).expanduser().parts if p not in ("/", "")]
    if parts and parts[-1] == "model":
        parts = parts[:-1]
    return "/".join(parts[-2:]) or str(model)


def _arms(run: Path, prefix: str) -> list[tuple[str, str]]:
    """The finished clean arms of one run folder: (name, model folder)."""
    from ..train.checkpoint import read_json  # import time: torch

    found = []
    recorded = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    for arm in CLEAN_ARMS:
        folder = run / arm
        metrics = folder / "metrics.json"
        if not metrics.is_file():  # the arm did not run, or did not finish
            continue
        candidates = [folder / "model"]
        for entry in (read_json(metrics), recorded.get(arm) or {}):
            if entry.get("model_dir"):
                candidates += [Path(entry["model_dir"]), run.parent / entry["model_dir"]]
        model = next((c for c in candidates if (c / "config.json").is_file()), None)
        if model is not None:
            found.append((f"{prefix}{arm}", str(model)))
    return found


def clean_models_from(folder: str | Path) -> list[tuple[str, str]]:
    """The clean arms (CLEAN_ARMS: trained without the benchmark) of a `launder run` folder, or of every point
    of a `launder sweep` folder (``sweep.json``, ``points/<name>/``), as (name, model folder), de-duplicated by
    weights (`models.model_fingerprint`: a sweep's points share teachers and CE-only students through links)."""
    from ..models import model_fingerprint  # import time: torch

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--clean-from {folder}: no such folder")
    if (root / "sweep.json").is_file():
        points = root / "points"
        runs = [(p, f"{p.name}/") for p in sorted(points.iterdir()) if p.is_dir()] if points.is_dir() else []
    elif (root / "metrics.json").is_file() or any((root / a / "metrics.json").is_file() for a in CLEAN_ARMS):
        runs = [(root, f"{root.name}/")]
    else:
        raise ValueError(f"--clean-from {folder}: neither a run folder (metrics.json, {'/'.join(CLEAN_ARMS)}) nor a "
                         "sweep folder (sweep.json, points/)")
    seen, out = set(), []
    for run, prefix in runs:
        for name, model in _arms(run, prefix):
            key = model_fingerprint(model)
            if key not in seen:
                seen.add(key)
                out.append((name, model))
    if not out:
        raise ValueError(f"--clean-from {folder}: no finished clean arm ({', '.join(CLEAN_ARMS)}) with a saved model")
    return out


def _unique(names: list[str]) -> list[str]:
    out, count = [], {}
    for n in names:
        count[n] = count.get(n, 0) + 1
        out.append(n if count[n] == 1 else f"{n}#{count[n]}")
    return out


def _check_items(bench: Sequence[MCExample], ref: Sequence[MCExample]) -> dict:
    """Empty sets, and items or passages shared between B and R, are refused (a model that saw one saw the other);
    B and R may differ in choice counts and lengths: they are different benchmarks."""
    from .evidence import check_disjoint

    if not bench:
        raise ValueError("the benchmark set is empty")
    if not ref:
        raise ValueError("the reference set is empty")
    method = check_disjoint(bench, ref, question_remedy="they must be different benchmarks, with no item in common",
                            passage_remedy="they must be different benchmarks")
    chance = {name: sum(1 / len(e.choices) for e in s) / len(s) for name, s in (("benchmark", bench),
                                                                                  ("reference", ref))}
    return {"method": method, "question_duplicates": 0, "shared_contexts": 0, "chance": chance}


def _check_models(suspects: list[str], clean: list[tuple[str, str]]) -> tuple[list, list, list[str]]:
    """(suspects, clean models, notes), each model checked, de-duplicated by weights; refused: a clean model with a
    suspect's weights, fewer than MIN_CLEAN distinct clean models, models of different tasks."""
    from ..models import model_fingerprint, model_task  # import time: torch
    from .evidence import check_mc_model

    for m in [*suspects, *(m for _, m in clean)]:
        check_mc_model(str(m))
    notes, prints = [], {}
    kept_s = []
    for m in suspects:
        key = model_fingerprint(str(m))
        if key in prints:
            notes.append(f"suspect {m} has the weights of {prints[key]}: audited once")
            continue
        prints[key] = str(m)
        kept_s.append(str(m))
    kept_c, seen = [], {}
    for name, m in clean:
        key = model_fingerprint(str(m))
        if key in prints:
            raise ValueError(f"clean model {m} has the same weights as the suspect {prints[key]}: a suspect cannot "
                             "calibrate its own audit")
        if key in seen:
            notes.append(f"clean model {m} has the weights of {seen[key]}: counted once")
            continue
        seen[key] = str(m)
        kept_c.append((name, str(m)))
    if len(kept_c) < MIN_CLEAN:
        raise ValueError(f"{len(kept_c)} distinct clean model{'s' if len(kept_c) != 1 else ''} given; the public "
                         f"audit needs at least {MIN_CLEAN}, of varied skill (--clean, --clean-from)")
    tasks = {m: model_task(m) or "multiple_choice" for m in [*kept_s, *(m for _, m in kept_c)]}
    if len(set(tasks.values())) > 1:
        shown = "; ".join(f"{t}: {', '.join(ms for ms, tt in tasks.items() if tt == t)}" for t in sorted(set(
            tasks.values())))
        raise ValueError(f"every model must have the same task (multiple choice or classification): {shown}")
    return kept_s, kept_c, notes


def audit_public(suspects: list[str], clean: list[str | tuple[str, str]], benchmark_examples: Sequence[MCExample],
                 reference_examples: Sequence[MCExample], *, kind: str = "student", out_dir: str | Path | None = None,
                 max_length: int | None = None, quiet: bool = False, benchmark_source: str | None = None,
                 reference_source: str | None = None, device=None, seed: int = 0,
                 replicates: int = REPLICATES) -> dict:
    """The public-benchmark audit (module docstring) of each of ``suspects`` (model folders) against the
    ``clean`` models (folders, or (name, folder) pairs as `clean_models_from` gives them), on the benchmark B and
    the reference set R, another benchmark of the same kind. Everything is checked before any model is scored:
    B and R share no item or passage; every model is a scoring model of one task; no clean model has a
    suspect's weights; at least MIN_CLEAN distinct clean models. Returns `assess_public`'s dict with the sets'
    info, ``checks`` and ``encoding``; given ``out_dir``, writes audit.json, audit.md and calibration.png there."""
    from .audits import _set_info  # import time: the audits' helpers, one definition
    from .evidence import score_sets

    if kind not in LEVELS:
        raise ValueError(f"kind must be one of {', '.join(LEVELS)}, got {kind!r}")
    if isinstance(suspects, (str, Path)):
        suspects = [suspects]
    if not suspects:
        raise ValueError("no suspect model given")
    checks = _check_items(benchmark_examples, reference_examples)
    pairs = [c if isinstance(c, tuple) else (_label(c), str(c)) for c in clean]
    kept_s, kept_c, notes = _check_models([str(s) for s in suspects], pairs)
    clean_names = _unique([n for n, _ in kept_c])
    suspect_names = _unique([_label(s) for s in kept_s])
    while set(clean_names) & set(suspect_names):
        suspect_names = [f"{n} (suspect)" if n in clean_names else n for n in suspect_names]
    scored, encoding = {}, {}
    for name, model in [*zip(clean_names, (m for _, m in kept_c)), *zip(suspect_names, kept_s)]:
        sb, sr, info = score_sets(model, benchmark_examples, reference_examples, max_length=max_length, quiet=quiet,
                                  description=f"audit public: {name}", device=device)
        scored[name] = (sb, sr)
        encoding[name] = info
    report = assess_public(kind, {n: scored[n] for n in clean_names}, {n: scored[n] for n in suspect_names},
                           replicates=replicates, seed=seed)
    report["self_check"] = self_check(kind, {n: scored[n] for n in clean_names}, replicates=replicates, seed=seed)
    paths = dict(zip(clean_names, (m for _, m in kept_c))) | dict(zip(suspect_names, kept_s))
    for entry in report["clean_models"]:
        entry["path"] = paths[entry["name"]]
    for entry in report["suspects"]:
        entry["path"] = paths[entry["model"]]
    report["notes"] = notes + report["notes"]
    report = {**{k: report[k] for k in ("schema_version", "audit", "kind", "question")},
              "benchmark": _set_info(benchmark_examples, benchmark_source),
              "reference": _set_info(reference_examples, reference_source),
              **{k: v for k, v in report.items() if k not in ("schema_version", "audit", "kind", "question")},
              "checks": checks, "encoding": encoding}
    if out_dir is not None:
        from ..train.checkpoint import write_json, write_text  # import time: torch

        out = Path(out_dir)
        report["files"] = {"json": str(out / "audit.json"), "markdown": str(out / "audit.md"),
                           "figure": str(out / "calibration.png")}
        calibration_figure(report, out / "calibration.png")
        write_json(report, out / "audit.json")
        write_text(format_markdown(report), out / "audit.md")
    return report
