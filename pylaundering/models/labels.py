"""The label set a classification model is saved with, and how data meets it.

A classification head has one output per class; which class an output stands for is the model's
``config.id2label``, written with the model (``loading.load_model`` puts the data's label names there).
A later file (another split, a benchmark subset, a file whose ids count the classes in another order)
is matched to the model by class NAME (``align_to_model``), never by position: a 73-class file read
by index against a 77-class head shifts every label after the first missing class. A model saved
before names were written (``LABEL_0``, ``LABEL_1``, ...) is read by index as before, when the counts
agree, and the metrics say so (``label_mapping``).

``parse_labels``: the label set a user declares (``--labels``, config key ``labels``).

Light on purpose: ``experiments/config.py`` checks ``labels`` with ``parse_labels`` (transformers is
imported only when a model's config is read).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.conventions import check_names, read_class_file
from ..data.labelset import preview_names, remap_examples
from ..data.schema import MCExample
from ..errors import ConfigError, DataError

__all__ = ["BY_INDEX", "BY_NAME", "DeclaredLabels", "align_to_model", "label_mapping", "model_label_names",
           "names_of_config", "parse_labels"]

BY_NAME = "by name"
BY_INDEX = "by index (the model has no label names)"

_PLACEHOLDER = re.compile(r"LABEL_(\d+)")


@dataclass(frozen=True)
class DeclaredLabels:
    """A declared label set: the names in id order, the first id when a class file numbers its lines (else
    None), and where it came from (for the metrics)."""

    names: tuple[str, ...]
    base: int | None
    source: str


def parse_labels(value: str | Sequence[str] | None, key: str = "labels",
                 source: str | None = None) -> DeclaredLabels | None:
    """``value`` as a label set: comma-separated names (``neg,pos``) or a file with one name per line (or
    "index<TAB>name" lines, as a class file beside the data; ``data.conventions.read_class_file``); a list of
    names is taken as it is. None for None. A value that is neither is a ConfigError naming ``key``."""
    if value is None:
        return None
    if not isinstance(value, str):
        return DeclaredLabels(_checked(list(value), key, source), None, f"given ({key})")
    text = value.strip()
    path = Path(text).expanduser()
    if path.is_dir():
        raise ConfigError(key, f"{text} is a folder: give a file with one label name per line, or the names "
                          "separated by commas", source)
    if path.is_file():
        try:
            names, base = read_class_file(path)
        except DataError as e:
            raise ConfigError(key, str(e), source) from None
        return DeclaredLabels(names, base, f"given ({key} file {text})")
    if "," not in text:
        raise ConfigError(key, f"{text!r} is neither a file nor label names separated by commas (e.g. neg,pos; "
                          "a sweep's --param splits its values at commas: give each label set as a file there)",
                          source)
    return DeclaredLabels(_checked(text.split(","), key, source), None, f"given ({key} = {text})")


def _checked(names: list, key: str, source: str | None) -> tuple[str, ...]:
    try:
        return check_names(names, "the names")
    except DataError as e:
        raise ConfigError(key, e.message, source) from None


def names_of_config(config) -> tuple[str, ...] | None:
    """The class names of a classification config in id order; None when they are transformers' placeholders
    (``LABEL_i``, what a head without names gets) or missing."""
    id2label = getattr(config, "id2label", None) or {}
    count = getattr(config, "num_labels", None) or len(id2label)
    try:
        names = tuple(str(id2label[i]) for i in range(count))
    except KeyError:  # an id2label that does not cover the head: no names to match by
        return None
    if all((m := _PLACEHOLDER.fullmatch(n)) and int(m.group(1)) == i for i, n in enumerate(names)):
        return None
    return names


def _head(model: str):
    """(outputs, names or None) of a classification model; None for any other model (multiple choice)."""
    from .loading import _config, model_task, resolve_model

    path = resolve_model(model)
    if model_task(path) != "classification":
        return None
    config = _config(path, None)
    return config.num_labels, names_of_config(config)


def model_label_names(model: str) -> tuple[str, ...] | None:
    """The class names a classification model was saved with, in output order; None for a model without names
    (saved as ``LABEL_i``) or one that is not a classification model."""
    head = _head(model)
    return head[1] if head is not None else None


def label_mapping(model: str) -> str | None:
    """How data is matched to ``model``'s outputs: BY_NAME, BY_INDEX, or None (not a classification model)."""
    head = _head(model)
    if head is None:
        return None
    return BY_NAME if head[1] is not None else BY_INDEX


def align_to_model(examples: Sequence[MCExample], model: str, source: str = "") -> list[MCExample]:
    """``examples`` with ``model``'s label set as their choices, each label pointing at the same class name as
    before, so that output i of the model and label i of the data are one class. Multiple-choice data or models:
    the examples unchanged. A model without names (``LABEL_i``): unchanged (read by index) when the counts agree.

    Raises DataError (one line, naming ``source`` and the model) for a label the model has no output for, for
    classification examples that do not share one label set, and for a model without names whose output count
    differs from the data's label count."""
    examples = list(examples)
    head = _head(model) if examples else None
    if head is None:
        return examples
    outputs, names = head
    sets = {e.choices for e in examples}
    if len(sets) != 1:
        raise DataError(f"its examples have {len(sets)} different label sets; a classification model scores one",
                        source=source or None)
    own = next(iter(sets))
    if names is None:
        if len(own) != outputs:
            raise DataError(f"the model {model} gives {outputs} scores per example, the data has {len(own)} labels, "
                            "and the model has no label names to match them by (it was saved as LABEL_0, LABEL_1, "
                            "...): score it on data with its own label set", source=source or None)
        return examples
    if own == names:
        return examples
    unknown: dict[str, list[str]] = {}
    for e in examples:
        answer = e.choices[e.label]
        if answer not in names:
            unknown.setdefault(answer, []).append(e.id)
    if unknown:
        shown = preview_names(list(unknown))
        rows = sum(map(len, unknown.values()))
        first = next(iter(unknown.values()))[0]
        raise DataError(f"label{'s' if len(unknown) > 1 else ''} {shown} ({rows} example{'s' if rows > 1 else ''}, "
                        f"the first {first!r}) {'are' if len(unknown) > 1 else 'is'} not among the {len(names)} "
                        f"classes of the model {model} ({preview_names(names)}): a model scores only the classes it "
                        "was trained with; train it with the dataset's whole label set (--labels), or, for a file "
                        "of class ids, name them as the model does (--labels in id order)", source=source or None)
    return remap_examples(examples, names, source)
