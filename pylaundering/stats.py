"""Small, dependency-free statistics for honest accuracy reporting."""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (good at small n and near 0 or 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if correct == 0 else max(0.0, centre - half)  # exact at the ends, not 1 - 1e-16
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return (lo, hi)


def chance_level(num_choices: Sequence[int]) -> float:
    """Expected accuracy of uniform guessing: the mean of 1 / (number of choices)."""
    return sum(1.0 / c for c in num_choices) / len(num_choices) if num_choices else 0.0


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test on paired predictions (binomial test of the discordant pairs)."""
    if len(a_correct) != len(b_correct):
        raise ValueError("paired predictions must have the same length")
    a_only = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    b_only = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}


# ---------------------------------------------------------------------------------------------
# Resampling tests (numpy, vectorised in chunks of resamples so memory stays at a few MB).
# Shared by runs, reports and audits: one implementation of the bootstrap and permutation tests.

_CHUNK_CELLS = 2_000_000  # resamples x items per chunk (16 MB of int64 indices)


def _as_float_array(values, name: str):
    import numpy as np

    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _chunks(resamples: int, n: int):
    step = max(1, _CHUNK_CELLS // max(1, n))
    for start in range(0, resamples, step):
        yield min(step, resamples - start)


def paired_bootstrap(a_correct: Sequence[float], b_correct: Sequence[float], *, resamples: int = 10000,
                     seed: int = 0) -> dict:
    """One-sided paired bootstrap of the accuracy difference mean(a) - mean(b).

    Items are resampled with replacement (the same indices for a and b, so the pairing is kept).
    Returns ``diff`` (observed difference), ``ci95`` ([lo, hi], percentile interval of the
    resampled differences), ``p_value`` (one-sided, evidence that a beats b: (count + 1) / (resamples
    + 1), count = resamples whose difference is <= 0; the +1 keeps a finite number of resamples from
    claiming p = 0) and ``resamples``. Inputs may be booleans or any numbers (per-item scores), so
    the same function serves margins as well as correctness.
    """
    import numpy as np

    a = _as_float_array(a_correct, "a_correct")
    b = _as_float_array(b_correct, "b_correct")
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length (got {a.size} and {b.size})")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    d = a - b
    n = d.size
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples, dtype=np.float64)
    pos = 0
    for size in _chunks(resamples, n):
        idx = rng.integers(0, n, size=(size, n))
        diffs[pos:pos + size] = d[idx].mean(axis=1)
        pos += size
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    return {"diff": float(d.mean()), "ci95": [float(lo), float(hi)],
            "p_value": (int(np.sum(diffs <= tol)) + 1) / (resamples + 1), "resamples": int(resamples)}


_ALTERNATIVES = ("greater", "less", "two-sided")


def welch_t(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's t: (mean(a) - mean(b)) / sqrt(var(a) / na + var(b) / nb), sample variances (n - 1; a group of
    one item counts as variance 0). The standard error is floored at 1e-12 times the data's scale, so two
    constant groups give a large finite t (0 when they are equal) instead of a division by zero."""
    import numpy as np

    x = _as_float_array(a, "a")
    y = _as_float_array(b, "b")
    centre = np.concatenate([x, y]).mean()  # no cancellation in the sums of squares
    x, y = x - centre, y - centre
    floor = 1e-12 * max(1.0, float(max(np.abs(x).max(), np.abs(y).max())))
    se2 = (x.var(ddof=1) if x.size > 1 else 0.0) / x.size + (y.var(ddof=1) if y.size > 1 else 0.0) / y.size
    return float((x.mean() - y.mean()) / max(math.sqrt(se2), floor))


def _check_alternative(alternative: str, resamples: int) -> None:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(_ALTERNATIVES)}, got {alternative!r}")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")


def _p_and_z(stats, observed: float, alternative: str, tol: float, resamples: int) -> tuple[float, float]:
    """The +1-corrected p-value of ``observed`` against its resampling distribution, and its z."""
    import numpy as np

    if alternative == "greater":
        count = int(np.sum(stats >= observed - tol))
    elif alternative == "less":
        count = int(np.sum(stats <= observed + tol))
    else:
        count = int(np.sum(np.abs(stats) >= abs(observed) - tol))
    sd = float(stats.std())
    z = (observed - float(stats.mean())) / sd if sd > 0 else 0.0
    return (count + 1) / (resamples + 1), z


