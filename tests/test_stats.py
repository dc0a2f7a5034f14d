"""Resampling statistics against independent references: brute-force enumeration on tiny inputs,
known values, and scipy where it is installed."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from pylaundering.stats import cliffs_delta, cohens_d, paired_bootstrap, permutation_test

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
    assert out["p_value"] == pytest.approx(p_exact, abs=4 * math.sqrt(p_exact * (1 - p_exact) / 20000))
    lo, hi = np.percentile(exact, [2.5, 97.5])
    assert out["ci95"][0] == pytest.approx(lo, abs=0.2 + 1e-9)  # the distribution is on a 0.2 grid
    assert out["ci95"][1] == pytest.approx(hi, abs=0.2 + 1e-9)
    assert out["ci95"][0] <= out["diff"] <= out["ci95"][1]


def test_paired_bootstrap_keeps_pairs():
    # a and b identical: every resampled difference is exactly 0, so p = 1 and the interval is [0, 0]
    a = [1, 0, 1, 1, 0, 0, 1]
    out = paired_bootstrap(a, a, resamples=500)
    assert out == {"diff": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "resamples": 500}
    # a always right where b is wrong: every resample favours a -> p = 0
    out = paired_bootstrap([1] * 10, [0] * 10, resamples=200)
    assert out["p_value"] == 0.0 and out["ci95"] == [1.0, 1.0]


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
