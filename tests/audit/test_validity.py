"""The audit's error rates on simulated models whose truth is known (`audit.calibrate`), many seeds each.

Each invalid case of issue 35 is here: a clean student above chance audited with a contaminated teacher
(the raw agreement test fired in nearly every trial), a pretrained clean student against a control
trained from random weights (the excess on B alone always fired), a reference set with another mix of
choice counts or another kind of item (the core test measured difficulty). Every rate is compared with
the level the verdict states, and every "old" rate is computed by an independent reference (the plain
permutation test or bootstrap the old code used) on the same data, so the scenario is shown to be the
one that broke it. Resamples are fewer than the audit's 10,000 (999: p can still reach 0.001).
"""

from __future__ import annotations

import numpy as np
import pytest

from pylaundering.audit.audits import assess
from pylaundering.audit.calibrate import knowledge, make_items, model_scores
from pylaundering.audit.comparability import SetFeatures, compare_sets
from pylaundering.audit.secondary import agreement_tests, control_tests
from pylaundering.audit.verdict import NOT_COMPARABLE, core_tests
from pylaundering.stats import paired_bootstrap, permutation_test

R = 999
ALPHA = 0.01
# Binomial(200, 0.01) exceeds 4 (2%) with probability 5%; the tests below are far from their bounds.
TRIALS = 200


def _clean_student_and_contaminated_teacher(seed: int, *, n: int = 300, correlation: float = 0.0, lure: float = 0.0,
                                            launder: float = 0.0):
    """The issue's case: a student that never saw B, about 55% right on both sets; a teacher fine-tuned on B,
    right on about 99% of B and 50% of R. ``launder`` > 0: the student copies the teacher's answers on B."""
    rng = np.random.default_rng(seed)
    ib, ir = make_items(rng, n), make_items(rng, n)
    teacher_skill = 0.99 if correlation == 0 else 1.5  # with difficulty, 1.5 still knows ~all of B
    tb = model_scores(rng, ib, knowledge(rng, ib, teacher_skill, correlation=correlation), lure=lure)
    tr = model_scores(rng, ir, knowledge(rng, ir, 0.33, correlation=correlation), lure=lure)
    sb = model_scores(rng, ib, knowledge(rng, ib, 0.4, correlation=correlation), lure=lure,
                      copy=tb.prediction if launder else None, copy_strength=launder)
    sr = model_scores(rng, ir, knowledge(rng, ir, 0.4, correlation=correlation), lure=lure)
    return sb, sr, tb, tr


@pytest.mark.parametrize("correlation, lure", [(0.0, 0.0), (0.8, 2.0)])
def test_agreement_does_not_fire_on_a_clean_student_with_a_contaminated_teacher(correlation, lure):
    new = old = 0
    for seed in range(TRIALS):
        sb, sr, tb, tr = _clean_student_and_contaminated_teacher(seed, correlation=correlation, lure=lure)
        if seed == 0 and lure == 0:  # the scenario is the issue's
            assert 0.5 <= sb.accuracy <= 0.6 and 0.5 <= sr.accuracy <= 0.6
            assert tb.accuracy >= 0.97 and 0.4 <= tr.accuracy <= 0.6
        elif seed == 0:  # errors alike: both lean to the same wrong choice on the items they do not know
            assert min(sb.accuracy, sr.accuracy) > 0.35 and tb.accuracy >= 0.97
            wrong = ~sr.correct & ~tr.correct
            assert (sr.prediction == tr.prediction)[wrong].mean() > 0.5  # chance would be 1/3
        test = agreement_tests(sb, sr, tb, tr, resamples=R, seed=seed)
        new += test["p_value"] < ALPHA
        # independent reference: the old test, raw agreement permuted between B and R
        old += permutation_test(sb.prediction == tb.prediction, sr.prediction == tr.prediction, resamples=R,
                                seed=seed)["p_value"] < ALPHA
    assert new <= 0.02 * TRIALS, new
    if lure == 0:
        assert old >= 0.95 * TRIALS, old  # what issue 35 measured: 20 of 20
    # with errors alike, the student also agrees with the teacher's wrong answers on R, and the old test was
    # lucky (as on the 77-class set): valid by luck, not by design


def test_agreement_catches_a_student_that_learnt_the_teachers_benchmark_answers():
    caught = 0
    for seed in range(50):
        sb, sr, tb, tr = _clean_student_and_contaminated_teacher(seed, n=200, launder=3.0)
        caught += agreement_tests(sb, sr, tb, tr, resamples=R, seed=seed)["p_value"] < ALPHA
    assert caught >= 45, caught


def test_agreement_without_a_shared_stratum_reports_but_does_not_test():
    rng = np.random.default_rng(0)
    ib, ir = make_items(rng, 40), make_items(rng, 40)
    tb = model_scores(rng, ib, np.ones(40, bool), strength=50)  # right on every B item
    tr = model_scores(rng, ir, np.zeros(40, bool), lure=50)  # wrong on every R item
    sb, sr = model_scores(rng, ib, np.ones(40, bool)), model_scores(rng, ir, np.zeros(40, bool))
    test = agreement_tests(sb, sr, tb, tr, resamples=R)
    assert test["p_value"] is None and "not testable" in test["note"]
    assert test["strata"]["teacher_right"]["reference_items"] == 0
    verdict = assess("student", sb, sr, teacher=(tb, tr), resamples=R)
    assert "teacher_agreement" not in " ".join(verdict["reasons"])  # a None p never fires


def _pretrained_suspect_and_random_control(seed: int, *, n: int = 500, launder: bool = False):
    """A clean suspect fine-tuned from a pretrained model (about 70% right on both sets) against a control
    trained from random weights (chance on both); ``launder``: the suspect also knows most of B."""
    rng = np.random.default_rng(seed)
    ib, ir = make_items(rng, n), make_items(rng, n)
    known_b = knowledge(rng, ib, 0.6) | (launder & (rng.random(n) < 0.5))
    sb, sr = model_scores(rng, ib, known_b), model_scores(rng, ir, knowledge(rng, ir, 0.6))
    cb = model_scores(rng, ib, np.zeros(n, bool), noise=0.2)
    cr = model_scores(rng, ir, np.zeros(n, bool), noise=0.2)
    return sb, sr, cb, cr


def test_control_does_not_fire_on_a_stronger_clean_suspect():
    new = old = 0
    for seed in range(TRIALS):
        sb, sr, cb, cr = _pretrained_suspect_and_random_control(seed)
        if seed == 0:
            assert sb.accuracy > 0.6 and cb.accuracy < 0.35
        new += control_tests(sb, sr, cb, cr, "random-weights control", resamples=R, seed=seed)["p_value"] < ALPHA
        # independent reference: the old test, the paired excess over the control on B alone
        old += paired_bootstrap(sb.correct, cb.correct, resamples=R, seed=seed)["p_value"] < ALPHA
    assert new <= 0.02 * TRIALS, new
    assert old == TRIALS, old  # what issue 35 measured: 20 of 20


def test_control_catches_a_suspect_that_knows_the_benchmark():
    caught = sum(control_tests(*_pretrained_suspect_and_random_control(seed, n=300, launder=True), "control",
                               resamples=R, seed=seed)["p_value"] < ALPHA for seed in range(30))
    assert caught >= 28, caught


def test_verdict_of_a_clean_student_with_both_secondary_tests_stays_within_its_stated_rate():
    """The whole student audit (core + accuracy + margin + agreement + control) of a clean student with a
    contaminated teacher and a random-weights control: suspicious-or-above at most 5% + 1% per secondary test."""
    flagged = laundered = 0
    trials = 100
    for seed in range(trials):
        sb, sr, tb, tr = _clean_student_and_contaminated_teacher(seed)
        rng = np.random.default_rng(10_000 + seed)
        items_b = make_items(rng, 300)  # the control's scores only need the same number of items
        cb = model_scores(rng, items_b, np.zeros(300, bool), noise=0.2)
        cr = model_scores(rng, make_items(rng, 300), np.zeros(300, bool), noise=0.2)
        res = assess("student", sb, sr, teacher=(tb, tr), control=(cb, cr), resamples=R)
        flagged += res["verdict"] != "clean"
        laundered += res["verdict"] == "laundered"
    assert laundered <= 2 and flagged <= 0.09 * trials, (laundered, flagged)


# ----------------------------------------------------------------------------- the core test

def test_core_test_ignores_another_mix_of_choice_counts_for_a_model_that_knows_nothing():
    """30% five-choice items in R: uncentred p(correct) is lower on R for a model that knows nothing
    (the issue: p = 0.016 at 1,000 items a side); p(correct) - 1/C is not."""
    new = old = 0
    trials = 30
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        ib = make_items(rng, 1000)
        ir = make_items(rng, 1000, other_choices=5, other_share=0.3)
        sb, sr = model_scores(rng, ib, np.zeros(1000, bool)), model_scores(rng, ir, np.zeros(1000, bool))
        new += core_tests("student", sb, sr, resamples=R)["p_correct"]["p_value"] < ALPHA
        old += permutation_test(sb.p_correct, sr.p_correct, resamples=R, seed=seed)["p_value"] < ALPHA
    assert new <= 2, new
    assert old >= 0.2 * trials, old  # 20 times the level it claims