class _Units:
    """The units a permutation test re-splits: clusters of items (the questions on one passage), or single
    items. ``clusters_a`` / ``clusters_b`` label each item (None: an item on its own); a cluster must lie
    wholly in one sample. Units are numbered a's first (``ka`` of them), then b's."""

    def __init__(self, na: int, nb: int, clusters_a=None, clusters_b=None):
        import numpy as np

        la = [None] * na if clusters_a is None else list(clusters_a)
        lb = [None] * nb if clusters_b is None else list(clusters_b)
        if len(la) != na or len(lb) != nb:
            raise ValueError(f"clusters must label every item (got {len(la)} labels for {na} a items, {len(lb)} for "
                             f"{nb} b items)")
        shared = ({c for c in la if c is not None} & {c for c in lb if c is not None})
        if shared:
            raise ValueError(f"cluster {sorted(map(str, shared))[0]!r} has items in both samples: a cluster is "
                             "re-split whole, so it must lie in one")
        ids: dict = {}
        codes = []
        for label in la + lb:
            if label is None:
                codes.append(len(ids))
                ids[object()] = None
            else:
                codes.append(ids.setdefault(label, len(ids)))
        self.codes = np.asarray(codes, dtype=np.int64)
        self.k = len(ids)
        self.ka = int(np.unique(self.codes[:na]).size)
        self.sizes = np.bincount(self.codes, minlength=self.k).astype(np.float64)
        self.clustered = bool(self.k < na + nb)

    def sums(self, values):
        import numpy as np

        return np.bincount(self.codes, weights=values, minlength=self.k)

    def draws(self, rng, resamples: int):
        """Chunks of random re-splits: arrays [size, ka] of the units that go to a."""
        import numpy as np

        for size in _chunks(resamples, self.k):
            yield rng.permuted(np.broadcast_to(np.arange(self.k), (size, self.k)), axis=1)[:, :self.ka]


def _cluster_welch(sa, ma_sq, sm, m2, na, ka, s_tot, s2_tot, sm_tot, m2_tot, n, k, floor):
    """Welch's t between a's units and the rest, with each side's variance of its mean estimated from its units
    (cluster-robust: sum_c (S_c - m_c mean)^2 / n^2 * k / (k - 1); with units of one item, Welch's own)."""
    import numpy as np

    kb, nb, sb = k - ka, n - na, s_tot - sa
    mean_a, mean_b = sa / na, sb / nb
    qa = ma_sq - 2 * mean_a * sm + mean_a * mean_a * m2
    qb = (s2_tot - ma_sq) - 2 * mean_b * (sm_tot - sm) + mean_b * mean_b * (m2_tot - m2)
    va = np.maximum(qa, 0.0) / (na * na) * (ka / (ka - 1) if ka > 1 else 0.0)
    vb = np.maximum(qb, 0.0) / (nb * nb) * (kb / (kb - 1) if kb > 1 else 0.0)
    return (mean_a - mean_b) / np.maximum(np.sqrt(va + vb), floor)


def permutation_test(a: Sequence[float], b: Sequence[float], *, resamples: int = 10000, seed: int = 0,
                     alternative: str = "greater", studentize: bool = False, clusters_a: Sequence | None = None,
                     clusters_b: Sequence | None = None) -> dict:
    """Two-sample (unpaired) permutation test of ``mean(a) - mean(b)``.

    The pooled values are randomly re-split into groups of the original sizes ``resamples``
    times. ``alternative="greater"`` tests mean(a) > mean(b) (one-sided), ``"less"`` the reverse,
    ``"two-sided"`` |difference|. ``p_value`` uses the +1 correction, (count + 1) / (resamples + 1),
    so it is never 0 and the test's level holds exactly under exchangeability of a and b items.

    ``studentize=True`` ranks the re-splits by Welch's t (``welch_t``) instead of the raw difference:
    still exact under exchangeability, and it stays close to its level when the groups differ in size
    and variance but not in mean, where the raw difference does not (a small group with a large variance
    makes the raw test reject too often; Janssen 1997, Chung and Romano 2013). ``t`` is then the observed t.

    ``clusters_a`` / ``clusters_b`` label items that were assigned to a or b together (the questions on one
    passage): whole clusters are re-split (keeping the number of clusters on each side) and the studentized
    variance is estimated from cluster totals. Items of one passage are alike (one read of it answers
    several), so re-splitting them one by one would make the test too sure of itself. ``statistic`` is
    always the difference of the item means.

    Also returns ``z``: (observed - mean of the permutation distribution) / its standard
    deviation, of the statistic the p-value ranks, a continuous score that does not saturate where the
    p-value hits 1 / (resamples + 1) (0.0 when the permutation distribution is degenerate).
    """
    import numpy as np

    _check_alternative(alternative, resamples)
    x = _as_float_array(a, "a")
    y = _as_float_array(b, "b")
    pooled = np.concatenate([x, y])
    na, n = x.size, pooled.size
    diff = float(x.mean() - y.mean())
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples, dtype=np.float64)
    units = _Units(na, y.size, clusters_a, clusters_b)
    if studentize or units.clustered:
        pooled = pooled - pooled.mean()  # centred: sums of squares of values far from 0 would cancel
        s, m = units.sums(pooled), units.sizes
        s2, sm, m2 = s * s, s * m, m * m
        tot = (s.sum(), s2.sum(), sm.sum(), m2.sum())
        floor = 1e-12 * max(1.0, float(np.abs(pooled).max()))

        def stat(idx):
            sa = s[idx].sum(axis=-1)
            # units of one item: their sizes are 1, so the size sums are known (half the gathers)
            ma = m[idx].sum(axis=-1) if units.clustered else float(units.ka)
            if not studentize:
                return sa / ma - (tot[0] - sa) / (n - ma)
            sm_a, m2_a = (sm[idx].sum(axis=-1), m2[idx].sum(axis=-1)) if units.clustered else (sa, ma)
            return _cluster_welch(sa, s2[idx].sum(axis=-1), sm_a, m2_a, ma, units.ka, *tot, n, units.k, floor)

        observed = float(stat(np.arange(units.ka)))
        pos = 0
        for idx in units.draws(rng, resamples):
            stats[pos:pos + len(idx)] = stat(idx)
            pos += len(idx)
    else:
        observed = diff
        total = pooled.sum()
        pos = 0
        for size in _chunks(resamples, n):
            perm = rng.permuted(np.broadcast_to(pooled, (size, n)), axis=1)
            sa = perm[:, :na].sum(axis=1)
            stats[pos:pos + size] = sa / na - (total - sa) / (n - na)
            pos += size
    # ties: the observed split counts as extreme (relative tolerance for t, which is scale-free)
    tol = 1e-9 * max(1.0, abs(observed)) if studentize else 1e-9 * max(1.0, float(np.abs(pooled).max()))
    p, z = _p_and_z(stats, observed, alternative, tol, resamples)
    out = {"statistic": diff, "p_value": p, "z": z, "alternative": alternative, "resamples": int(resamples),
           "studentized": studentize, "units": {"a": units.ka, "b": units.k - units.ka}}
    if studentize:
        out["t"] = observed
    return out


