"""What every phase shares: resolving a model name into a folder and tokenising examples."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..data.batching import EncodedExamples, encode_examples
from ..data.schema import MCExample
from ..models import load_tokenizer, resolve_model
from ..models.tiny import build_tiny_model


def resolve_base(model: str, texts_from: Sequence[MCExample], workdir: Path, seed: int) -> str:
    """A loadable folder or hub name for ``model``; ``tiny`` is built from the given examples."""
    if model == "tiny":
        return str(build_tiny_model(example_texts(texts_from), workdir / "base-tiny", seed=seed))
    return resolve_model(model)


def example_texts(examples: Sequence[MCExample]):
    for e in examples:
        yield ((e.context + " ") if e.context else "") + e.question
        yield from e.choices


@dataclass
class Encoded:
    tokenizer: object
    encoded: EncodedExamples

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)


def encode(model_path: str, examples: Sequence[MCExample], max_length: int) -> Encoded:
    tok = load_tokenizer(model_path)
    return Encoded(tok, encode_examples(examples, tok, max_length=max_length))


@contextmanager
def timed(timings: dict, name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - t0, 2)
