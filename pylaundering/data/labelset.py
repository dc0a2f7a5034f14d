"""One label set for every file a classification command reads.

A model's head has one output per class of the dataset, so the benchmark, the training split and
the reference set must share one label set, and each example's label must point at the same class
in all of them. A file holds the classes its rows happen to have (a 300-item subset of a 77-class
dataset held 73), so each load's own set is not enough: `shared_label_set` takes the union, in the
dataset's order where one load has every class, and remaps every example by the class's NAME (never
by its index, which differs between a 73-class and a 77-class set). Sets that cannot be matched by
name (ids in one file and words in another; two names that differ only in case) are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DataError
from .conventions import check_names, int_like
from .schema import MCExample

__all__ = ["SharedLabels", "label_set_of", "remap_examples", "shared_label_set"]


@dataclass(frozen=True)
class SharedLabels:
    """The shared label set, how it was formed, and the loads remapped into it (in the order given)."""

    names: tuple[str, ...]
    source: str
    results: list[Any]


def label_set_of(result: Any) -> tuple[str, ...]:
    """A classification load's label set: its `label_names`, else the one choice tuple all its examples share."""
    declared = getattr(result, "label_names", None)
    sets = {e.choices for e in result.examples}
    if declared is not None and sets - {tuple(declared)}:
        raise DataError("its examples' choices are not its label_names", source=_name(result))
    if len(sets) != 1:
        raise DataError(f"its examples have {len(sets)} different choice sets: not one label set"
                        " (multiple-choice data?)", source=_name(result))
    return tuple(declared) if declared is not None else next(iter(sets))


def remap_examples(examples: Sequence[MCExample], names: Sequence[str], source: str = "") -> list[MCExample]:
    """The examples with `names` as choices, each label pointing at the same class name as before."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for e in examples:
        answer = e.choices[e.label]
        if answer not in index:
            raise DataError(f"label {answer!r} of {e.id!r} is not in the label set {preview_names(names)}",
                            source=source or None)
        out.append(dataclasses.replace(e, choices=tuple(names), label=index[answer]))
    return out


def shared_label_set(results: Sequence[Any], *, names: Sequence[str] | None = None) -> SharedLabels:
    """The label set every load in `results` shares, and the loads remapped into it.

    `results` are `LoadResult`s (or any dataclass with `examples` and `source`) of one classification
    dataset: benchmark, training split, reference set. With `names` (the dataset's label set, e.g. its
    ClassLabel names or --labels), each load's classes must be among them and that order is kept.
    Otherwise the union: ids ("0", "1", ...) sorted as numbers; words in the order of a load that has
    every class (the full training split), else sorted when every load's set is, else in order of first
    appearance. Raises DataError naming the loads whose sets cannot be reconciled.
    """
    if not results:
        raise ValueError("shared_label_set needs at least one load")
    sets = [label_set_of(r) for r in results]
    if names is not None:
        union = check_names(names, "label names")
        for result, own in zip(results, sets):
            unknown = [n for n in own if n not in union]
            if unknown:
                raise DataError(f"labels {unknown[:5]} are not in the given label set {preview_names(union)}",
                                source=_name(result))
        how = "given label names"
    else:
        union, how = _union(results, sets)
    remapped = []
    for result, own in zip(results, sets):
        examples = result.examples if own == union else remap_examples(result.examples, union, _name(result))
        changes: dict[str, Any] = {"examples": examples}
        fields = {f.name for f in dataclasses.fields(result)}
        if "label_names" in fields:
            changes["label_names"] = union
        if "label_source" in fields:
            changes["label_source"] = how
        remapped.append(dataclasses.replace(result, **changes))
    return SharedLabels(union, how, remapped)


def _union(results: Sequence[Any], sets: list[tuple[str, ...]]) -> tuple[tuple[str, ...], str]:
    numeric = [all(int_like(n) is not None for n in s) for s in sets]
    if any(numeric) and not all(numeric):
        ids, words = numeric.index(True), numeric.index(False)
        raise DataError(
            f"cannot reconcile the label sets: {_name(results[ids])} names its classes by id"
            f" ({preview_names(sets[ids])}) and {_name(results[words])} by name ({preview_names(sets[words])});"
            " give both the dataset's label names in id order (label_names=, or a labels.txt beside the data)"
        )
    every = {n for s in sets for n in s}
    folded: dict[str, str] = {}
    for n in sorted(every):
        other = folded.setdefault(n.casefold(), n)
        if other != n:
            raise DataError(f"cannot reconcile the label sets: {other!r} and {n!r} differ only in case; give the"
                            " dataset's label names (label_names=)")
    loads = ", ".join(f"{_name(r)} ({len(s)})" for r, s in zip(results, sets))
    if all(numeric):
        return tuple(sorted(every, key=lambda n: int(n))), f"union of the ids of {loads}"
    full = next((i for i, s in enumerate(sets) if set(s) == every), None)
    if full is not None:
        return sets[full], f"union of {loads}, in the order of {_name(results[full])}"
    if all(list(s) == sorted(s) for s in sets):
        return tuple(sorted(every)), f"union of {loads}, sorted"
    union: list[str] = []
    for s in sets:
        union.extend(n for n in s if n not in union)
    return tuple(union), f"union of {loads}, in order of first appearance"


def preview_names(names: Sequence[str], shown: int = 6) -> str:
    listed = ", ".join(repr(n) for n in list(names)[:shown])
    return f"{listed}, ... ({len(names)} in all)" if len(names) > shown else listed


def _name(result: Any) -> str:
    return str(getattr(result, "source", "") or "a load")
