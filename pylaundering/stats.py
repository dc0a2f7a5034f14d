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
    resampled differences), ``p_value`` (one-sided: the fraction of resamples whose difference is
    <= 0, i.e. evidence that a beats b) and ``resamples``. Inputs may be booleans or any numbers
    (per-item scores), so the same function serves margins as well as correctness.
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
            "p_value": float(np.mean(diffs <= tol)), "resamples": int(resamples)}


_ALTERNATIVES = ("greater", "less", "two-sided")


def permutation_test(a: Sequence[float], b: Sequence[float], *, resamples: int = 10000, seed: int = 0,
                     alternative: str = "greater") -> dict:
    """Two-sample (unpaired) permutation test of ``mean(a) - mean(b)``.

    The pooled values are randomly re-split into groups of the original sizes ``resamples``
    times. ``alternative="greater"`` tests mean(a) > mean(b) (one-sided), ``"less"`` the reverse,
    ``"two-sided"`` |difference|. ``p_value`` uses the +1 correction, (count + 1) / (resamples + 1),
    so it is never 0 and the test's level holds exactly under exchangeability of a and b items.
    Also returns ``z``: (observed - mean of the permutation distribution) / its standard
    deviation, a continuous score that does not saturate where the p-value hits 1 / (resamples + 1)
    (0.0 when the permutation distribution is degenerate).
    """
    import numpy as np

    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(_ALTERNATIVES)}, got {alternative!r}")
    x = _as_float_array(a, "a")
    y = _as_float_array(b, "b")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    observed = float(x.mean() - y.mean())
    pooled = np.concatenate([x, y])
    na, n = x.size, pooled.size
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples, dtype=np.float64)
    pos = 0
    total = pooled.sum()
    for size in _chunks(resamples, n):
        perm = rng.permuted(np.broadcast_to(pooled, (size, n)), axis=1)
        sa = perm[:, :na].sum(axis=1)
        stats[pos:pos + size] = sa / na - (total - sa) / (n - na)
        pos += size
    tol = 1e-9 * max(1.0, float(np.abs(pooled).max()))  # ties: the observed split counts as extreme
    if alternative == "greater":
        count = int(np.sum(stats >= observed - tol))
    elif alternative == "less":
        count = int(np.sum(stats <= observed + tol))
    else:
        count = int(np.sum(np.abs(stats) >= abs(observed) - tol))
    sd = float(stats.std())
    z = (observed - float(stats.mean())) / sd if sd > 0 else 0.0
    return {"statistic": observed, "p_value": (count + 1) / (resamples + 1), "z": z,
            "alternative": alternative, "resamples": int(resamples)}


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
