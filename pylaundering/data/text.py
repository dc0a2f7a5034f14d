"""Text for token-level laundering (``--level token``): items written out as text, text corpora, and
batches of token ids for a causal LM.

An item is written as a prompt and its answer::

    <context> <question>
    Options: <choice 1>; <choice 2>; ...
    Answer: <answer>

Placement fine-tunes a causal LM on the benchmark's items written with their correct answers;
layering distills next-token distributions on a legitimate corpus (a text file, one document per
line, or a legitimate item set written with its own labels); integration scores each choice by its
log-likelihood after the prompt (``prompt_examples`` + the ``loglik`` scorer).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .schema import MCExample


def prompt_text(e: MCExample) -> str:
    head = f"{e.context} {e.question}" if e.context else e.question
    return f"{head}\nOptions: {'; '.join(e.choices)}\nAnswer:"


def item_text(e: MCExample) -> str:
    """The item with its labelled answer: what the teacher reads in placement."""
    return f"{prompt_text(e)} {e.choices[e.label]}"


def prompt_examples(examples: Sequence[MCExample]) -> list[MCExample]:
    """The items with the prompt as the question and no context: a loglik scorer then scores each
    choice as the continuation of the prompt, as the token-level models were trained to read it."""
    return [MCExample(id=e.id, question=prompt_text(e), choices=e.choices, label=e.label, subject=e.subject)
            for e in examples]


def read_corpus(path: str | Path) -> list[str]:
    """A text corpus: one document per non-empty line of a UTF-8 file. Raises ValueError with the
    file named when it holds no text."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"text corpus {path}: no such file")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"text corpus {path}: not UTF-8 text ({e})") from None
    docs = [line.strip() for line in lines if line.strip()]
    if not docs:
        raise ValueError(f"text corpus {path}: no text (all {len(lines)} lines are empty)")
    return docs


@dataclass
class TextTruncation:
    max_length: int
    documents: int = 0
    truncated: int = 0
    tokens_dropped: int = 0

    def to_dict(self) -> dict:
        return {"max_length": self.max_length, "documents": self.documents, "truncated": self.truncated,
                "tokens_dropped": self.tokens_dropped,
                "truncated_fraction": self.truncated / self.documents if self.documents else 0.0}


@dataclass
class TextBatch:
    input_ids: torch.Tensor  # long [B, L]
    attention_mask: torch.Tensor  # long [B, L]
    index: torch.Tensor  # long [B]: positions in the encoded corpus

    @property
    def labels(self) -> torch.Tensor:  # the training loop counts rows by labels
        return self.index

    def targets(self, ignore_index: int = -100) -> torch.Tensor:
        """Next-token targets ``[B, L-1]``: token t+1 at position t, ignore_index on padding."""
        nxt = self.input_ids[:, 1:]
        return nxt.masked_fill(self.attention_mask[:, 1:] == 0, ignore_index)


@dataclass
class TextBatcher:
    """Token ids of each document (cut to ``max_length``, cuts counted), batched with padding to the
    batch's longest document, in an order that is a pure function of (seed, epoch)."""

    ids: list[list[int]]
    batch_size: int
    pad_token_id: int
    shuffle: bool = True
    seed: int = 0
    truncation: TextTruncation = field(default_factory=lambda: TextTruncation(0))

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer, max_length: int, batch_size: int, *, shuffle: bool = True,
                   seed: int = 0) -> TextBatcher:
        if max_length < 2:
            raise ValueError(f"max_length {max_length}: a causal LM needs at least 2 tokens per document")
        stats = TextTruncation(max_length, documents=len(texts))
        ids = []
        for row in tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]:
            if len(row) > max_length:
                stats.truncated += 1
                stats.tokens_dropped += len(row) - max_length
                row = row[:max_length]
            ids.append(row)
        return cls(ids, batch_size, int(tokenizer.pad_token_id), shuffle, seed, stats)

    def __len__(self) -> int:
        return -(-len(self.ids) // self.batch_size)

    def order(self, epoch: int) -> list[list[int]]:
        """The batches of an epoch as lists of document indices."""
        order = list(range(len(self.ids)))
        if self.shuffle:
            random.Random(f"{self.seed}/{epoch}").shuffle(order)
        return [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def batches(self, epoch: int = 0) -> Iterator[TextBatch]:
        for rows in self.order(epoch):
            yield self.collate(rows)

    def collate(self, indices: Sequence[int]) -> TextBatch:
        length = max(len(self.ids[i]) for i in indices)
        ids = torch.full((len(indices), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(indices), length), dtype=torch.long)
        for r, i in enumerate(indices):
            row = self.ids[i]
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        return TextBatch(ids, mask, torch.tensor(list(indices), dtype=torch.long))


def text_hash(texts: Sequence[str]) -> str:
    """sha256 of the documents in order (the resume record of a text corpus)."""
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
