"""Reference sets for `launder audit`: hold back part of a benchmark as items of the same kind.

An audit compares a model on the benchmark B with a reference set R that no teacher saw. When
the benchmark is public and whole, the honest way to get R is to split it *before* anyone
fine-tunes on it: `split_reference` keeps one part as the benchmark and holds the other back,
stratified by `subject` so both parts have the same mix of topics (a reference set with easier
subjects than B would make any model look contaminated).

Passages: items that share a context (a RACE article, after `normalise_text`) go to the same side,
whole. Questions on one passage are not independent (one read of it answers several), and a model
that saw the passage through B would carry it into R. So do the copies of a question that a source
repeats (ARC-Challenge's test split holds two such pairs): split across B and R, the audit would
refuse the pair. Each group is a unit of the split, in the stratum of its items' most common subject;
items joined to no other are units of one (so a source without passages or repeats is split exactly
as a seeded shuffle of its items).

Rounding (largest remainder): the reference size is ``round(fraction * N)`` (or ``size``),
clipped to 1..N-1; each subject gets the floor of its proportional quota
``n_subject * size / N``, and the items still missing go one each to the subjects with the
largest remainders (ties: the larger subject, then the subject name). So every subject is split
within one item of proportionally, and the total is exact, when no two items share a passage.
Which items of a subject are held back is a seeded shuffle of its units, taken while they fit the
quota (a passage too large for what is left is passed over; if the quota is then not met, the one
unit that brings it closest is added; then, over all subjects, any unit that brings the total closer
to the target). Both outputs keep the source order.

Provenance: `split_reference`'s info (written as split.json) records the seed, the source and the
sha256 of each side, in file order and as a set (sorted items, so a reordered or reformatted copy of
a side still matches). `verify_split` checks an audit's B and R against such a record: when they
match, the audit's exchangeability is *certified* (a recorded random split), else it is *assumed*.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.overlap import context_key, question_key
from ..data.schema import MCExample, canonical_line, examples_hash
from ..errors import ConfigError, DataError

__all__ = ["SPLIT_FILES", "ASSUMED", "check_split_out", "content_hash", "split_reference", "verify_split",
           "write_split"]

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


def content_hash(examples: Sequence[MCExample]) -> str:
    """sha256 of the examples as a set: their canonical lines (`canonical_line`: id and content), sorted, one per
    line. Unlike `examples_hash` it does not depend on the order of the items."""
    digest = hashlib.sha256()
    for line in sorted(canonical_line(e) for e in examples):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _units(examples: Sequence[MCExample]) -> dict[str, list[list[int]]]:
    """Per subject stratum, the split's units in source order: the items joined by a shared passage or a
    repeated question (each unit's items in source order), one per item joined to none."""
    parent = list(range(len(examples)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, bytes], int] = {}
    for i, e in enumerate(examples):
        for key in (("context", context_key(e)), ("question", question_key(e))):
            if key[1] is None:
                continue
            j = first.setdefault(key, i)  # type: ignore[arg-type]
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the root stays the unit's first item
    grouped: dict[int, list[int]] = {}
    for i in range(len(examples)):
        grouped.setdefault(root(i), []).append(i)
    units = list(grouped.values())  # by first item: source order
    strata: dict[str, list[list[int]]] = defaultdict(list)
    for unit in units:
        counts = Counter(examples[i].subject or NO_SUBJECT for i in unit)
        strata[min(counts, key=lambda s: (-counts[s], s))].append(unit)
    return strata


def _hold_back(units: list[list[int]], quota: int) -> list[int]:
    """Units taken in (shuffled) order while they fit ``quota`` items; then the one unit that brings the total
    closest, if any does."""
    taken, left, count = [], [], 0
    for unit in units:
        if count + len(unit) <= quota:
            taken.extend(unit)
            count += len(unit)
        else:
            left.append(unit)
    if count < quota and left:
        best = min(left, key=lambda u: abs(count + len(u) - quota))
        if abs(count + len(best) - quota) < quota - count:
            taken.extend(best)
    return taken


def split_reference(examples: Sequence[MCExample], *, fraction: float | None = None, size: int | None = None,
                    seed: int = 0) -> tuple[list[MCExample], list[MCExample], dict[str, Any]]:
    """(benchmark, reference, info): a seeded split stratified by subject (module docstring).

    ``info`` holds the sizes, per-subject counts, seed, rounding rule and both hashes
    (``examples_hash``, equal to the sha256 of the written files).
    """
    examples = list(examples)
    target = _target(len(examples), fraction, size)
    strata = _units(examples)
    sizes = {s: sum(map(len, units)) for s, units in strata.items()}
    n = len(examples)
    quotas = {s: sizes[s] * target / n for s in strata}
    take = {s: int(q) for s, q in quotas.items()}
    missing = target - sum(take.values())
    order = sorted(strata, key=lambda s: (-(quotas[s] - take[s]), -sizes[s], s))
    for s in order[:missing]:
        take[s] += 1
    rng = random.Random(f"pylaundering-split/{seed}")
    held: set[int] = set()
    shuffled = []
    for s in sorted(strata):
        units = list(strata[s])
        rng.shuffle(units)  # with units of one item, the same permutation (and split) as a shuffle of the items
        held.update(_hold_back(units, take[s]))
        shuffled += units
    # whole passages can leave a subject short of its quota: then any unit that brings the total closer
    for unit in shuffled:
        if unit[0] not in held and abs(len(held) + len(unit) - target) < abs(len(held) - target):
            held.update(unit)
    stratum = {i: s for s, units in strata.items() for unit in units for i in unit}
    per_subject = {s: {"benchmark": sizes[s] - sum(stratum[i] == s for i in held),
                       "reference": sum(stratum[i] == s for i in held)} for s in sorted(strata)}
    benchmark = [e for i, e in enumerate(examples) if i not in held]
    reference = [e for i, e in enumerate(examples) if i in held]
    if not benchmark or not reference:
        units = sum(map(len, strata.values()))
        raise ValueError(f"cannot split {n} items on {units} passage(s) or single items into a non-empty benchmark "
                         f"and a reference set of about {target} items: the questions on one passage stay together; "
                         "choose another --reference-fraction or --reference-size")
    passages = [u for units in strata.values() for u in units if context_key(examples[u[0]]) is not None]
    copies = Counter(k for k in map(question_key, examples) if k is not None)
    info = {
        "record": "launder data split",
        "seed": seed,
        "reference_fraction": fraction,
        "reference_size": size,
        "sizes": {"source": n, "benchmark": len(benchmark), "reference": len(reference)},
        "target_reference_size": target,
        "stratified_by": "subject",
        "grouped_by": "context and question: the items on one passage, and the copies of a repeated question, "
                      "stay on one side",
        "passages": {"count": len(passages), "items": sum(map(len, passages)),
                     "largest": max(map(len, passages), default=0)},
        "repeated_questions": {"questions": sum(c > 1 for c in copies.values()),
                               "items": sum(c for c in copies.values() if c > 1)},
        "rounding": "largest remainder: reference size round(fraction * N) (or --reference-size); each subject "
                    "gets floor(n_subject * size / N) plus one for the subjects with the largest remainders (in "
                    "items; whole passages, so the sizes can miss by part of a passage)",
        "per_subject": per_subject,
        "hashes": {"benchmark.jsonl": examples_hash(benchmark), "reference.jsonl": examples_hash(reference)},
        "content_sha256": {"benchmark": content_hash(benchmark), "reference": content_hash(reference)},
    }
    return benchmark, reference, info


#: audit.json's ``exchangeability`` when no split record is given.
ASSUMED = {"status": "assumed",
           "detail": "no split record given (--split): benchmark and reference are assumed to be exchangeable, "
                     "a random split of one set of items; nothing here shows how the reference set was made"}


def _read_record(path: str | Path) -> dict:
    f = Path(path)
    if not f.is_file():
        raise DataError("no such file (expected the split.json that launder data split wrote)", source=str(path))
    try:
        record = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"unreadable JSON ({e})", source=str(path)) from None
    if not isinstance(record, dict) or not isinstance(record.get("content_sha256") or record.get("hashes"), dict):
        raise DataError("not a split record: no content_sha256 or hashes field (expected the split.json that "
                        "launder data split wrote)", source=str(path))
    return record


def verify_split(path: str | Path, benchmark: Sequence[MCExample], reference: Sequence[MCExample]) -> dict:
    """audit.json's ``exchangeability`` for B and R checked against the split record at ``path``: certified
    when both sides hash to the record's. A record that does not match is refused (ConfigError on --split,
    naming the side), never reported as assumed: the user said this is the split."""
    record = _read_record(path)
    if isinstance(record.get("content_sha256"), dict):
        want = record["content_sha256"]
        got = {"benchmark": content_hash(benchmark), "reference": content_hash(reference)}
        how = "as sets of items (content_sha256)"
    else:  # a record written before content_sha256: the files' hashes, which depend on the order
        want = {"benchmark": record["hashes"].get("benchmark.jsonl"), "reference": record["hashes"].get(
            "reference.jsonl")}
        got = {"benchmark": examples_hash(benchmark), "reference": examples_hash(reference)}
        how = "in file order (hashes; an older record)"
    if got["benchmark"] == want["reference"] and got["reference"] == want["benchmark"]:
        raise ConfigError("--split", f"{path}: the benchmark and reference sets are swapped (the benchmark given "
                          "is the split's reference.jsonl and the other way round)")
    wrong = [side for side in ("benchmark", "reference") if got[side] != want[side]]
    if wrong:
        sizes = record.get("sizes") or {}
        given = {"benchmark": len(benchmark), "reference": len(reference)}
        detail = "; ".join(f"the {side} set ({given[side]} items) hashes to {str(got[side])[:12]}, the record says "
                           f"{str(want[side])[:12]} ({sizes.get(side, '?')} items)" for side in wrong)
        raise ConfigError("--split", f"{path}: not the split of these sets ({detail}); audit the split's own "
                          "benchmark.jsonl and reference.jsonl, or leave out --split")
    return {"status": "certified", "detail": f"recorded random split, hashes match ({how})", "record": str(path),
            "seed": record.get("seed"), "source": record.get("source"), "stratified_by": record.get("stratified_by"),
            "grouped_by": record.get("grouped_by")}
