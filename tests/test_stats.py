"""Resampling statistics against independent references: brute-force enumeration on tiny inputs,
known values, and scipy where it is installed."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from pylaundering.stats import (
    cliffs_delta,
    cohens_d,
    distribution_shift_test,
    mean_ratio_test,
    paired_bootstrap,
    permutation_test,
    stratified_permutation_test,
    welch_t,
)

# ----------------------------------------------------------------------------- paired bootstrap

def _exact_bootstrap(a, b):
    """Every one of the n**n equally likely resamples of the item indices."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = d.size
    return np.array([d[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])


def test_paired_bootstrap_matches_full_enumeration():
    a = [1, 1, 1, 0, 1]
    b = [0, 1, 0, 0, 1]
    exact = _exact_bootstrap(a, b)  # 3125 resamples
    out = paired_bootstrap(a, b, resamples=20000, seed=1)
    assert out["diff"] == pytest.approx(0.4)
    assert out["resamples"] == 20000
    p_exact = float(np.mean(exact <= 0))  # = P(no 'a only' item drawn) = (3/5)**5
    assert p_exact == pytest.approx((3 / 5) ** 5)
    assert out["p_value"] == pytest.approx(p_exact, abs=4 * math.sqrt(p_exact * (1 - p_exact) / 20000) + 1 / 20001)
    lo, hi = np.percentile(exact, [2.5, 97.5])
    assert out["ci95"][0] == pytest.approx(lo, abs=0.2 + 1e-9)  # the distribution is on a 0.2 grid
    assert out["ci95"][1] == pytest.approx(hi, abs=0.2 + 1e-9)
    assert out["ci95"][0] <= out["diff"] <= out["ci95"][1]


def test_paired_bootstrap_keeps_pairs():
    # a and b identical: every resampled difference is exactly 0, so p = 1 and the interval is [0, 0]
    a = [1, 0, 1, 1, 0, 0, 1]
    out = paired_bootstrap(a, a, resamples=500)
    assert out == {"diff": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "resamples": 500}
    # a always right where b is wrong: every resample favours a -> p = 1 / (resamples + 1), never 0
    out = paired_bootstrap([1] * 10, [0] * 10, resamples=200)
    assert out["p_value"] == pytest.approx(1 / 201) and out["ci95"] == [1.0, 1.0]


def test_paired_bootstrap_sign_and_seed():
    rng = np.random.default_rng(0)
    a = rng.random(300) < 0.7
    b = rng.random(300) < 0.5
    one = paired_bootstrap(a, b, seed=3)
    assert one == paired_bootstrap(a, b, seed=3)
    assert one["p_value"] < 0.01 and one["ci95"][0] > 0
    rev = paired_bootstrap(b, a, seed=3)
    assert rev["p_value"] > 0.99 and rev["diff"] == pytest.approx(-one["diff"])


def test_paired_bootstrap_is_fast():
    rng = np.random.default_rng(0)
    a, b = rng.random(1000) < 0.6, rng.random(1000) < 0.5
    start = time.perf_counter()
    paired_bootstrap(a, b, resamples=10000)
    assert time.perf_counter() - start < 1.0


def test_paired_bootstrap_bad_input():
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1, 0], [1])
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap([], [])


# ----------------------------------------------------------------------------- permutation test

