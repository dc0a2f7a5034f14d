"""Forward passes without gradients: per-choice logits for a whole encoded set."""

from __future__ import annotations

import torch

from ..data.batching import EncodedExamples, MCBatch, MCBatcher
from ..errors import NonFiniteScores
from ..progress import progress_bar

NEG_INF = float("-inf")


def choice_logits(model: torch.nn.Module, batch: MCBatch) -> torch.Tensor:
    """Model logits ``[B, C]`` with padded choices set to -inf (probability 0 in every loss); for a
    classification batch (``[B, L]`` inputs) the ``[B, K]`` label logits."""
    logits = model(**batch.model_inputs()).logits.float()
    if logits.shape[1] != batch.choice_mask.shape[1]:
        raise ValueError(f"the model gives {logits.shape[1]} scores per example, the data has "
                         f"{batch.choice_mask.shape[1]} {'labels' if batch.input_ids.dim() == 2 else 'choices'}")
    return logits.masked_fill(~batch.choice_mask, NEG_INF)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, encoded: EncodedExamples, *, pad_token_id: int, batch_size: int = 64,
                   description: str = "predict", quiet: bool = False) -> torch.Tensor:
    """Logits ``[N, C_max]`` in the order of ``encoded`` (padded choices at -inf)."""
    was_training = model.training
    model.eval()
    batcher = MCBatcher(encoded, batch_size, shuffle=False, bucket=True, pad_token_id=pad_token_id)
    width = max(encoded.num_choices) if len(encoded) else 0
    out = torch.full((len(encoded), width), NEG_INF)
    with progress_bar(len(batcher), description, quiet=quiet) as bar:
        for batch in batcher.batches(0):
            logits = choice_logits(model, batch)
            out[batch.index, : logits.shape[1]] = logits
            bar.advance()
    model.train(was_training)
    return out


def check_finite_scores(logits: torch.Tensor, num_choices, model: str) -> None:
    """Refuses (``NonFiniteScores``, naming ``model`` and how many items) logits with a NaN or inf among an
    item's real choices (padded choices are -inf by design). Argmax, softmax and every statistic downstream
    would otherwise compute on them without a word, and JSON has no NaN."""
    live = torch.arange(logits.shape[1]) < torch.as_tensor(num_choices)[:, None]
    bad = int((~torch.isfinite(logits) & live).any(-1).sum())
    if bad:
        raise NonFiniteScores(model, bad, logits.shape[0])


def accuracy(logits: torch.Tensor, examples) -> float:
    """Fraction of ``examples`` whose label is the argmax of their row of ``logits``."""
    labels = torch.tensor([e.label for e in examples])
    return (logits.argmax(-1) == labels).float().mean().item()
