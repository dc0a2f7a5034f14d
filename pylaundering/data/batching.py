"""Examples to tensors for `AutoModelForMultipleChoice` (BERT-style `[B, C, L]` inputs).

Tokenisation happens once (`encode_examples`), without padding; batches are padded
only to their own longest sequence (dynamic padding) and, when bucketing, built from
examples of similar length, so a batch of short synthetic questions costs ~20 tokens
per row instead of 512. Examples with different numbers of choices share a batch:
missing choices are padded and marked False in `choice_mask`, which scoring code uses
to set their logits to -inf.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .schema import MCExample

__all__ = ["EncodedExamples", "MCBatch", "MCBatcher", "encode_examples"]

#: Bucketing sorts by length within chunks of this many batches: big enough that batches
#: are nearly uniform in length, small enough that batch composition still varies.
CHUNK_BATCHES = 50


@dataclass
class EncodedExamples:
    """Token ids per example, per choice (unpadded), aligned with the input examples."""

    input_ids: list[list[list[int]]]
    token_type_ids: list[list[list[int]]] | None  # None when the tokenizer has no segments
    labels: list[int]
    num_choices: list[int]
    ids: list[str]  # the examples' ids, so cached logits can be matched back
    max_length: int

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        """Longest choice sequence per example: what a batch pads to."""
        return [max(len(seq) for seq in choices) for choices in self.input_ids]


def _first_segment(example: MCExample) -> str:
    return f"{example.context} {example.question}" if example.context else example.question


def encode_examples(examples: Sequence[MCExample], tokenizer: Any, max_length: int = 128) -> EncodedExamples:
    """Tokenise each (context + question, choice) pair, truncating the first segment.

    "only_first" keeps every choice whole, which is what the model must compare; when
    a choice alone is too long for that, the example falls back to "longest_first".
    Fast tokenizers raise on such pairs, slow ones may just return them too long:
    both cases are caught.
    """
    if not examples:
        return EncodedExamples([], None, [], [], [], max_length)
    firsts = [_first_segment(e) for e in examples for _ in e.choices]
    seconds = [c for e in examples for c in e.choices]
    try:
        flat = _tokenize(tokenizer, firsts, seconds, max_length, "only_first")
    except Exception:  # noqa: BLE001 - tokenizers raise a bare Exception on truncation failure
        flat = None
    if flat is None or any(len(ids) > max_length for ids in flat["input_ids"]):
        flat = _tokenize_each(tokenizer, examples, max_length)

    input_ids: list[list[list[int]]] = []
    token_types: list[list[list[int]]] | None = [] if "token_type_ids" in flat else None
    start = 0
    for example in examples:
        stop = start + len(example.choices)
        input_ids.append([list(ids) for ids in flat["input_ids"][start:stop]])
        if token_types is not None:
            token_types.append([list(ids) for ids in flat["token_type_ids"][start:stop]])
        start = stop
    return EncodedExamples(
        input_ids=input_ids,
        token_type_ids=token_types,
        labels=[e.label for e in examples],
        num_choices=[len(e.choices) for e in examples],
        ids=[e.id for e in examples],
        max_length=max_length,
    )


def _tokenize(tokenizer: Any, firsts: list[str], seconds: list[str], max_length: int, strategy: str) -> dict:
    encoded = tokenizer(
        firsts,
        seconds,
        truncation=strategy,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
    )
    return dict(encoded)


def _tokenize_each(tokenizer: Any, examples: Sequence[MCExample], max_length: int) -> dict:
    """The per-example fallback: only examples whose choices do not fit use longest_first."""
    merged: dict[str, list] = {}
    for example in examples:
        firsts = [_first_segment(example)] * len(example.choices)
        seconds = list(example.choices)
        try:
            part = _tokenize(tokenizer, firsts, seconds, max_length, "only_first")
            fits = all(len(ids) <= max_length for ids in part["input_ids"])
        except Exception:  # noqa: BLE001 - see encode_examples
            fits = False
        if not fits:
            part = _tokenize(tokenizer, firsts, seconds, max_length, "longest_first")
        for key, value in part.items():
            merged.setdefault(key, []).extend(value)
    return merged


@dataclass
class MCBatch:
    """One padded batch. `index` maps rows back to positions in the EncodedExamples."""

    input_ids: torch.Tensor  # long [B, C, L]
    attention_mask: torch.Tensor  # long [B, C, L]
    token_type_ids: torch.Tensor | None  # long [B, C, L]
    choice_mask: torch.Tensor  # bool [B, C]; False for padding choices
    labels: torch.Tensor  # long [B]
    index: torch.Tensor  # long [B]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MCBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return MCBatch(
            input_ids=move(self.input_ids),
            attention_mask=move(self.attention_mask),
            token_type_ids=move(self.token_type_ids),
            choice_mask=move(self.choice_mask),
            labels=move(self.labels),
            index=move(self.index),
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for a HF multiple-choice model's forward."""
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids
        return inputs