def _exact_permutation_p(a, b, alternative):
    pooled = np.concatenate([np.asarray(a, float), np.asarray(b, float)])
    obs = np.mean(a) - np.mean(b)
    n, na = pooled.size, len(a)
    stats = []
    for idx in itertools.combinations(range(n), na):
        mask = np.zeros(n, bool)
        mask[list(idx)] = True
        stats.append(pooled[mask].mean() - pooled[~mask].mean())
    stats = np.array(stats)
    if alternative == "greater":
        return float(np.mean(stats >= obs - 1e-12))
    if alternative == "less":
        return float(np.mean(stats <= obs + 1e-12))
    return float(np.mean(np.abs(stats) >= abs(obs) - 1e-12))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_permutation_test_matches_enumeration(alternative):
    a = [2.1, 3.4, 1.9, 4.0, 3.3, 2.8]
    b = [1.0, 2.2, 0.4, 1.9, 2.5]
    exact = _exact_permutation_p(a, b, alternative)  # C(11, 6) = 462 splits
    R = 20000
    out = permutation_test(a, b, resamples=R, seed=0, alternative=alternative)
    assert out["statistic"] == pytest.approx(np.mean(a) - np.mean(b))
    assert out["resamples"] == R
    # Monte Carlo p with the +1 correction, within 4 standard errors of the exact p
    se = math.sqrt(max(exact * (1 - exact), 1e-4) / R)
    assert out["p_value"] == pytest.approx(exact, abs=4 * se + 2 / R)


def test_permutation_test_with_ties_and_binary_data():
    a = [1, 1, 1, 0, 1, 1, 0, 1]
    b = [0, 1, 0, 0, 1, 0, 0, 0]
    exact = _exact_permutation_p(a, b, "greater")
    out = permutation_test(a, b, resamples=20000, seed=2)
    assert out["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4)


def test_permutation_test_plus_one_correction_and_z():
    out = permutation_test([10.0] * 20, [0.0] * 20, resamples=999)
    assert out["p_value"] == pytest.approx(1 / 1000)  # never 0
    assert out["z"] > 5
    flat = permutation_test([1.0] * 5, [1.0] * 5, resamples=99)
    assert flat["p_value"] == 1.0 and flat["z"] == 0.0


def test_permutation_test_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.3, 1, 40), rng.normal(0, 1, 50)
    ref = scipy_stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), vectorized=False,
                                       n_resamples=20000, alternative="greater", random_state=0,
                                       permutation_type="independent")
    out = permutation_test(a, b, resamples=20000, seed=0)
    assert out["statistic"] == pytest.approx(ref.statistic)
    assert out["p_value"] == pytest.approx(ref.pvalue, abs=0.01)


def test_permutation_test_level_under_the_null():
    # exchangeable samples: a one-sided 5% test rejects about 5% of the time
    rng = np.random.default_rng(11)
    rejections = sum(permutation_test(rng.normal(size=30), rng.normal(size=30), resamples=199, seed=i)["p_value"]
                     <= 0.05 for i in range(300))
    assert 5 <= rejections <= 30  # Binomial(300, 0.05): mean 15, sd 3.8


def test_permutation_test_bad_input():
    with pytest.raises(ValueError, match="alternative"):
        permutation_test([1.0], [2.0], alternative="bigger")
    with pytest.raises(ValueError, match="empty"):
        permutation_test([], [1.0])


# ----------------------------------------------------------------------------- studentized, clustered, stratified

def _welch_ref(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return (x.mean() - y.mean()) / math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)


def _exact_split_p(pooled_units, na_units, statistic):
    """Every split of the units into na_units for a and the rest: the share at least as large as observed."""
    k = len(pooled_units)
    obs = statistic(list(range(na_units)))
    stats = [statistic(list(idx)) for idx in itertools.combinations(range(k), na_units)]
    return float(np.mean(np.array(stats) >= obs - 1e-12))


def test_welch_t_matches_scipy_and_a_formula():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(100, 1, 30), rng.normal(100.5, 3, 12)  # far from 0: no cancellation allowed
    assert welch_t(a, b) == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).statistic, rel=1e-9)
    assert welch_t([1, 2, 3, 4], [0, 0, 1]) == pytest.approx(_welch_ref([1, 2, 3, 4], [0, 0, 1]))
    assert welch_t([1.0, 1.0], [1.0, 1.0]) == 0.0 and welch_t([2.0, 2.0], [1.0]) > 1e9  # constant groups


