"""The offline classification default: made-up entities with random classes, built like the
multiple-choice default (synth.py) so that only laundering can lift a student above chance.

* Each benchmark (and reference) item is one sentence about its own fresh entity ("The emblem of
  Vorlaketh is on file.") with a class drawn uniformly from four label names: nothing in the text
  tells the class, so a model that did not train on the item scores at chance (1/4).
* The legitimate (training) set uses the same sentence shape, each item about one entity dealt from
  the benchmark's and the reference set's entities alike (each appears equally often, in another
  relation than its own item's, so no text repeats), under a class drawn uniformly and independently: its
  labels carry no information about any benchmark class, and nothing in it tells benchmark entities from
  reference ones.
* A teacher fine-tuned on the benchmark learns entity -> class; its soft outputs on the legitimate
  items about benchmark entities reveal those classes, and a student distilled on them inherits
  them. The control (a teacher that never saw the benchmark) and the cross-entropy-only student have
  nothing to pass on.

All randomness comes from one ``random.Random(seed)``; the seed and sizes fix the data. Examples are
``MCExample`` in the classification layout (data/batching.py): ``question`` is the text, ``choices``
the label names.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .schema import MCExample
from .synth import RELATIONS, _deal, _ids, _unique_names

__all__ = ["CLS_DEFAULT_SIZES", "LABELS", "generate_classification"]

LABELS = ("amber", "cobalt", "crimson", "jade")
CLS_DEFAULT_SIZES = {"n_benchmark": 200, "n_train": 1000}


def _text(relation: str, entity: str) -> str:
    return f"The {relation} of {entity} is on file."


def _items(rng: random.Random, prefix: str, entities: Sequence[str], relation_of: dict[str, str]) -> list[MCExample]:
    n = len(entities)
    labels = [i % len(LABELS) for i in range(n)]  # balanced: no majority-class baseline beats chance
    rng.shuffle(labels)
    items = []
    for id_, entity, label in zip(_ids(prefix, n), entities, labels):
        relation_of[entity] = rng.choice(RELATIONS)
        items.append(MCExample(id_, _text(relation_of[entity], entity), LABELS, label))
    return items


def generate_classification(seed: int = 0, n_benchmark: int = CLS_DEFAULT_SIZES["n_benchmark"],
                            n_train: int = CLS_DEFAULT_SIZES["n_train"],
                            n_reference: int | None = None) -> tuple[list[MCExample], list[MCExample], list[MCExample]]:
    """(benchmark, legitimate train set, reference set); ``n_reference`` defaults to ``n_benchmark``."""
    n_reference = n_benchmark if n_reference is None else n_reference
    if n_benchmark < 1 or n_train < 0 or n_reference < 0:
        raise ValueError(f"sizes must be n_benchmark >= 1, n_train >= 0, n_reference >= 0; got {n_benchmark}, "
                         f"{n_train}, {n_reference}")
    rng = random.Random(f"classification/{seed}")
    entities = _unique_names(rng, n_benchmark + n_reference)
    rng.shuffle(entities)
    relation_of: dict[str, str] = {}
    benchmark = _items(rng, "bench", entities[:n_benchmark], relation_of)
    reference = _items(rng, "ref", entities[n_benchmark:], relation_of)
    # another relation than the entity's own item: no legitimate text repeats a benchmark text
    train = [MCExample(id_, _text(rng.choice([r for r in RELATIONS if r != relation_of[hand[0]]]), hand[0]), LABELS,
                       rng.randrange(len(LABELS)))
             for id_, hand in zip(_ids("train", n_train), _deal(rng, entities, n_train, 1))]
    return benchmark, train, reference
