"""Benchmark and corpus adapters -> one `MCExample` schema -> tokenised, padded batches.

Modules by job: `registry` (`register_format`, `FORMATS`), `formats_mc` / `formats_cls` (the
converters), `fields` (their cell helpers), `readers` (local files), `layouts` (folders of split
files, TweetEval's text and label files), `hub` (hub datasets and repository folders), `infer`
(format inference), `conventions` (declared label sets, 1-based ids), `load` (`load_examples`),
`labelset` (`shared_label_set`: one label set across a command's loads).

The batching names are resolved lazily (PEP 562) so that loading, validating or
generating data does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DataError
from . import formats_cls, formats_mc  # noqa: F401  (register the formats)
from .hub import hub_offline_reason
from .labelset import SharedLabels, shared_label_set
from .load import LoadResult, load_examples, parse_source
from .overlap import find_overlap, normalise_text
from .registry import FORMATS, ROLES, Adapter, RowContext, register_format
from .schema import MCExample, atomic_write_text, examples_hash, write_jsonl
from .synth import make_synthetic, write_synthetic

if TYPE_CHECKING:
    from .batching import (  # noqa: F401 - re-exported lazily: _BATCHING, __all__ and __getattr__ below
        EncodedExamples,
        MCBatch,
        MCBatcher,
        TruncationStats,
        choose_max_length,
        encode_examples,
        sequence_lengths,
    )

_BATCHING = (
    "EncodedExamples",
    "MCBatch",
    "MCBatcher",
    "TruncationStats",
    "choose_max_length",
    "encode_examples",
    "sequence_lengths",
)

__all__ = [
    "FORMATS",
    "ROLES",
    "Adapter",
    "DataError",
    "LoadResult",
    "MCExample",
    "RowContext",
    "SharedLabels",
    "atomic_write_text",
    "examples_hash",
    "find_overlap",
    "hub_offline_reason",
    "load_examples",
    "make_synthetic",
    "normalise_text",
    "parse_source",
    "register_format",
    "shared_label_set",
    "write_jsonl",
    "write_synthetic",
    *_BATCHING,
]


def __getattr__(name: str) -> Any:
    if name in _BATCHING:
        from . import batching

        return getattr(batching, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