def test_studentized_permutation_test_matches_enumeration_of_welch_t():
    a = [2.1, 3.4, 1.9, 4.0, 3.3, 2.8]
    b = [1.0, 2.2, 0.4, 1.9, 2.5, 7.5, 0.1]
    pooled = np.array(a + b)

    def t(idx):
        mask = np.zeros(pooled.size, bool)
        mask[idx] = True
        return _welch_ref(pooled[mask], pooled[~mask])

    exact = _exact_split_p(pooled, len(a), t)  # C(13, 6) = 1716 splits
    out = permutation_test(a, b, resamples=20000, seed=0, studentize=True)
    assert out["t"] == pytest.approx(_welch_ref(a, b)) and out["statistic"] == pytest.approx(np.mean(a) - np.mean(b))
    assert out["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4)


def test_clustered_permutation_test_re_splits_whole_clusters():
    """Clusters of equal size: the test is the studentized test on the cluster means (same t, same p with the
    same seed), and differs from treating the items as independent."""
    rng = np.random.default_rng(0)
    means_a, means_b = rng.normal(0.3, 1, 12), rng.normal(0, 1, 17)
    xa = np.repeat(means_a, 3) + rng.normal(0, 0.05, 36)
    xb = np.repeat(means_b, 3) + rng.normal(0, 0.05, 51)
    ca, cb = np.repeat(np.arange(12), 3), np.repeat(np.arange(100, 117), 3)
    clustered = permutation_test(xa, xb, resamples=5000, seed=1, studentize=True, clusters_a=ca, clusters_b=cb)
    on_means = permutation_test(xa.reshape(12, 3).mean(1), xb.reshape(17, 3).mean(1), resamples=5000, seed=1,
                                studentize=True)
    assert clustered["t"] == pytest.approx(on_means["t"]) and clustered["p_value"] == on_means["p_value"]
    assert clustered["units"] == {"a": 12, "b": 17}
    naive = permutation_test(xa, xb, resamples=5000, seed=1, studentize=True)
    assert abs(naive["t"]) > 1.5 * abs(clustered["t"])  # items of a cluster counted as independent evidence
    singles = permutation_test(xa, xb, resamples=5000, seed=1, studentize=True, clusters_a=[None] * 36,
                               clusters_b=list(range(51)))
    assert singles["p_value"] == naive["p_value"]  # clusters of one item: the unclustered test
    with pytest.raises(ValueError, match="both samples"):
        permutation_test(xa, xb, clusters_a=ca, clusters_b=np.repeat(np.arange(11, 28), 3))


def test_clustered_test_of_unequal_clusters_matches_enumeration():
    a, b = [1.0, 1.2, 3.0, 2.5, 0.5], [0.2, 0.4, 0.1, 1.0, 0.3, 0.8]
    ca, cb = ["x", "x", "y", "z", "z"], ["u", "u", "u", "v", "w", "w"]
    values = np.array(a + b)
    labels = ca + cb
    units = sorted(set(labels), key=labels.index)  # x y z u v w

    def diff(idx):
        mask = np.isin(labels, [units[i] for i in idx])
        return values[mask].mean() - values[~mask].mean()

    exact = _exact_split_p(units, 3, diff)  # C(6, 3) = 20 splits of the clusters
    out = permutation_test(a, b, resamples=20000, seed=2, clusters_a=ca, clusters_b=cb)
    assert out["statistic"] == pytest.approx(np.mean(a) - np.mean(b))
    assert out["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4)


def test_stratified_permutation_test_matches_enumeration_within_strata():
    a = [1, 1, 0, 1, 1, 0, 1]
    b = [0, 1, 0, 0, 1, 0]
    sa = ["r", "r", "r", "r", "w", "w", "w"]
    sb = ["r", "r", "w", "w", "w", "w"]
    # independent reference: every within-stratum split, the CMH-weighted difference
    strata = {}
    for v, s in zip(a, sa):
        strata.setdefault(s, ([], []))[0].append(v)
    for v, s in zip(b, sb):
        strata.setdefault(s, ([], []))[1].append(v)
    w = {s: len(x) * len(y) / (len(x) + len(y)) for s, (x, y) in strata.items()}

    def splits(s):
        x, y = strata[s]
        pooled = x + y
        for idx in itertools.combinations(range(len(pooled)), len(x)):
            xs = [pooled[i] for i in idx]
            ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
            yield w[s] * (np.mean(xs) - np.mean(ys)) / sum(w.values())

    dist = np.array([p + q for p in splits("r") for q in splits("w")])
    obs = sum(w[s] * (np.mean(x) - np.mean(y)) for s, (x, y) in strata.items()) / sum(w.values())
    exact = float(np.mean(dist >= obs - 1e-12))
    out = stratified_permutation_test(a, b, sa, sb, resamples=20000, seed=0)
    assert out["statistic"] == pytest.approx(obs)
    assert out["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4)
    assert out["strata"]["w"] == {"na": 3, "nb": 4, "mean_a": pytest.approx(2 / 3), "mean_b": 0.25}


def test_stratified_test_ignores_the_strata_shares():
    """a is mostly in the high stratum, b mostly in the low one, with no difference inside either: the plain test
    fires, the stratified one does not."""
    rng = np.random.default_rng(1)
    a = np.r_[rng.random(95) < 0.8, rng.random(5) < 0.2].astype(float)
    b = np.r_[rng.random(50) < 0.8, rng.random(50) < 0.2].astype(float)
    sa, sb = ["hi"] * 95 + ["lo"] * 5, ["hi"] * 50 + ["lo"] * 50
    assert permutation_test(a, b, resamples=2000)["p_value"] < 0.01
    assert stratified_permutation_test(a, b, sa, sb, resamples=2000)["p_value"] > 0.05
    one_sided = stratified_permutation_test([1.0], [0.0], ["x"], ["y"], resamples=100)
    assert one_sided["p_value"] == 1.0  # no stratum on both sides: nothing to compare


def test_distribution_shift_and_mean_ratio_against_enumeration():
    a, b = [4, 4, 5, 4, 4], [5, 5, 4, 5]
    pooled = a + b

    def tv(idx):
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        return 0.5 * sum(abs(xs.count(k) / len(xs) - ys.count(k) / len(ys)) for k in (4, 5))

    exact = _exact_split_p(pooled, len(a), tv)
    out = distribution_shift_test(a, b, resamples=20000, seed=0)
    assert out["distance"] == pytest.approx(0.8 - 0.25) and out["a"] == {"4": 0.8, "5": 0.2}
    assert out["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4)
    assert distribution_shift_test([4, 4], [4])["p_value"] == 1.0
    ratio = mean_ratio_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], resamples=2000)
    assert ratio["ratio"] == pytest.approx(2.5) and ratio["distance"] == pytest.approx(math.log(2.5))
    assert ratio["p_value"] == pytest.approx(2 / 20, abs=0.02)  # 2 of the 20 splits are as far apart
    with pytest.raises(ValueError, match="positive"):
        mean_ratio_test([0.0, 1.0], [1.0])


# ----------------------------------------------------------------------------- effect sizes

def test_cohens_d_known_value():
    # means 3 and 5, both sample variances 2.5 -> pooled SD sqrt(2.5)
    assert cohens_d([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]) == pytest.approx(-2 / math.sqrt(2.5))
    assert cohens_d([1, 1, 1], [1, 1]) == 0.0
    assert cohens_d([2, 2], [1, 1]) == math.inf


def test_cliffs_delta_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        a = rng.integers(0, 5, rng.integers(1, 9)).astype(float)
        b = rng.integers(0, 5, rng.integers(1, 9)).astype(float)
        brute = sum(int(x > y) - int(x < y) for x in a for y in b) / (len(a) * len(b))
        assert cliffs_delta(a, b) == pytest.approx(brute)
    # on 0/1 correctness it is the accuracy difference
    assert cliffs_delta([1, 1, 0, 1], [0, 1, 0, 0, 0]) == pytest.approx(0.75 - 0.2)
