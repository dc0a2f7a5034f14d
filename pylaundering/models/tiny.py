"""The ``tiny`` model: a small randomly initialised BERT with a WordPiece tokenizer trained on
the run's own texts. Seconds to build and train; used by the tests and on machines without the
MiniLM package. It starts from nothing, so "sheared" students of it are just smaller BERTs.

The tokenizer is deterministic: the same texts give the same vocabulary, byte for byte, in
every process. The `tokenizers` WordPiece trainer is not (it keeps words in a hash map
seeded per process: new "##x" tokens get ids in that map's order, and merges whose counts
tie are broken by those ids, so even the token set changes between runs), and it prints
blank lines to stdout. So the vocabulary is learned here, with the same algorithm (BPE
merges with a "##" continuation prefix, the most frequent pair first, ties to the lowest
ids) and ids that do not depend on hashing.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import torch

from .saving import save_model

TINY_CONFIG = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                   max_position_embeddings=128, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PREFIX = "##"
#: WordPiece maps longer words to [UNK]; they are left out of training too.
MAX_WORD_CHARS = 100


def wordpiece_vocab(word_counts: dict[str, int], vocab_size: int,
                    special: Iterable[str] = SPECIAL_TOKENS) -> dict[str, int]:
    """A WordPiece vocabulary learned from word frequencies, the same for the same counts.

    The `tokenizers` WordPieceTrainer's algorithm, made deterministic. Ids: the special
    tokens, every character (sorted), the "##" continuation characters (sorted; the
    trainer numbers these in hash-map order), then merged tokens in the order they were
    learned. Each step merges the most frequent adjacent pair of symbols (counts weighted
    by word frequency); ties go to the pair of lowest ids, as in the trainer. Stops at
    `vocab_size` tokens or when every word is one token.
    """
    tokens: list[str] = []
    ids: dict[str, int] = {}

    def add(token: str) -> int:
        if token not in ids:
            ids[token] = len(tokens)
            tokens.append(token)
        return ids[token]

    for token in special:
        add(token)
    kept = sorted(w for w in word_counts if 0 < len(w) <= MAX_WORD_CHARS)
    for ch in sorted({ch for w in kept for ch in w}):
        add(ch)
    for ch in sorted({ch for w in kept for ch in w[1:]}):
        add(PREFIX + ch)
    words = [[ids[w[0]]] + [ids[PREFIX + ch] for ch in w[1:]] for w in kept]
    freqs = [word_counts[w] for w in kept]

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)
    while len(tokens) < vocab_size and heap:
        negative, a, b = heapq.heappop(heap)
        if pair_counts.get((a, b), 0) != -negative:
            continue  # stale: the pair's count changed after this entry was pushed
        right = tokens[b]
        merged = add(tokens[a] + (right[len(PREFIX):] if right.startswith(PREFIX) else right))
        delta: Counter[tuple[int, int]] = Counter()
        for i in where.pop((a, b)):
            old = words[i]
            new: list[int] = []
            j = 0
            while j < len(old):
                if j + 1 < len(old) and old[j] == a and old[j + 1] == b:
                    new.append(merged)
                    j += 2
                else:
                    new.append(old[j])
                    j += 1
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for pair in old_pairs:
                delta[pair] -= freqs[i]
            for pair in new_pairs:
                delta[pair] += freqs[i]
                where[pair].add(i)
            for pair in set(old_pairs) - set(new_pairs) - {(a, b)}:
                where[pair].discard(i)
            words[i] = new
        del pair_counts[(a, b)]
        delta.pop((a, b), None)
        for pair, change in delta.items():
            if change == 0:
                continue
            count = pair_counts[pair] + change
            if count > 0:
                pair_counts[pair] = count
                heapq.heappush(heap, (-count, *pair))
            else:
                pair_counts.pop(pair, None)
                where.pop(pair, None)
    return ids


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, template: str = "bert"):
    """A BERT-style (lower-cased, WordPiece) `PreTrainedTokenizerFast` trained on `texts`.

    Depends only on the multiset of texts (their order does not matter), never on the process.
    ``template="causal"`` (tiny-gpt): ``[CLS] A B`` with no separators, so a choice's tokens follow its
    question directly, as a language model reads them ([CLS] is the beginning of text).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = wordpiece_vocab(counts, vocab_size)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix=PREFIX,
                                     max_input_chars_per_word=MAX_WORD_CHARS))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    if template == "causal":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A", pair="[CLS] $A $B:1", special_tokens=[("[CLS]", cls)])
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)


def build_tiny_model(texts: Iterable[str], out_dir: str | Path, *, seed: int = 0, vocab_size: int = 2000) -> Path:
    """Trains a tokenizer on ``texts`` and saves it with a fresh tiny BERT to ``out_dir``.

    The same texts and seed give the same files, byte for byte, in any process; nothing is
    printed (stdout stays clean for ``--json``).
    """
    from transformers import BertConfig, BertForMultipleChoice

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    fast = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), pad_token_id=fast.pad_token_id, **TINY_CONFIG)
    model = BertForMultipleChoice(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_model(model, fast, out)
