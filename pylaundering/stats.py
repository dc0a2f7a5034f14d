"""Small, dependency-free statistics for honest accuracy reporting."""

from __future__ import annotations

import math
from typing import Sequence


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
