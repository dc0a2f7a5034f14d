"""Detection quality of the audit over a study: ROC AUC, TPR at 1% FPR, verdict counts."""

from __future__ import annotations

import random

import pytest

from pylaundering.experiments.detection import detection_quality, roc_auc, tpr_at_fpr


def test_roc_auc_against_pairwise_counting():
    assert roc_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert roc_auc([1.0], [2.0]) == 0.0
    assert roc_auc([1.0, 2.0], [1.0, 2.0]) == 0.5  # ties count one half
    rng = random.Random(0)
    pos = [rng.gauss(1, 1) for _ in range(40)]
    neg = [rng.gauss(0, 1) for _ in range(60)]
    # independent reference: the Mann-Whitney U statistic from ranks
    ranked = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum = sum(i + 1 for i, (_, is_pos) in enumerate(ranked) if is_pos)
    u = rank_sum - len(pos) * (len(pos) + 1) / 2
    assert roc_auc(pos, neg) == pytest.approx(u / (len(pos) * len(neg)))
    assert roc_auc([], neg) is None


def test_tpr_at_fpr():
    neg = list(range(200))  # 1% of 200 = 2 allowed false positives: threshold = third-highest negative
    res = tpr_at_fpr([197.5, 198.5, 250.0, 10.0], neg, 0.01)
    assert res["threshold"] == 197 and res["false_positives_allowed"] == 2
    assert res["tpr"] == 0.75
    small = tpr_at_fpr([5.0, 2.0], [1.0, 3.0], 0.01)  # no false positive allowed: above the top negative
    assert small["threshold"] == 3.0 and small["tpr"] == 0.5


def _row(alpha, student, control, ce, verdicts=("laundered", "clean", "clean")):
    return {"alpha": alpha, "audit_student_score": student, "audit_control_student_score": control,
            "audit_ce_student_score": ce, "audit_student_verdict": verdicts[0],
            "audit_control_student_verdict": verdicts[1], "audit_ce_student_verdict": verdicts[2],
            "audit_teacher_verdict": "contaminated", "audit_clean_teacher_verdict": "clean"}


def test_detection_quality_counts_alpha_zero_students_out():
    rows = [_row(1.0, 7.0, 0.1, -0.3), _row(0.5, 3.0, 0.2, 2.5, ("laundered", "clean", "suspicious")),
            _row(0.0, 9.0, 0.0, 0.0)]
    q = detection_quality(rows)
    assert q["positives"] == 2 and q["negatives"] == 6
    assert q["roc_auc"] == pytest.approx((6 + 6) / 12)  # both positives above every negative (max 2.5)
    assert q["false_positive_rate"]["suspicious_or_above"] == pytest.approx(1 / 6)
    assert q["false_positive_rate"]["laundered"] == 0
    assert q["verdicts"]["student"] == {"laundered": 3}
    assert q["detection_rate_by_alpha"]["0.5"]["rate"] == 1.0
    assert detection_quality([{"alpha": 1.0}]) is None


def test_insufficient_data_is_neither_clean_nor_a_detection():
    from pylaundering.experiments.detection import markdown

    small = ("insufficient_data", "insufficient_data", "clean")
    rows = [_row(1.0, 7.0, 0.1, -0.3), _row(1.0, 0.4, 0.2, 0.0, small), _row(0.5, 3.0, 0.0, 0.1)]
    q = detection_quality(rows)
    fp = q["false_positive_rate"]
    # 6 negative verdicts, 1 of them insufficient: 5 decided, none suspicious or above
    assert fp["negatives"] == 5 and fp["suspicious_or_above"] == 0 and fp["insufficient_data"] == 1
    by_alpha = q["detection_rate_by_alpha"]["1.0"]
    assert by_alpha == {"n": 1, "laundered": 1, "insufficient_data": 1, "not_comparable": 0, "rate": 1.0,
                        "ci95": [pytest.approx(0.2065, abs=1e-4), 1.0]}  # Wilson, 1 of 1
    lines = markdown(q)
    header = [line for line in lines if line.startswith("| Model |")][0]
    assert header.rstrip(" |").endswith("insufficient data")  # its own column, last
    student = [line for line in lines if line.startswith("| student |")][0]
    assert student.rstrip(" |").endswith("| 1") and "| 0 | 0 | 2 | 0 |" in student  # 2 laundered, 1 insufficient


def test_not_comparable_is_withheld_like_insufficient_data():
    """A reference set unlike the benchmark withholds the verdict: out of the false-positive denominators
    and out of the detection rate, each counted in its own column."""
    from pylaundering.experiments.detection import markdown

    rows = [_row(1.0, 7.0, 0.1, -0.3, ("not_comparable", "not_comparable", "suspicious")),
            _row(1.0, 6.0, 0.2, 0.0), _row(0.5, 3.0, 0.0, 0.1, ("laundered", "insufficient_data", "clean"))]
    q = detection_quality(rows)
    fp = q["false_positive_rate"]
    # 6 negative verdicts: 1 not comparable, 1 insufficient, 4 decided (1 suspicious)
    assert fp["negatives"] == 4 and fp["not_comparable"] == 1 and fp["insufficient_data"] == 1
    assert fp["suspicious_or_above"] == pytest.approx(1 / 4)
    assert q["detection_rate_by_alpha"]["1.0"] == {"n": 1, "laundered": 1, "insufficient_data": 0,
                                                   "not_comparable": 1, "rate": 1.0,
                                                   "ci95": [pytest.approx(0.2065, abs=1e-4), 1.0]}
    lines = markdown(q)
    header = [line for line in lines if line.startswith("| Model |")][0]
    assert header.rstrip(" |").endswith("insufficient data | not comparable")
    assert any("`not_comparable`" in line for line in lines)


def test_a_model_that_several_points_share_counts_once():
    """A sweep's CE-only student is one model at every alpha, and at alpha 0 the control student is that model:
    counted per point it made 22 negatives of one clean model (the old code: 6 here, not 3)."""
    from pylaundering.experiments.detection import markdown

    rows = [_row(0.0, 0.5, 0.5, 0.5, ("clean", "clean", "clean")), _row(0.5, 3.0, 0.2, 0.5),
            _row(1.0, 7.0, 2.8, 0.5, ("laundered", "suspicious", "clean"))]
    for i, r in enumerate(rows):
        r["_models"] = {"ce_student": "shared/ce", "student": f"student-{i}",
                        "control_student": "shared/ce" if i == 0 else f"control-{i}"}
    q = detection_quality(rows)
    assert q["negatives"] == 3 and q["shared_models_counted_once"] == 3
    fp = q["false_positive_rate"]
    assert fp["negatives"] == 3 and fp["suspicious_or_above"] == pytest.approx(1 / 3)
    lo, hi = fp["suspicious_or_above_ci95"]
    # Wilson interval of 1 of 3, from its formula
    z = 1.959963984540054
    centre, half = (1 / 3 + z * z / 6) / (1 + z * z / 3), z * (2 / 27 + z * z / 36) ** 0.5 / (1 + z * z / 3)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert q["verdicts"]["ce_student"] == {"clean": 1}
    assert q["positives"] == 2  # alpha 0 is out
    assert any("counted once" in line for line in markdown(q))


def test_collect_names_a_shared_model_alike_from_every_point(tmp_path):
    """The identity the rates count by: the linked folder's real path, or (moved elsewhere) the sweep's key."""
    from pylaundering.experiments.collect import _model_identity, _pair_identity

    model = tmp_path / "shared" / "ce_student-abc" / "model"
    model.mkdir(parents=True)
    for point in ("p0", "p1"):
        (tmp_path / point).mkdir()
        (tmp_path / point / "ce_student").symlink_to(tmp_path / "shared" / "ce_student-abc")
        (tmp_path / point / "control_student").symlink_to("ce_student")

    def metrics(point, exists=True):
        base = tmp_path if exists else tmp_path / "moved"
        return {"ce_student": {"model_dir": str(base / point / "ce_student" / "model")},
                "control_student": {"model_dir": str(base / point / "ce_student" / "model")},
                "student": {"model_dir": str(base / point / "student" / "model")},
                "shared": {"folder": "S", "keys": {"ce_student": "ce_student-abc"}},
                "data": {"benchmark_hash": "b"}, "audit": {"reference": {"sha256": "r"}}}

    for exists in (True, False):
        ids = {_model_identity(metrics(p, exists), arm, tmp_path / p) for p in ("p0", "p1")
               for arm in ("ce_student", "control_student")}
        assert len(ids) == 1, ids
        assert _model_identity(metrics("p0", exists), "student", tmp_path) != \
            _model_identity(metrics("p1", exists), "student", tmp_path)
    other_r = metrics("p0")
    other_r["audit"]["reference"]["sha256"] = "r2"  # the same model audited on another R: another audit
    assert _model_identity(other_r, "ce_student", tmp_path) != _model_identity(metrics("p0"), "ce_student", tmp_path)
    assert _pair_identity(metrics("p0")) == _pair_identity(metrics("p1")) != _pair_identity(other_r)