class MCBatcher:
    """Yields padded `MCBatch`es over encoded examples, reproducibly per (seed, epoch).

    Orders:
    * shuffle and bucket: shuffle, cut into chunks of CHUNK_BATCHES batches, sort each
      chunk by length, cut into batches, shuffle the batch order;
    * shuffle only: shuffle, cut into batches;
    * bucket only (evaluation): sort by length (stable), cut into batches;
    * neither: input order.
    Every example appears exactly once per epoch; only the last batch may be short
    (the last of each chunk when bucketing).
    """

    def __init__(
        self,
        encoded: EncodedExamples,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        bucket: bool = True,
        pad_token_id: int,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoded = encoded
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket = bucket
        self.pad_token_id = pad_token_id
        self._lengths = encoded.lengths()

    def __len__(self) -> int:
        if not self.shuffle or not self.bucket:
            return math.ceil(len(self.encoded) / self.batch_size)
        chunk = CHUNK_BATCHES * self.batch_size
        return sum(math.ceil(len(c) / self.batch_size) for c in _chunks(range(len(self.encoded)), chunk))

    def order(self, epoch: int) -> list[list[int]]:
        """The batches of an epoch as lists of example indices."""
        indices = list(range(len(self.encoded)))
        if not self.shuffle:
            if self.bucket:
                indices.sort(key=self._lengths.__getitem__)
            return _chunks(indices, self.batch_size)
        # A string seed is hashed (sha512) by `random`: (seed, epoch) pairs never collide,
        # unlike seed + epoch, which would give seed 0's epoch 1 to seed 1's epoch 0.
        rng = random.Random(f"{self.seed}/{epoch}")
        rng.shuffle(indices)
        if not self.bucket:
            return _chunks(indices, self.batch_size)
        batches = []
        for chunk in _chunks(indices, CHUNK_BATCHES * self.batch_size):
            chunk.sort(key=self._lengths.__getitem__)
            batches.extend(_chunks(chunk, self.batch_size))
        rng.shuffle(batches)
        return batches

    def batches(self, epoch: int = 0) -> Iterator[MCBatch]:
        for batch in self.order(epoch):
            yield self.collate(batch)

    def collate(self, indices: Sequence[int]) -> MCBatch:
        """Pad the given examples into one batch.

        Padding choices are all-pad sequences whose first token is attended to: a fully
        masked row makes a softmax over keys 0/0 = NaN in attention implementations that
        mask with -inf, and the NaN would leak into the loss despite `choice_mask`.
        """
        enc = self.encoded
        pad = self.pad_token_id
        n_choices = max(enc.num_choices[i] for i in indices)
        length = max(self._lengths[i] for i in indices)
        ids_rows: list[list[int]] = []
        mask_rows: list[list[int]] = []
        type_rows: list[list[int]] = []
        choice_mask: list[list[bool]] = []
        for i in indices:
            seqs = enc.input_ids[i]
            types = enc.token_type_ids[i] if enc.token_type_ids is not None else None
            for c in range(n_choices):
                if c < len(seqs):
                    n = len(seqs[c])
                    ids_rows.append(seqs[c] + [pad] * (length - n))
                    mask_rows.append([1] * n + [0] * (length - n))
                    if types is not None:
                        type_rows.append(types[c] + [0] * (length - n))
                else:
                    ids_rows.append([pad] * length)
                    mask_rows.append([1] + [0] * (length - 1))
                    if types is not None:
                        type_rows.append([0] * length)
            choice_mask.append([c < len(seqs) for c in range(n_choices)])

        shape = (len(indices), n_choices, length)
        return MCBatch(
            input_ids=torch.tensor(ids_rows, dtype=torch.long).view(shape),
            attention_mask=torch.tensor(mask_rows, dtype=torch.long).view(shape),
            token_type_ids=(
                torch.tensor(type_rows, dtype=torch.long).view(shape)
                if enc.token_type_ids is not None
                else None
            ),
            choice_mask=torch.tensor(choice_mask, dtype=torch.bool),
            labels=torch.tensor([enc.labels[i] for i in indices], dtype=torch.long),
            index=torch.tensor(list(indices), dtype=torch.long),
        )


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
