"""The ``tiny`` model: a small randomly initialised BERT with a WordPiece tokenizer trained on
the run's own texts. Seconds to build and train; used by the tests and on machines without the
MiniLM package. It starts from nothing, so "sheared" students of it are just smaller BERTs."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

TINY_CONFIG = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                   max_position_embeddings=128, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def build_tiny_model(texts: Iterable[str], out_dir: str | Path, *, seed: int = 0, vocab_size: int = 2000) -> Path:
    """Trains a tokenizer on ``texts`` and saves it with a fresh tiny BERT to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMultipleChoice, PreTrainedTokenizerFast

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), pad_token_id=tok.token_to_id("[PAD]"), **TINY_CONFIG)
    model = BertForMultipleChoice(config)
    from .loading import save_model

    out.parent.mkdir(parents=True, exist_ok=True)
    return save_model(model, fast, out)