def test_the_rates_say_over_how_many_pairs_and_where_the_flags_fell():
    """Models audited on one B/R pair share its draw: three clean models flagged on one unlucky split are one
    event, not three; the report must say so beside the Wilson interval that counts them as three."""
    from pylaundering.experiments.detection import markdown

    flagged = ("laundered", "suspicious", "suspicious")
    rows = [_row(1.0, 7.0, 2.0, 2.1, flagged), _row(0.5, 6.0, 1.9, 2.1, flagged),
            _row(1.0, 7.0, 0.1, 0.2), _row(0.5, 6.0, 0.0, 0.2)]
    for i, r in enumerate(rows):
        r["_pair"] = "B b1|R r1" if i < 2 else "B b2|R r2"
        r["_models"] = {"student": f"s{i}", "control_student": f"c{i}", "ce_student": f"ce-{r['_pair']}"}
    q = detection_quality(rows)
    fp = q["false_positive_rate"]
    assert fp["negatives"] == 6 and fp["suspicious_or_above"] == pytest.approx(3 / 6)
    pairs = fp["pairs"]
    assert pairs["count"] == 2 and pairs["with_a_flag"] == 1 and pairs["most_flags_in_one"] == 3
    assert sorted(p["negatives"] for p in pairs["per_pair"]) == [3, 3]
    line = next(x for x in markdown(q) if "benchmark/reference pair" in x)
    assert "2 benchmark/reference pair(s)" in line and "model(s) fall in 1 of them, at most 3 in one" in line
    for r in rows:
        r["_pair"] = "B b1|R r1"
    one = detection_quality(rows)["false_positive_rate"]["pairs"]
    assert one["count"] == 1
    assert any("one split's counts" in x for x in markdown(detection_quality(rows)))
    del rows[0]["_pair"]  # a row that does not say where it was audited: no claim about pairs
    assert detection_quality(rows)["false_positive_rate"]["pairs"] is None
    assert not any("benchmark/reference pair" in x for x in markdown(detection_quality(rows)))


def test_collect_b_specific_is_the_students_b_r_gap_minus_its_controls(tmp_path):
    """The B-specific column by hand; its p from metrics.json's control_p, or from the student's audit.json for
    runs audited before metrics.json recorded it."""
    import json

    from pylaundering.experiments.collect import _audit_columns

    def arm(b, r, **extra):
        return {"verdict": "clean", "score": 0.0, "accuracy_benchmark": b, "accuracy_reference": r, **extra}

    audit = {"arms": {"student": arm(0.783, 0.667, control_p=0.0001), "control_student": arm(0.767, 0.74)}}
    row = _audit_columns(audit)
    assert row["b_specific"] == pytest.approx((0.783 - 0.667) - (0.767 - 0.74))
    assert row["b_specific_p"] == 0.0001
    old = tmp_path / "audit.json"
    old.write_text(json.dumps({"tests": {"control": {"p_value": 0.034}}}))
    audit["arms"]["student"] = arm(0.87, 0.80, file=str(old))  # no control_p key: an older run
    assert _audit_columns(audit)["b_specific_p"] == 0.034
    audit["arms"]["student"]["file"] = str(tmp_path / "moved.json")
    assert _audit_columns(audit)["b_specific_p"] is None
    del audit["arms"]["control_student"]  # no control arm (--no-controls): nothing to difference
    assert _audit_columns(audit)["b_specific"] is None
