"""Reference sets for `launder audit`: hold back part of a benchmark as items of the same kind.

An audit compares a model on the benchmark B with a reference set R that no teacher saw. When
the benchmark is public and whole, the honest way to get R is to split it *before* anyone
fine-tunes on it: `split_reference` keeps one part as the benchmark and holds the other back,
stratified by `subject` so both parts have the same mix of topics (a reference set with easier
subjects than B would make any model look contaminated).

Rounding (largest remainder): the reference size is ``round(fraction * N)`` (or ``size``),
clipped to 1..N-1; each subject gets the floor of its proportional quota
``n_subject * size / N``, and the items still missing go one each to the subjects with the
largest remainders (ties: the larger subject, then the subject name). So every subject is split
within one item of proportionally, and the total is exact. Which items of a subject are held
back is a seeded shuffle; both outputs keep the source order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.schema import MCExample, examples_hash

__all__ = ["SPLIT_FILES", "check_split_out", "split_reference", "write_split"]

NO_SUBJECT = "(none)"
#: What `launder data split` writes into its --out folder.
SPLIT_FILES = ("benchmark.jsonl", "reference.jsonl", "split.json")


def check_split_out(out: str | Path, source: str, *, overwrite: bool) -> None:
    """Before anything is read: the split never writes over its SOURCE (a file, or a folder's files; even with
    ``overwrite``), nor over an earlier split unless ``overwrite`` (``phases.common.check_outputs``)."""
    from ..phases.common import check_outputs

    inputs = [Path(source)] if Path(source).exists() else []
    check_outputs([Path(out) / name for name in SPLIT_FILES], overwrite=overwrite, inputs=inputs)


def write_split(benchmark: Sequence[MCExample], reference: Sequence[MCExample], info: dict[str, Any],
                out: str | Path) -> None:
    """Writes ``SPLIT_FILES`` into ``out`` (each atomically)."""
    from ..data.schema import write_jsonl
    from ..train.checkpoint import write_json

    out = Path(out)
    write_jsonl(benchmark, out / "benchmark.jsonl")
    write_jsonl(reference, out / "reference.jsonl")
    write_json(info, out / "split.json")


def _target(n: int, fraction: float | None, size: int | None) -> int:
    if (fraction is None) == (size is None):
        raise ValueError("give exactly one of a reference fraction or a reference size")
    if n < 2:
        raise ValueError(f"cannot split {n} item(s) into a benchmark and a reference set: need at least 2")
    if size is not None:
        if not 1 <= size <= n - 1:
            raise ValueError(f"reference size must be between 1 and {n - 1} (the source has {n} items), got {size}")
        return size
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"reference fraction must be strictly between 0 and 1, got {fraction}")
    return min(n - 1, max(1, round(fraction * n)))


def split_reference(examples: Sequence[MCExample], *, fraction: float | None = None, size: int | None = None,
                    seed: int = 0) -> tuple[list[MCExample], list[MCExample], dict[str, Any]]:
    """(benchmark, reference, info): a seeded split stratified by subject (module docstring).

    ``info`` holds the sizes, per-subject counts, seed, rounding rule and both hashes
    (``examples_hash``, equal to the sha256 of the written files).
    """
    examples = list(examples)
    target = _target(len(examples), fraction, size)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[e.subject if e.subject else NO_SUBJECT].append(i)
    n = len(examples)
    quotas = {s: len(idx) * target / n for s, idx in groups.items()}
    take = {s: int(q) for s, q in quotas.items()}
    missing = target - sum(take.values())
    order = sorted(groups, key=lambda s: (-(quotas[s] - take[s]), -len(groups[s]), s))
    for s in order[:missing]:
        take[s] += 1
    rng = random.Random(f"pylaundering-split/{seed}")
    held: set[int] = set()
    for s in sorted(groups):
        idx = list(groups[s])
        rng.shuffle(idx)
        held.update(idx[: take[s]])
    benchmark = [e for i, e in enumerate(examples) if i not in held]
    reference = [e for i, e in enumerate(examples) if i in held]
    info = {
        "seed": seed,
        "reference_fraction": fraction,
        "reference_size": size,
        "sizes": {"source": n, "benchmark": len(benchmark), "reference": len(reference)},
        "stratified_by": "subject",
        "rounding": "largest remainder: reference size round(fraction * N) (or --reference-size); each subject "
                    "gets floor(n_subject * size / N) plus one for the subjects with the largest remainders",
        "per_subject": {s: {"benchmark": len(groups[s]) - take[s], "reference": take[s]} for s in sorted(groups)},
        "hashes": {"benchmark.jsonl": examples_hash(benchmark), "reference.jsonl": examples_hash(reference)},
    }
    return benchmark, reference, info