def stratified_permutation_test(a: Sequence[float], b: Sequence[float], strata_a: Sequence, strata_b: Sequence, *,
                                resamples: int = 10000, seed: int = 0, alternative: str = "greater",
                                clusters_a: Sequence | None = None, clusters_b: Sequence | None = None) -> dict:
    """Permutation test of a > b (or ``alternative``) that re-splits items only *within* strata.

    The null hypothesis is weaker than ``permutation_test``'s: a and b items are exchangeable within
    each stratum, whatever the strata's shares on each side. The statistic is the stratum-weighted mean
    difference sum_s w_s (mean(a_s) - mean(b_s)) / sum_s w_s with w_s = na_s nb_s / (na_s + nb_s) (the
    Cochran-Mantel-Haenszel weights: on 0/1 values the test is an exact, resampled CMH test). Strata
    present on one side only carry no information and are left out. ``clusters_a`` / ``clusters_b``: as in
    ``permutation_test``; a cluster's items of one stratum are re-split together. Returns ``statistic``,
    ``p_value`` (+1 corrected, never 0; 1.0 when no stratum has items on both sides), ``z``,
    ``alternative``, ``resamples`` and ``strata``: per stratum (by its label, as a string) na, nb, mean_a,
    mean_b.
    """
    import numpy as np

    _check_alternative(alternative, resamples)
    x = _as_float_array(a, "a")
    y = _as_float_array(b, "b")
    sa_labels, sb_labels = np.asarray(strata_a).reshape(-1), np.asarray(strata_b).reshape(-1)
    if sa_labels.size != x.size or sb_labels.size != y.size:
        raise ValueError(f"strata must label every item (got {sa_labels.size} labels for {x.size} a items, "
                         f"{sb_labels.size} for {y.size} b items)")
    ca = [None] * x.size if clusters_a is None else list(clusters_a)
    cb = [None] * y.size if clusters_b is None else list(clusters_b)
    info, parts = {}, []
    for label in sorted(set(sa_labels.tolist()) | set(sb_labels.tolist()), key=str):
        in_a, in_b = np.flatnonzero(sa_labels == label), np.flatnonzero(sb_labels == label)
        xs, ys = x[in_a], y[in_b]
        info[str(label)] = {"na": int(xs.size), "nb": int(ys.size), "mean_a": float(xs.mean()) if xs.size else None,
                            "mean_b": float(ys.mean()) if ys.size else None}
        if xs.size and ys.size:
            units = _Units(xs.size, ys.size, [ca[i] for i in in_a], [cb[i] for i in in_b])
            parts.append((units, units.sums(np.concatenate([xs, ys])), xs.size * ys.size / (xs.size + ys.size)))
    if not parts:
        return {"statistic": 0.0, "p_value": 1.0, "z": 0.0, "alternative": alternative,
                "resamples": int(resamples), "strata": info}
    weight = sum(w for _, _, w in parts)

    def stat(units, s, w, idx):  # this stratum's weighted difference when units idx are a's
        sa, ma = s[idx].sum(axis=-1), units.sizes[idx].sum(axis=-1)
        n = units.sizes.sum()
        return w * (sa / ma - (s.sum() - sa) / (n - ma)) / weight

    observed = float(sum(stat(u, s, w, np.arange(u.ka)) for u, s, w in parts))
    rng = np.random.default_rng(seed)
    stats = np.zeros(resamples, dtype=np.float64)
    for units, s, w in parts:
        pos = 0
        for idx in units.draws(rng, resamples):
            stats[pos:pos + len(idx)] += stat(units, s, w, idx)
            pos += len(idx)
    tol = 1e-9 * max(1.0, float(max(np.abs(x).max(), np.abs(y).max())))
    p, z = _p_and_z(stats, observed, alternative, tol, resamples)
    return {"statistic": observed, "p_value": p, "z": z, "alternative": alternative, "resamples": int(resamples),
            "strata": info}


def _shift_p(stats, observed: float, resamples: int) -> float:
    """(count + 1) / (resamples + 1), count = resamples at least as far apart as observed (relative ties)."""
    import numpy as np

    return (int(np.sum(stats >= observed - 1e-9 * max(1.0, observed))) + 1) / (resamples + 1)


