"""audit.md: the audit's evidence, tests, verdict and thresholds, readable without the JSON."""

from __future__ import annotations


def _p(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _comparability(report: dict) -> list[str]:
    from .comparability import describe  # import time: numpy, which the rest of this module does not need

    comp = report.get("comparability")
    if not comp:
        return []
    lines = ["", "## Is the reference set comparable?", "",
             f"**{'yes' if comp['comparable'] else 'no: verdict withheld'}** (rule: {comp['rule']}).", ""]
    for name, check in comp["checks"].items():
        flag = " **too far apart**" if check.get("too_far") else ""
        lines.append(f"- {describe(name, check)}{flag}")
    counts = comp["checks"]["choice_counts"]
    lines.append(f"- choice counts: benchmark {_shares(counts['benchmark'])}, reference "
                 f"{_shares(counts['reference'])}; chance {counts['chance']['benchmark']:.3f} vs "
                 f"{counts['chance']['reference']:.3f}")
    return lines


def _shares(d: dict) -> str:
    return ", ".join(f"{k}: {v:.0%}" for k, v in d.items())


def format_markdown(report: dict) -> str:
    kind = report["audit"]
    ex = report.get("exchangeability") or {}
    lines = [f"# launder audit {kind}: **{report['verdict']}**", "", report["question"], "",
             f"- model: `{report['model']}`",
             f"- benchmark: {report['benchmark']['source'] or '(in memory)'} ({report['benchmark']['n']} items, "
             f"sha256 {report['benchmark']['sha256'][:12]})",
             f"- reference: {report['reference']['source'] or '(in memory)'} ({report['reference']['n']} items, "
             f"sha256 {report['reference']['sha256'][:12]})",
             f"- exchangeability: **{ex.get('status', 'assumed')}**: {ex.get('detail', '')}",
             f"- score (z of the core test): {report['score']:.3f}",
             f"- accuracy gap (accuracy minus chance, benchmark - reference): {report['accuracy_gap']:+.3f}", "",
             "## Why this verdict", ""]
    lines += [f"- {r}" for r in report["reasons"]]
    enough = report.get("data_sufficiency")
    if enough:
        least = enough["smallest_sizes"]
        lines += [f"- data sufficiency: smallest attainable core p {enough['min_attainable_p']:.3g} "
                  f"({'<' if enough['sufficient'] else '>='} {enough['threshold']}); the smallest sizes that can "
                  f"reach it: {least['reference_for_this_benchmark']} reference items for "
                  f"{enough['sizes']['benchmark']} benchmark items, {least['benchmark_for_this_reference']} "
                  f"benchmark items for {enough['sizes']['reference']} reference items, or {least['equal']} of each",
                  f"- rule: {enough['rule']}"]
    lines += _comparability(report)
    lines += ["", "## Tests", "", "| test | benchmark | reference | difference | p | z | Cliff's delta |",
              "|---|---|---|---|---|---|---|"]
    for name, t in report["tests"].items():
        if "benchmark_mean" in t:
            lines.append(f"| {name}: {t['what']} ({t['alternative']}) | {_f(t['benchmark_mean'])} | "
                         f"{_f(t['reference_mean'])} | {t['difference']:+.3f} | {_p(t['p_value'])} | {t['z']:.2f} | "
                         f"{_f(t['effect_size']['cliffs_delta'])} |")
    if "teacher_agreement" in report["tests"]:
        t = report["tests"]["teacher_agreement"]
        lines += ["", "Teacher agreement by stratum (the test compares B with R within each; " + t["test"] + "):", "",
                  "| stratum | benchmark items | reference items | agreement, benchmark | agreement, reference |",
                  "|---|---|---|---|---|"]
        for stratum, st in t["strata"].items():
            lines.append(f"| {stratum.replace('_', ' ')} | {st['benchmark_items']} | {st['reference_items']} | "
                         f"{_f(st['agreement_benchmark'])} | {_f(st['agreement_reference'])} |")
        if t.get("note"):
            lines += ["", t["note"]]
    if "control" in report["tests"]:
        c = report["tests"]["control"]
        ax = c["accuracy_excess"]
        lines += ["", "## Control", "", f"Control: {c['control']}.", "",
                  f"Tested: {c['test']}. Accuracy of the model minus the control's: benchmark "
                  f"{ax['benchmark']:+.3f}, reference {ax['reference']:+.3f}, difference in differences "
                  f"{ax['difference_in_differences']:+.3f}.",
                  "", "| set | model - control accuracy | 95% CI (paired bootstrap) | one-sided p | McNemar p |",
                  "|---|---|---|---|---|"]
        for s in ("benchmark", "reference"):
            b = c[s]
            lines.append(f"| {s} | {b['diff']:+.3f} | [{b['ci95'][0]:+.3f}, {b['ci95'][1]:+.3f}] | "
                         f"{_p(b['p_value'])} | {_p(b['mcnemar']['p_value'])} |")
    th = report["thresholds"]
    lines += ["", "## Thresholds", ""]
    lines += [f"- **{k}**: {th[k]}" for k in list(th)[:5]]
    lines += [f"- core test: {th['core_test']}, {th['resamples']} resamples",
              "- false-positive rates: " + "; ".join(f"{k} {v}" for k, v in th["false_positive_rate"].items()
                                                     if k != "assumes"),
              f"- assumes: {th['false_positive_rate']['assumes']}",
              f"- score: {th['score']}", ""]
    ev = report["evidence"]
    lines += ["## Evidence", "", "| model | set | n | accuracy | mean p(correct) | mean loss | mean margin |",
              "|---|---|---|---|---|---|---|"]
    for who, sets in [("audited", ev)] + [(k, ev[k]) for k in ("teacher", "control") if k in ev]:
        for s in ("benchmark", "reference"):
            e = sets[s]
            lines.append(f"| {who} | {s} | {e['n']} | {e['accuracy']:.3f} | {e['mean_p_correct']:.3f} | "
                         f"{e['mean_loss']:.3f} | {e['mean_margin']:.3f} |")
    lines.append("")
    return "\n".join(lines)
