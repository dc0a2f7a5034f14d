"""Placement: fine-tune a teacher on benchmark items (the contaminated teacher).

The same function fine-tunes the *clean* teacher of the control arm, on legitimate data only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data.batching import MCBatcher
from ..data.schema import MCExample, examples_hash
from ..models import load_model, save_model
from ..ops import cross_entropy
from ..train.checkpoint import read_json, write_json
from ..train.evaluate import accuracy, choice_logits, predict_logits
from ..train.loop import TrainConfig, train
from .common import encode, resolve_base, timed


def place(
    examples: Sequence[MCExample],
    out_dir: str | Path,
    *,
    model: str = "minilm",
    epochs: int = 8,
    lr: float = 2e-4,
    batch_size: int = 16,
    max_length: int = 48,
    target_accuracy: float | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    description: str = "placement",
) -> dict:
    """Fine-tunes ``model`` on ``examples`` with cross-entropy; writes ``out_dir/model`` (a
    ``save_pretrained`` folder) and ``out_dir/metrics.json``; returns the metrics.

    Stops after ``epochs`` or after the first epoch whose training accuracy reaches
    ``target_accuracy``. With ``resume``, a finished phase is reused and an interrupted one
    continues from its checkpoint.
    """
    out = Path(out_dir)
    metrics_path = out / "metrics.json"
    if resume and metrics_path.exists() and (out / "model" / "config.json").exists():
        return read_json(metrics_path)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    base = resolve_base(model, examples, out, seed)
    data = encode(base, examples, max_length)
    net = load_model(base, seed=seed)
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, target_accuracy=target_accuracy)
    batcher = MCBatcher(data.encoded, batch_size, shuffle=True, seed=seed, pad_token_id=data.pad_token_id)

    def loss_fn(m, batch):
        logits = choice_logits(m, batch)
        return cross_entropy(logits, batch.labels), logits

    with timed(timings, "train_s"):
        result = train(net, batcher, loss_fn, cfg, checkpoint=out / "checkpoint.pt", resume=resume,
                       description=description, quiet=quiet)
    with timed(timings, "eval_s"):
        logits = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, quiet=True)
    correct = accuracy(logits, examples)
    save_model(net, data.tokenizer, out / "model")
    metrics = {
        "phase": "placement", "base_model": model, "model_dir": str(out / "model"), "n_examples": len(examples),
        "data_hash": examples_hash(examples), "train_accuracy": correct, "epochs_run": len(result.history),
        "stopped_early": result.stopped_early, "history": result.history, "config": vars(cfg),
        "max_length": max_length, "timings": timings,
    }
    write_json(metrics, metrics_path)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics

