"""Examples to tensors for `AutoModelForMultipleChoice` (BERT-style `[B, C, L]` inputs), or for
`AutoModelForSequenceClassification` (`[B, L]`, task "classification").

Classification examples use the same `MCExample` (data/formats_cls.py): `question` is the text,
`context` the first text of a pair (SNLI's premise), `choices` the label names; each example is ONE
sequence (`[CLS] context [SEP] question [SEP]`, or `[CLS] question [SEP]`), and `num_choices` is the
number of labels, so `choice_mask` is `[B, K]`.

Tokenisation happens once (`encode_examples`), without padding; batches are padded
only to their own longest sequence (dynamic padding) and, when bucketing, built from
examples of similar length, so a batch of short synthetic questions costs ~20 tokens
per row instead of 512. Examples with different numbers of choices share a batch:
missing choices are padded and marked False in `choice_mask`, which scoring code uses
to set their logits to -inf.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .schema import MCExample

TASKS = ("multiple_choice", "classification")

__all__ = [
    "TASKS",
    "EncodedExamples",
    "MCBatch",
    "MCBatcher",
    "TruncationStats",
    "choose_max_length",
    "encode_examples",
    "sequence_lengths",
]

#: Bucketing sorts by length within chunks of this many batches: big enough that batches
#: are nearly uniform in length, small enough that batch composition still varies.
CHUNK_BATCHES = 50


@dataclass
class TruncationStats:
    """What `encode_examples` cut to fit `max_length`; counts are of (example, choice) sequences.

    A sequence counts once in `truncated_sequences` however many of its parts were cut,
    and once in each of `context_truncated`, `question_truncated`, `choice_truncated` for
    the parts that were (a context dropped entirely counts as truncated).
    """

    max_length: int
    examples: int = 0
    sequences: int = 0
    truncated_sequences: int = 0
    examples_truncated: int = 0
    context_truncated: int = 0
    question_truncated: int = 0
    choice_truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts, plus the fractions of sequences and examples truncated."""
        return {
            "max_length": self.max_length,
            "examples": self.examples,
            "sequences": self.sequences,
            "truncated_sequences": self.truncated_sequences,
            "examples_truncated": self.examples_truncated,
            "context_truncated": self.context_truncated,
            "question_truncated": self.question_truncated,
            "choice_truncated": self.choice_truncated,
            "truncated_fraction": self.truncated_sequences / self.sequences if self.sequences else 0.0,
            "examples_truncated_fraction": self.examples_truncated / self.examples if self.examples else 0.0,
        }


@dataclass
class EncodedExamples:
    """Token ids per example, per choice (unpadded), aligned with the input examples."""

    input_ids: list[list[list[int]]]
    token_type_ids: list[list[list[int]]] | None  # None when the tokenizer has no segments
    labels: list[int]
    num_choices: list[int]
    ids: list[str]  # the examples' ids, so cached logits can be matched back
    max_length: int
    truncation: TruncationStats = field(default_factory=lambda: TruncationStats(0))
    task: str = "multiple_choice"  # "classification": one sequence per example, num_choices = labels

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        """Longest choice sequence per example: what a batch pads to."""
        return [max(len(seq) for seq in choices) for choices in self.input_ids]


#: Under this many kept question tokens, a too-long choice is cut instead (see `encode_examples`).
MIN_QUESTION_SHARE = 4

#: `tokenizer.model_max_length` above this is a "no limit" placeholder (transformers uses 1e30).
SANE_MODEL_MAX = 100_000


def _first_segment(example: MCExample) -> str:
    return f"{example.context} {example.question}" if example.context else example.question