def _features(rng, n, *, words=8.0, choices=4, other_share=0.0, subjects=("a", "b", "c")):
    counts = np.where(rng.random(n) < other_share, 5, choices)
    return SetFeatures(num_choices=counts, text_words=rng.poisson(words, n) + 1.0,
                       choice_words=rng.poisson(2, n) + 1.0, subjects=rng.choice(np.array(subjects, dtype=object), n))


def test_a_harder_reference_set_is_never_called_laundered():
    """R from another source: longer questions, other subjects, and harder (the model knows 30% of R against
    60% of B). The core test fires; the verdict is withheld, never laundered."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        ib, ir = make_items(rng, 400), make_items(rng, 400)
        sb, sr = model_scores(rng, ib, knowledge(rng, ib, 0.6)), model_scores(rng, ir, knowledge(rng, ir, 0.3))
        comp = compare_sets(_features(rng, 400), _features(rng, 400, words=14.0, subjects=("c", "d", "e")))
        res = assess("student", sb, sr, comparability=comp, resamples=R)
        assert res["tests"]["p_correct"]["p_value"] < ALPHA  # the difficulty shows
        assert res["verdict"] == NOT_COMPARABLE, res["reasons"]
        assert set(comp["too_far"]) == {"text_length", "subjects"}
        assert "not comparable" in res["reasons"][0] and "text_length" in res["reasons"][0]


def test_another_mix_of_choice_counts_withholds_the_verdict():
    rng = np.random.default_rng(0)
    comp = compare_sets(_features(rng, 1000), _features(rng, 1000, other_share=0.3))
    assert comp["too_far"] == ["choice_counts"]
    check = comp["checks"]["choice_counts"]
    assert check["distance"] == pytest.approx(check["reference"]["5"], abs=1e-12)  # TV = the 5-choice share
    assert check["chance"]["reference"] < check["chance"]["benchmark"] == 0.25


def test_random_splits_are_comparable_at_every_size():
    """B and R drawn alike (a random split): the checks never withhold, small sets or large."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        for n_b, n_r in ((32, 32), (200, 60), (1500, 500)):
            subjects = [f"s{k}" for k in range(57)]  # an MMLU-sized subject list
            fb = _features(rng, n_b, other_share=0.2, subjects=subjects)
            fr = _features(rng, n_r, other_share=0.2, subjects=subjects)
            comp = compare_sets(fb, fr)
            assert comp["comparable"], (seed, n_b, comp["too_far"])


def test_studentized_core_test_keeps_its_level_with_unequal_sizes_and_variances():
    """Equal means, a small B of high variance against a large R of low variance: the raw mean difference's
    permutation test rejects far more than 5%, Welch's t keeps close to it."""
    raw = welch = 0
    trials = 300
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        b, r = rng.normal(0, 3.0, 20), rng.normal(0, 1.0, 400)
        welch += permutation_test(b, r, resamples=499, seed=seed, studentize=True)["p_value"] <= 0.05
        raw += permutation_test(b, r, resamples=499, seed=seed)["p_value"] <= 0.05
    assert welch <= 0.09 * trials, welch
    assert raw >= 0.15 * trials, raw


def test_questions_on_one_passage_are_re_split_together():
    """RACE-like sets: 5 questions per passage, some passages easy and some hard for the model, B and R split by
    passage. Re-splitting single questions treats 5 alike answers as 5 pieces of evidence and rejects about
    three times too often at 5%; re-splitting passages keeps the level."""
    by_passage = by_item = 0
    trials = 200
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        sides = []
        for passages, first in ((60, 0), (40, 1000)):
            items = make_items(rng, 5 * passages)
            skill = np.repeat(np.clip(rng.normal(0.5, 0.35, passages), 0, 1), 5)
            sides.append((model_scores(rng, items, rng.random(items.n) < skill),
                          np.repeat(np.arange(first, first + passages), 5).tolist()))
        (sb, cb), (sr, cr) = sides
        if seed == 0:  # passages are the units, of the tests and of the data-sufficiency check
            res = assess("student", sb, sr, clusters=(cb, cr), resamples=499)
            assert res["data_sufficiency"]["sizes"] == {"benchmark": 60, "reference": 40}
            assert "by passage" in res["tests"]["p_correct"]["test"]
        by_passage += core_tests("student", sb, sr, resamples=499, clusters=(cb, cr))["p_correct"]["p_value"] <= 0.05
        by_item += core_tests("student", sb, sr, resamples=499)["p_correct"]["p_value"] <= 0.05
    assert by_passage <= 0.075 * trials, by_passage
    assert by_item >= 0.11 * trials, by_item