def distribution_shift_test(a: Sequence, b: Sequence, *, resamples: int = 2000, seed: int = 0,
                            clusters_a: Sequence | None = None, clusters_b: Sequence | None = None) -> dict:
    """Do two samples of labels (choice counts, subjects: anything hashable) come from different
    distributions? ``distance`` is the total variation distance between their empirical distributions,
    1/2 sum_k |share_a(k) - share_b(k)| in [0, 1]; ``p_value`` (+1 corrected) the share of random re-splits
    of the pooled labels (whole clusters, as in ``permutation_test``) into groups of the same sizes that are
    at least as far apart. Also ``a`` and ``b``: each label's share (labels as strings)."""
    import numpy as np

    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need at least one label")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    names = sorted({str(v) for v in a} | {str(v) for v in b})
    index = {k: i for i, k in enumerate(names)}
    codes = np.array([index[str(v)] for v in list(a) + list(b)], dtype=np.int64)
    k, na, n = len(names), len(a), len(a) + len(b)
    units = _Units(na, n - na, clusters_a, clusters_b)
    # per unit and label, its items with that label: [units, labels]
    counts = np.stack([units.sums((codes == j).astype(np.float64)) for j in range(k)], axis=1)
    total = counts.sum(axis=0)

    def tv(counts_a):
        size_a = counts_a.sum(axis=-1, keepdims=True)
        return 0.5 * np.abs(counts_a / size_a - (total - counts_a) / (n - size_a)).sum(axis=-1)

    ca = counts[:units.ka].sum(axis=0)
    observed = float(tv(ca))
    shares = {"a": {m: float(ca[i] / na) for i, m in enumerate(names)},
              "b": {m: float((total[i] - ca[i]) / (n - na)) for i, m in enumerate(names)}}
    if k == 1:
        return {"distance": 0.0, "p_value": 1.0, "resamples": int(resamples), **shares}
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples, dtype=np.float64)
    pos = 0
    for idx in units.draws(rng, resamples):
        if units.clustered:
            drawn = np.stack([counts[:, j][idx].sum(axis=1) for j in range(k)], axis=1)
        else:  # units of one item: count its labels in one pass
            picked = codes[idx] + k * np.arange(len(idx))[:, None]
            drawn = np.bincount(picked.ravel(), minlength=len(idx) * k).reshape(len(idx), k).astype(np.float64)
        stats[pos:pos + len(idx)] = tv(drawn)
        pos += len(idx)
    return {"distance": observed, "p_value": _shift_p(stats, observed, resamples), "resamples": int(resamples),
            **shares}


def mean_ratio_test(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                    clusters_a: Sequence | None = None, clusters_b: Sequence | None = None) -> dict:
    """Do two samples of positive values (lengths) differ in their means by a factor? ``ratio`` is
    mean(b) / mean(a), ``distance`` |log ratio|; ``p_value`` (+1 corrected) the share of random re-splits of
    the pooled values (whole clusters, as in ``permutation_test``) at least as far apart."""
    import numpy as np

    x = _as_float_array(a, "a")
    y = _as_float_array(b, "b")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("mean_ratio_test needs positive values")
    units = _Units(x.size, y.size, clusters_a, clusters_b)
    s, m = units.sums(np.concatenate([x, y])), units.sizes
    total, n = s.sum(), m.sum()

    def distance(idx):
        sa, ma = s[idx].sum(axis=-1), m[idx].sum(axis=-1)
        return np.abs(np.log(((total - sa) / (n - ma)) / (sa / ma)))

    observed = float(distance(np.arange(units.ka)))
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples, dtype=np.float64)
    pos = 0
    for idx in units.draws(rng, resamples):
        stats[pos:pos + len(idx)] = distance(idx)
        pos += len(idx)
    return {"ratio": float(y.mean() / x.mean()), "distance": observed, "p_value": _shift_p(stats, observed, resamples),
            "resamples": int(resamples), "mean_a": float(x.mean()), "mean_b": float(y.mean())}


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """Cohen's d: (mean(a) - mean(b)) / pooled SD (sample variances, n - 1). 0.0 if both are constant
    and equal; +-inf if they are constant and differ."""

    x = _as_float_array(a, "a")
    y = _as_float_array(b, "b")
    diff = float(x.mean() - y.mean())
    dof = x.size + y.size - 2
    if dof <= 0:
        raise ValueError("Cohen's d needs at least 3 values in all")
    ss = float(((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum())
    sd = math.sqrt(ss / dof)
    if sd == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / sd


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """Cliff's delta: P(a > b) - P(a < b) over all pairs, in [-1, 1].

    Rank-based, so robust to the heavy tails of per-item margins and losses, and on 0/1
    correctness it equals the accuracy difference mean(a) - mean(b). O((n + m) log(n + m)).
    """
    import numpy as np

    x = _as_float_array(a, "a")
    y = np.sort(_as_float_array(b, "b"))
    below = np.searchsorted(y, x, side="left")  # number of b values < each a
    above = y.size - np.searchsorted(y, x, side="right")  # number of b values > each a
    return float((below.sum() - above.sum()) / (x.size * y.size))
