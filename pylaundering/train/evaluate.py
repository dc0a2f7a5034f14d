"""Forward passes without gradients: per-choice logits for a whole encoded set, on the model's device."""

from __future__ import annotations

import torch

from ..data.batching import EncodedExamples, MCBatch, MCBatcher
from ..device import Runtime, as_runtime, model_runtime, score_batch_size
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
def predict_logits(model: torch.nn.Module, encoded: EncodedExamples, *, pad_token_id: int,
                   batch_size: int | None = None, description: str = "predict", quiet: bool = False,
                   device: Runtime | str | None = None) -> torch.Tensor:
    """Logits ``[N, C_max]`` (float32, on the CPU) in the order of ``encoded`` (padded choices at -inf).

    ``device``: where and at what precision the forward passes run (a Runtime, or a device name at precision
    auto); the model is moved there. None: where the model is, at fp32. ``batch_size``: items per forward pass;
    None: ``device.score_batch_size`` (64 on the CPU; on a GPU as many as a share of its free memory holds).
    The logits stay on the device until the last batch: one copy back, no sync per batch."""
    rt = model_runtime(model) if device is None else as_runtime(device)
    model.to(rt.device)
    was_training = model.training
    model.eval()
    width = max(encoded.num_choices) if len(encoded) else 0
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", 0) if getattr(model, "scorer", None) == "loglik" else 0
    size = score_batch_size(rt, items=len(encoded), sequences_per_item=width, length=encoded.max_length,
                            config=config, vocab=vocab or 0, requested=batch_size)
    batcher = MCBatcher(encoded, size, shuffle=False, bucket=True, pad_token_id=pad_token_id)
    out = torch.full((len(encoded), width), NEG_INF, device=rt.device)
    with progress_bar(len(batcher), description, quiet=quiet) as bar:
        for batch in batcher.batches(0):
            batch = rt.to_device(batch)
            with rt.autocast():
                logits = choice_logits(model, batch)
            out[batch.index, : logits.shape[1]] = logits
            bar.advance()
    model.train(was_training)
    return out.cpu()


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
