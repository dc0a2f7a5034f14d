"""Simulated models for measuring the audit's error rates: per-item scores whose truth is known.

The audit's statistics (`audits.assess`, `comparability.compare_sets`) are pure functions on per-item
arrays, so their false-positive rates and power can be measured over thousands of simulated audits
without training anything: `make_items` draws a set of items, `knowledge` which items a model knows,
`model_scores` the `ItemScores` of a model with that knowledge.

A model's logits are Gaussian noise over an item's choices, plus ``strength`` on the correct choice of
the items it knows. Errors are made alike by two things real models share: item difficulty (`knowledge`
with ``correlation`` > 0: models know the easy items first) and a *lure*, one wrong choice per item
that draws every model that does not know the item (``lure`` > 0). ``copy`` adds ``copy_strength`` to
another model's predicted choice: a student that learnt a teacher's answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evidence import ItemScores

__all__ = ["Items", "knowledge", "make_items", "model_scores"]


@dataclass
class Items:
    labels: np.ndarray  # int: the correct choice
    num_choices: np.ndarray  # int
    difficulty: np.ndarray  # in [0, 1): what `knowledge` orders items by
    lure: np.ndarray  # int: the wrong choice that models which do not know the item lean to

    @property
    def n(self) -> int:
        return int(self.labels.size)


def make_items(rng: np.random.Generator, n: int, num_choices: int = 4, *, other_choices: int | None = None,
               other_share: float = 0.0, difficulty: tuple[float, float] = (0.0, 1.0)) -> Items:
    """``n`` items with ``num_choices`` choices (a share ``other_share`` of them with ``other_choices``), labels
    uniform, difficulty uniform on ``difficulty``."""
    counts = np.full(n, num_choices)
    if other_choices is not None and other_share > 0:
        counts[rng.random(n) < other_share] = other_choices
    labels = (rng.random(n) * counts).astype(np.int64)
    lure = (labels + 1 + (rng.random(n) * (counts - 1)).astype(np.int64)) % counts
    return Items(labels, counts, rng.uniform(*difficulty, size=n), lure)


def knowledge(rng: np.random.Generator, items: Items, skill: float, *, correlation: float = 0.0) -> np.ndarray:
    """Which items a model of ``skill`` (its chance of knowing an item of middling difficulty) knows: each item
    with probability skill + correlation * (0.5 - difficulty), clipped to [0, 1]."""
    q = np.clip(skill + correlation * (0.5 - items.difficulty), 0.0, 1.0)
    return rng.random(items.n) < q


def model_scores(rng: np.random.Generator, items: Items, knows: np.ndarray, *, strength: float = 4.0,
                 noise: float = 1.0, lure: float = 0.0, copy: np.ndarray | None = None,
                 copy_strength: float = 0.0) -> ItemScores:
    """The scores of a model that knows ``knows`` (bool per item): see the module docstring."""
    width = int(items.num_choices.max())
    rows = np.arange(items.n)
    logits = noise * rng.standard_normal((items.n, width))
    logits[rows, items.labels] += strength * knows
    logits[rows, items.lure] += lure * ~knows
    if copy is not None:
        logits[rows, copy] += copy_strength
    logits[np.arange(width)[None, :] >= items.num_choices[:, None]] = -np.inf
    return ItemScores.from_logits(logits, items.labels, items.num_choices)
