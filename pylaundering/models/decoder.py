"""Decoder (causal) language models as multiple-choice scorers, and the offline ``tiny-gpt`` model.

A decoder scores each (question, choice) sequence in one of two ways (``--scorer``):

``head``    a sequence-classification head (one score from the last real token), as the paper's
            GPT-2 runs do: ``AutoModelForSequenceClassification`` with one output per sequence.
``loglik``  the length-normalised log-likelihood of the choice's tokens given the question, as
            evaluation harnesses score causal LMs: ``AutoModelForCausalLM``, no new parameters.

Either way the scores of an example's choices are its ``[C]`` logits, so placement, layering
(distillation on choice logits, cached or online) and integration use them unchanged.

Which scorer a saved model uses is recorded beside its weights (``pylaundering.json``), so a
teacher written by ``launder place`` is reloaded with the same scorer by ``layer`` and ``integrate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ModelError
from .saving import save_model
from .tiny import train_tokenizer

SCORERS = ("loglik", "head")
DEFAULT_SCORER = "loglik"
MARKER = "pylaundering.json"
#: Architectures that are causal LMs whatever their config says (GPT-2's config has no is_decoder).
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_CAUSAL_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "qwen2", "qwen3", "phi", "phi3",
                 "gemma", "gemma2", "opt", "bloom", "falcon", "olmo", "smollm3", "codegen"}
TINY_GPT_CONFIG = dict(n_embd=64, n_layer=4, n_head=4, n_positions=128, resid_pdrop=0.1, embd_pdrop=0.1,
                       attn_pdrop=0.1)


def read_marker(path: str | Path) -> dict:
    f = Path(path) / MARKER
    try:
        return json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}


def is_decoder_config(config) -> bool:
    """Whether a transformers config describes a causal LM (GPT-2, Llama-style, ...)."""
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(_CAUSAL_SUFFIXES) for a in archs):
        return True
    if getattr(config, "model_type", None) in _CAUSAL_TYPES:
        return True
    return bool(getattr(config, "is_decoder", False)) and not getattr(config, "is_encoder_decoder", False)


class DecoderChoiceModel(torch.nn.Module):
    """A causal LM (``loglik``) or a decoder with a one-output classification head (``head``) that
    maps ``[B, C, L]`` choice sequences to ``[B, C]`` logits, like ``AutoModelForMultipleChoice``.

    ``token_type_ids`` (1 on the choice's tokens, from the pair encoding) tell ``loglik`` which
    tokens to score; they are never passed to the LM (decoders have no segment embeddings)."""

    def __init__(self, lm: torch.nn.Module, scorer: str, level: str = "choice"):
        super().__init__()
        if scorer not in SCORERS:
            raise ValueError(f"unknown scorer {scorer!r}; expected one of {', '.join(SCORERS)}")
        self.lm = lm
        self.scorer = scorer
        self.level = level  # "token": trained on text; scored on the items' prompts (data/text.py)

    @property
    def config(self):
        return self.lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None):
        from transformers.modeling_outputs import MultipleChoiceModelOutput

        b, c, length = input_ids.shape
        ids = input_ids.reshape(b * c, length)
        mask = attention_mask.reshape(b * c, length)
        if self.scorer == "head":
            scores = self.lm(input_ids=ids, attention_mask=mask).logits.reshape(b, c)
            return MultipleChoiceModelOutput(logits=scores)
        if token_type_ids is None:
            raise ValueError("the loglik scorer needs token_type_ids marking each choice's tokens")
        logits = self.lm(input_ids=ids, attention_mask=mask).logits[:, :-1]  # predicts tokens 1..L-1
        target = ids[:, 1:]
        scored = (token_type_ids.reshape(b * c, length)[:, 1:] > 0) & (mask[:, 1:] > 0)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                              reduction="none").reshape(target.shape)
        n = scored.sum(-1)
        scores = -(nll * scored).sum(-1) / n.clamp(min=1)
        # a choice with no scored token (cut away entirely) gets no evidence: the lowest score
        scores = scores.masked_fill(n == 0, torch.finfo(scores.dtype).min / 4)
        return MultipleChoiceModelOutput(logits=scores.reshape(b, c))

    def save_pretrained(self, path, **kwargs) -> None:
        self.lm.save_pretrained(path, **kwargs)
        marker = read_marker(path)
        marker.update({"scorer": self.scorer, "task": "multiple_choice", "level": self.level})
        (Path(path) / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def ensure_pad_token(tokenizer, config=None) -> int:
    """The tokenizer's pad id; a decoder tokenizer without one (GPT-2) pads with its end-of-text token.
    Raises ModelError when it has neither."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ModelError("the tokenizer has no pad token and no end-of-text token to pad with; "
                             "add a pad token to the tokenizer (tokenizer.add_special_tokens) and save it")
        tokenizer.pad_token = tokenizer.eos_token
    if config is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    return int(tokenizer.pad_token_id)


def build_tiny_gpt(texts: Iterable[str], out_dir: str | Path, *, seed: int = 0, vocab_size: int = 2000) -> Path:
    """Trains a tokenizer on ``texts`` and saves it with a fresh tiny GPT-2 (4 layers, width 64) to
    ``out_dir``: the offline decoder, as ``tiny`` is the offline encoder. Deterministic like ``tiny``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    # the scaffold of items written as text (data/text.py), so token-level prompts have no [UNK] in them
    fast = train_tokenizer([*texts, "Options: a; b\nAnswer: a"], vocab_size, template="causal")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(fast), pad_token_id=fast.pad_token_id, bos_token_id=fast.cls_token_id,
                        eos_token_id=fast.sep_token_id, **TINY_GPT_CONFIG)
    model = GPT2LMHeadModel(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_model(model, fast, out)
