"""The per-benchmark table of a study over several benchmarks (experiments/per_benchmark.py)."""

from __future__ import annotations

import math

import pytest

from pylaundering.experiments.per_benchmark import _t_sf, markdown, per_benchmark, seed_test


@pytest.mark.parametrize("t, df, p", [(2.919986, 2, 0.05), (1.0, 1, 0.25), (-1.0, 1, 0.75), (1.812461, 10, 0.05),
                                      (0.0, 5, 0.5), (6.964557, 2, 0.01)])
def test_t_tail_matches_published_quantiles(t, df, p):
    assert _t_sf(t, df) == pytest.approx(p, abs=2e-6)


def test_t_tail_matches_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for t in (-3.0, -0.4, 0.2, 1.7, 4.5, 12.0):
        for df in (1, 2, 4, 9, 30):
            assert _t_sf(t, df) == pytest.approx(float(stats.t.sf(t, df)), rel=1e-9, abs=1e-12)


def test_seed_test_by_hand():
    s = seed_test([0.01, 0.02, 0.03])
    se = 0.01 / math.sqrt(3)
    assert s["mean"] == pytest.approx(0.02) and s["t"] == pytest.approx(0.02 / se)
    assert s["ci95"][0] == pytest.approx(0.02 - 4.302652730 * se)
    assert seed_test([0.05])["p_value"] is None


def _row(bench, seed, loss, excess, p, verdicts=("clean", "clean", "clean", "laundered")):
    ct, ce, cs, st = verdicts
    return {"benchmark": bench, "seed": seed, "name": f"{bench}-{loss}-{seed}", "excess": excess, "excess_p": p,
            "chance": 0.25, "teacher_acc": 0.99, "student_acc": 0.5, "control_student_acc": 0.5 - excess,
            "ce_student_acc": 0.3, "audit_clean_teacher_verdict": ct, "audit_ce_student_verdict": ce,
            "audit_control_student_verdict": cs, "audit_student_verdict": st}


def test_seeds_are_the_units_and_shared_models_count_once():
    rows = [_row("A", s, loss, 0.10 + 0.01 * s, 0.001) for s in range(3) for loss in ("kl", "mse")]
    rows += [_row("B", s, loss, (-1) ** s * 0.02, 0.4, ("suspicious", "clean", "clean", "clean"))
             for s in range(3) for loss in ("kl", "mse")]
    a, b = per_benchmark(rows)
    assert a["benchmark"] == "A" and a["seeds"] == 3 and a["points"] == 6
    assert a["excess"]["mean"] == pytest.approx(0.11) and a["significant"]
    assert a["points_bootstrap_significant"] == 6
    # per seed one clean teacher and one CE-only student, per point one control student: 3 + 3 + 6
    assert sum(a["audit_clean_models"].values()) == 12 and a["audit_students"] == {"laundered": 6}
    assert not b["significant"] and b["audit_clean_models"]["suspicious"] == 3
    text = "\n".join(markdown([a, b]))
    assert "**1 of 2** benchmarks tested over seeds" in text and "laundered 6" in text
    assert "B-specific, over seeds" not in text  # no point carries it (runs not audited against a control)
    assert markdown([a]) == []  # one benchmark: no section


def test_one_set_of_items_at_two_paths_is_one_benchmark_and_one_seed_is_untested():
    """The ARC study: one split of ARC-Challenge laundered through ARC-Easy (2 seeds) and through CommonsenseQA
    (seed 0, the same teacher) was two "benchmarks", the second counted as "no effect" at +18 points on one seed."""
    rows = [_row("arc+easy/benchmark.jsonl", s, "kl", e, 0.0001) for s, e in ((0, 0.181), (1, 0.191))]
    rows.append(_row("arc+csqa/benchmark.jsonl", 0, "kl", 0.183, 0.0001))
    rows.append(_row("sst2/benchmark.jsonl", 0, "kl", -0.02, 0.6))
    rows.append(_row("other/benchmark.jsonl", 0, "kl", 0.15, 0.0001))  # same name pattern, other items
    for r in rows[:3]:
        r["_benchmark_hash"] = "arc-B"
    rows[3]["_benchmark_hash"], rows[4]["_benchmark_hash"] = "sst2-B", "other-B"
    arc, sst2, other = per_benchmark(rows)
    assert arc["points"] == 3 and arc["seeds"] == 2 and arc["also_at"] == ["arc+csqa/benchmark.jsonl"]
    # seed 0's two points share a teacher: one unit, their mean
    assert arc["excess"]["mean"] == pytest.approx(((0.181 + 0.183) / 2 + 0.191) / 2)
    assert sst2["excess"]["p_value"] is None and not sst2["significant"]
    text = "\n".join(markdown([arc, sst2, other]))
    assert "the same items at 1 more path(s)" in text
    assert text.count("untested (1 seed)") == 2
    assert arc["significant"] and "on **1 of 1** benchmarks tested over seeds" in text
    assert "2 more with one seed" in text
    del rows[2]["_benchmark_hash"]  # rows without the hash (older studies): grouped by path, as before
    assert len(per_benchmark(rows)) == 4


def test_the_synthetic_benchmark_is_one_benchmark_whatever_each_seed_draws():
    """Each seed of the offline default generates its own items: still one benchmark, tested over its seeds."""
    rows = [_row("synthetic", s, "kl", 0.2 + 0.01 * s, 0.001) for s in range(3)]
    for s, r in enumerate(rows):
        r["_benchmark_hash"] = f"synthetic-items-of-seed-{s}"
    (one,) = per_benchmark(rows)
    assert one["seeds"] == 3 and one["significant"]


def test_an_effect_on_the_benchmark_items_that_a_loss_of_general_skill_hides():
    """The real-data pattern (SST-2): the laundered student gains on B's own items what it loses in general skill,
    so its excess on B is about 0 while its B - R gap beats its control's in every seed."""
    rows = []
    for s, (ex, spec, p) in enumerate(((-0.03, 0.056, 0.2), (0.02, 0.076, 0.001), (0.01, 0.048, 0.03))):
        for loss in ("kl", "mse"):
            r = _row("sst2", s, loss, ex, 0.5)
            r.update(b_specific=spec, b_specific_p=p)
            rows.append(r)
    rows += [dict(_row("ag", s, "kl", 0.0, 0.5), b_specific=(-1) ** s * 0.02, b_specific_p=None) for s in range(3)]
    sst2, ag = per_benchmark(rows)
    assert not sst2["significant"] and sst2["b_specific_significant"]
    assert sst2["b_specific"]["mean"] == pytest.approx((0.056 + 0.076 + 0.048) / 3)
    assert sst2["b_specific"]["p_value"] == pytest.approx(seed_test([0.056, 0.076, 0.048])["p_value"])
    assert (sst2["points_control_test_significant"], sst2["points_with_control_test"]) == (4, 6)
    assert not ag["b_specific_significant"] and ag["points_with_control_test"] == 0
    text = "\n".join(markdown([sst2, ag]))
    assert "+6.0 [" in text and "**yes**" in text and "4 of 6" in text
    assert "**0 of 2** benchmarks tested over seeds" in text
    assert "specific to the benchmark's items (B-specific, over seeds) on **1 of 2**" in text