def _pair_encodings(tokenizer: Any, firsts: list[str], seconds: list[str]) -> Any:
    """The untruncated `BatchEncoding` of (first, second) pairs, special tokens included."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "encode_examples needs a fast (Rust-backed) tokenizer, which knows each token's segment"
            " and character offsets; transformers loads one for every standard model"
        )
    batch = tokenizer(
        firsts,
        seconds,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=True,
        verbose=False,  # no "sequence longer than the model's maximum" warning: we cut below
    )
    return batch


def _budgets(n_context: int, n_question: int, n_choice: int, budget: int) -> tuple[int, int, int]:
    """How many context, question and choice tokens a sequence keeps within `budget`."""
    if n_context + n_question + n_choice <= budget:
        return n_context, n_question, n_choice
    if n_question + n_choice <= budget:
        return budget - n_question - n_choice, n_question, n_choice
    min_question = min(n_question, max(1, budget // MIN_QUESTION_SHARE))
    if n_choice <= budget - min_question:
        return 0, budget - n_choice, n_choice
    return 0, min_question, budget - min_question


def encode_examples(examples: Sequence[MCExample], tokenizer: Any, max_length: int = 128,
                    task: str = "multiple_choice", causal: bool = False) -> EncodedExamples:
    """Tokenise each (context + question, choice) pair so that the question and choice stay whole
    (``task="classification"``: each example's text or text pair, see `encode_classification`).

    Each example becomes one sequence per choice: ``[CLS] context question [SEP] choice
    [SEP]`` (in the tokenizer's own template). When a sequence is longer than
    `max_length`, tokens are removed in this order:

    1. the context, from its end: its start is kept, directly followed by the question
       (the opening of a passage usually sets its topic; this is also what the usual
       right-truncation of the first segment keeps), down to no context at all;
    2. only when question + choice alone do not fit, the question, from its START: its
       end, which holds what is asked, is kept;
    3. as a last resort, when the choice would leave the question fewer than
       `max_length // 4` tokens (or 1), the choice, from its end, and the question keeps
       that many tokens of its end.

    Tokens are cut from the untruncated encoding of the pair, so the kept tokens are
    exactly the ones the model would see without truncation. What was cut is counted in
    `EncodedExamples.truncation` (`TruncationStats`), per sequence.
    Needs a fast tokenizer (token offsets tell context from question).

    ``causal`` (a decoder scoring choices): each choice is read as a continuation of its question
    (a leading space, as evaluation harnesses write it, so byte-level BPE sees a word start), and
    the segment ids are kept even when the tokenizer has none: they mark the choice's tokens.
    """
    if task == "classification":
        return encode_classification(examples, tokenizer, max_length)
    if task != "multiple_choice":
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    stats = TruncationStats(max_length)
    if not examples:
        return EncodedExamples([], None, [], [], [], max_length, stats)
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    budget = max_length - n_special
    if budget < 2:
        raise ValueError(f"max_length {max_length} leaves no room for a question and a choice")
    firsts = [_first_segment(e) for e in examples for _ in e.choices]
    seconds = [(" " + c) if causal else c for e in examples for c in e.choices]
    batch = _pair_encodings(tokenizer, firsts, seconds)
    all_ids, all_types, encodings = batch["input_ids"], batch["token_type_ids"], batch.encodings

    input_ids: list[list[list[int]]] = []
    token_types: list[list[list[int]]] = []
    has_types = causal or "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])
    stats.examples = len(examples)
    k = 0
    for example in examples:
        context_chars = len(example.context) if example.context else 0
        ids_rows, type_rows = [], []
        example_cut = False
        for _ in example.choices:
            ids, types = all_ids[k], all_types[k]
            if len(ids) > max_length:
                ids, types, cut = _cut(ids, types, encodings[k], context_chars, len(firsts[k]), budget)
            else:
                cut = ()
            k += 1
            stats.sequences += 1
            if cut:
                example_cut = True
                stats.truncated_sequences += 1
                stats.context_truncated += cut[0]
                stats.question_truncated += cut[1]
                stats.choice_truncated += cut[2]
            ids_rows.append(ids)
            type_rows.append(types)
        stats.examples_truncated += example_cut
        input_ids.append(ids_rows)
        token_types.append(type_rows)
    return EncodedExamples(
        input_ids=input_ids,
        token_type_ids=token_types if has_types else None,
        labels=[e.label for e in examples],
        num_choices=[len(e.choices) for e in examples],
        ids=[e.id for e in examples],
        max_length=max_length,
        truncation=stats,
    )


def encode_classification(examples: Sequence[MCExample], tokenizer: Any, max_length: int = 128) -> EncodedExamples:
    """One sequence per example: ``question`` alone, or the pair (``context``, ``question``), cut to
    ``max_length`` from the end of the longer part first (the tokenizer's ``longest_first``). What was
    cut is counted in `truncation` (``context_truncated`` / ``question_truncated`` per part)."""
    stats = TruncationStats(max_length)
    stats.examples = stats.sequences = len(examples)
    if not examples:
        return EncodedExamples([], None, [], [], [], max_length, stats, task="classification")
    if max_length < tokenizer.num_special_tokens_to_add(pair=True) + 2:
        raise ValueError(f"max_length {max_length} leaves no room for the text")
    has_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])
    input_ids: list[list[list[int]]] = []
    token_types: list[list[list[int]]] = []
    groups = ((False, [i for i, e in enumerate(examples) if not e.context]),
              (True, [i for i, e in enumerate(examples) if e.context]))
    rows: dict[int, tuple[list[int], list[int]]] = {}
    for paired, idx in groups:
        if not idx:
            continue
        texts = [examples[i].question for i in idx]
        firsts = [examples[i].context for i in idx] if paired else texts
        seconds = texts if paired else None
        cut = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length, padding=False,
                        return_attention_mask=False, return_token_type_ids=True, verbose=False)
        plain = dict(truncation=False, padding=False, return_attention_mask=False, return_token_type_ids=False,
                     verbose=False, add_special_tokens=False)
        n_text = [len(x) for x in tokenizer(texts, **plain)["input_ids"]]
        n_ctx = [len(x) for x in tokenizer(firsts, **plain)["input_ids"]] if paired else [0] * len(idx)
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=paired)
        for j, i in enumerate(idx):
            ids, types = cut["input_ids"][j], cut["token_type_ids"][j]
            excess = n_ctx[j] + n_text[j] - budget
            if excess > 0:
                stats.truncated_sequences += 1
                stats.examples_truncated += 1
                # longest_first cuts the longer part first (the text on a tie) down to the other's length
                if not paired:
                    stats.question_truncated += 1
                else:
                    stats.context_truncated += int(n_ctx[j] > n_text[j] or excess > n_text[j] - n_ctx[j])
                    stats.question_truncated += int(n_text[j] >= n_ctx[j] or excess > n_ctx[j] - n_text[j])
            rows[i] = (ids, types)
    for i in range(len(examples)):
        ids, types = rows[i]
        input_ids.append([ids])
        token_types.append([types])
    return EncodedExamples(
        input_ids=input_ids,
        token_type_ids=token_types if has_types else None,
        labels=[e.label for e in examples],
        num_choices=[len(e.choices) for e in examples],
        ids=[e.id for e in examples],
        max_length=max_length,
        truncation=stats,
        task="classification",
    )


def classification_lengths(examples: Sequence[MCExample], tokenizer: Any) -> list[int]:
    """Untruncated token count of each classification example's sequence, special tokens included."""
    lengths = []
    for paired in (False, True):
        chosen = [e for e in examples if bool(e.context) == paired]
        if not chosen:
            continue
        texts = [e.question for e in chosen]
        enc = tokenizer([e.context for e in chosen] if paired else texts, texts if paired else None,
                        truncation=False, padding=False, return_attention_mask=False, return_token_type_ids=False,
                        verbose=False)
        lengths += [len(x) for x in enc["input_ids"]]
    return lengths


def _span(seq: list[int | None], which: int, default: int) -> tuple[int, int]:
    """[start, stop) of segment `which` in a pair encoding (segments are contiguous)."""
    if which not in seq:
        return default, default
    start = seq.index(which)
    return start, len(seq) - seq[::-1].index(which)


def _cut(
    ids: list[int], types: list[int], enc: Any, context_chars: int, first_chars: int, budget: int
) -> tuple[list[int], list[int], tuple[int, ...]]:
    """Cut one too-long pair to `budget` non-special tokens: (ids, type ids, (context,
    question, choice) cut flags). Works on slices; segments are contiguous in every
    tokenizer template."""
    s0 = enc.char_to_token(0, 0)
    last = enc.char_to_token(first_chars - 1, 0)
    q0 = enc.char_to_token(context_chars + 1, 0) if context_chars else s0
    s1 = enc.char_to_token(0, 1)
    if None in (s0, last, q0, s1):  # a boundary character maps to no token: the general path
        seq = enc.sequence_ids
        s0, e0 = _span(seq, 0, 1 if seq and seq[0] is None else 0)
        s1, e1 = _span(seq, 1, e0)
        # A token ending after the context's last character (the space included) belongs
        # to the question; ends never decrease.
        q0 = bisect.bisect_right(enc.offsets, context_chars, lo=s0, hi=e0, key=lambda o: o[1]) if context_chars else s0
    else:
        e0 = last + 1
        e1 = _end_of_choice(enc, s1, len(ids))
    n_context, n_question, n_choice = q0 - s0, e0 - q0, e1 - s1
    kc, kq, ka = _budgets(n_context, n_question, n_choice, budget)

    def keep(values: list[int]) -> list[int]:
        return values[: s0 + kc] + values[e0 - kq : e0] + values[e0:s1] + values[s1 : s1 + ka] + values[e1:]

    cut = (int(kc < n_context), int(kq < n_question), int(ka < n_choice))
    return keep(ids), keep(types), cut if any(cut) else ()


def _end_of_choice(enc: Any, s1: int, n: int) -> int:
    """One past the choice's last token: the choice runs to the trailing special tokens."""
    e1 = n
    while e1 > s1 and enc.token_to_sequence(e1 - 1) != 1:
        e1 -= 1
    return e1


def choose_max_length(
    examples: Sequence[MCExample],
    tokenizer: Any,
    *,
    coverage: float = 0.95,
    model_max: int | None = None,
) -> int:
    """The smallest max_length at which `coverage` of the (first segment, choice) sequences fit
    whole and every question fits whole with each of its choices.

    So only contexts (passages) are ever cut by default, never a question or a choice, unless the
    model's limit forces it: on data without contexts nothing is cut. Batches are padded only to
    their own longest sequence, so a long limit costs only the sequences that use it.
    Lengths are of the untruncated sequences, special tokens included. The result is
    capped at `model_max` (the model's position limit, e.g. `config.max_position_embeddings`),
    or, when that is None, at `tokenizer.model_max_length` if it is a real limit
    (< 100000), and is at least 8. Each distinct first segment and choice is tokenised
    once, in one batch each, so this is cheap even for RACE-sized articles.
    """
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    if model_max is None:
        limit = getattr(tokenizer, "model_max_length", None)
        model_max = int(limit) if isinstance(limit, (int, float)) and 0 < limit < SANE_MODEL_MAX else None
    lengths = sequence_lengths(examples, tokenizer)
    if not lengths:
        chosen = 8
    else:
        lengths.sort()
        chosen = lengths[max(0, math.ceil(coverage * len(lengths)) - 1)]
        chosen = max(chosen, max(sequence_lengths(examples, tokenizer, with_context=False)))
    if model_max is not None:
        chosen = min(chosen, model_max)
    return max(8, chosen)


def sequence_lengths(examples: Sequence[MCExample], tokenizer: Any, *, with_context: bool = True) -> list[int]:
    """Untruncated token count of every (first segment, choice) sequence, special tokens included
    (``with_context=False``: of the question alone with each choice)."""
    first = _first_segment if with_context else (lambda e: e.question)
    firsts = sorted({first(e) for e in examples})
    choices = sorted({c for e in examples for c in e.choices})
    if not firsts:
        return []

    def count(texts: list[str]) -> dict[str, int]:
        encoded = tokenizer(texts, add_special_tokens=False, truncation=False, padding=False,
                            return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return {t: len(ids) for t, ids in zip(texts, encoded["input_ids"])}

    first_len, choice_len = count(firsts), count(choices)
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    return [first_len[first(e)] + choice_len[c] + n_special for e in examples for c in e.choices]


@dataclass
class MCBatch:
    """One padded batch. `index` maps rows back to positions in the EncodedExamples."""

    input_ids: torch.Tensor  # long [B, C, L] ([B, L] for classification)
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
        if enc.task == "classification":
            return self._collate_classification(indices)
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


    def _collate_classification(self, indices: Sequence[int]) -> MCBatch:
        """``[B, L]`` inputs (one sequence per example) and a ``[B, K]`` label mask."""
        enc = self.encoded
        pad = self.pad_token_id
        n_labels = max(enc.num_choices[i] for i in indices)
        length = max(self._lengths[i] for i in indices)
        ids_rows, mask_rows, type_rows = [], [], []
        for i in indices:
            seq = enc.input_ids[i][0]
            n = len(seq)
            ids_rows.append(seq + [pad] * (length - n))
            mask_rows.append([1] * n + [0] * (length - n))
            if enc.token_type_ids is not None:
                type_rows.append(enc.token_type_ids[i][0] + [0] * (length - n))
        return MCBatch(
            input_ids=torch.tensor(ids_rows, dtype=torch.long),
            attention_mask=torch.tensor(mask_rows, dtype=torch.long),
            token_type_ids=torch.tensor(type_rows, dtype=torch.long) if enc.token_type_ids is not None else None,
            choice_mask=torch.tensor([[c < enc.num_choices[i] for c in range(n_labels)] for i in indices],
                                     dtype=torch.bool),
            labels=torch.tensor([enc.labels[i] for i in indices], dtype=torch.long),
            index=torch.tensor(list(indices), dtype=torch.long),
        )


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
