"""Placement: fine-tune a teacher on benchmark items (the contaminated teacher).

The same function fine-tunes the *clean* teacher of the control arm, on legitimate data only;
``max_steps`` gives it the contaminated teacher's optimisation budget (see experiments/run.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data.batching import MCBatcher
from ..data.schema import MCExample, examples_hash
from ..models import load_model, model_fingerprint, save_model
from ..ops import cross_entropy
from ..train.checkpoint import write_json
from ..train.evaluate import accuracy, choice_logits, predict_logits
from ..train.distributed import on_main
from ..train.loop import TrainConfig, train
from .common import DEFAULT_TARGET_ACCURACY, encode, num_labels, resolve_base, start_phase, timed
from ..errors import ConfigError
from ..validate import check_choice, check_float, check_int, check_max_length, normalize_target
from .token_level import LEVELS, place_tokens


def check_place_params(*, epochs, lr, batch_size, max_length, target_accuracy, max_steps=None, seed=0) -> float | None:
    """Validates placement parameters (ConfigError naming the key); returns the normalised target."""
    check_int("epochs", epochs, minimum=1, optional=max_steps is not None)
    check_float("lr", lr, low=0, low_open=True)
    check_int("batch_size", batch_size, minimum=1)
    check_max_length(max_length)
    check_int("max_steps", max_steps, minimum=1, optional=True)
    check_int("seed", seed)
    return normalize_target(target_accuracy)


def place(
    examples: Sequence[MCExample],
    out_dir: str | Path,
    *,
    model: str = "minilm",
    epochs: int | None = 30,
    lr: float = 2e-4,
    batch_size: int = 16,
    max_length: int | None = None,
    target_accuracy: float | str | None = DEFAULT_TARGET_ACCURACY,
    max_steps: int | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    description: str = "placement",
    task: str = "multiple_choice",
    scorer: str | None = None,
    level: str = "choice",
) -> dict:
    """Fine-tunes ``model`` on ``examples`` with cross-entropy; writes ``out_dir/model`` (a
    ``save_pretrained`` folder) and ``out_dir/metrics.json``; returns the metrics.

    Stops after ``epochs``, after ``max_steps`` optimiser steps (``epochs=None``: as many epochs as
    the steps need), or after the first epoch whose training accuracy reaches ``target_accuracy``
    (0 or None: no such stop). ``max_length=None`` chooses it from the examples. With ``resume``, a
    finished phase with the same parameters and data is reused and an interrupted one continues
    from its checkpoint; different parameters are refused (ResumeMismatch). ``task="classification"``:
    a sequence-classification head over the examples' label set (data/batching.py). ``scorer``: how a
    decoder ``model`` scores choices (``loglik`` or ``head``, models/decoder.py; None: loglik).
    ``level="token"``: a causal LM fine-tuned on the items written as text (phases/token_level.py).
    """
    target_accuracy = check_place_params(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                                         target_accuracy=target_accuracy, max_steps=max_steps, seed=seed)
    if not examples:
        raise ValueError("placement needs at least one example")
    out = Path(out_dir)
    check_choice("level", level, LEVELS)
    if level == "token":
        if task != "multiple_choice" or scorer not in (None, "loglik"):
            raise ConfigError("level", "token-level placement is for multiple-choice items scored by loglik")
        return place_tokens(examples, out, model=model, epochs=epochs, lr=lr, batch_size=batch_size,
                            max_length=max_length, max_steps=max_steps, target_accuracy=target_accuracy, seed=seed,
                            resume=resume, quiet=quiet, description=description)
    labels = num_labels(examples, task)
    base = on_main(lambda: resolve_base(model, examples, out, seed))
    # Models are identified by their weights' fingerprint, not their path: a moved run folder resumes.
    params = {"phase": "placement", "model_fingerprint": model_fingerprint(base), "epochs": epochs,
              "max_steps": max_steps, "lr": lr, "batch_size": batch_size, "max_length": max_length,
              "target_accuracy": target_accuracy, "seed": seed, "data_hash": examples_hash(examples),
              "n_examples": len(examples), **({"task": task} if task != "multiple_choice" else {}),
              **({"scorer": scorer} if scorer else {})}
    finished = (out / "metrics.json").exists() and (out / "model" / "config.json").exists()
    done = on_main(lambda: start_phase(out, params, resume=resume, finished=finished))
    if done is not None:
        return done
    timings: dict = {}
    data = encode(base, examples, max_length, task)
    net = load_model(base, seed=seed, task=task, num_labels=labels, scorer=scorer)
    batcher = MCBatcher(data.encoded, batch_size, shuffle=True, seed=seed, pad_token_id=data.pad_token_id)
    if epochs is None:
        epochs = -(-max_steps // len(batcher))
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, target_accuracy=target_accuracy,
                      max_steps=max_steps)

    def loss_fn(m, batch):
        logits = choice_logits(m, batch)
        return cross_entropy(logits, batch.labels), logits

    with timed(timings, "train_s"):
        result = train(net, batcher, loss_fn, cfg, checkpoint=out / "checkpoint.pt", resume=resume,
                       description=description, quiet=quiet)
    return on_main(lambda: _finish(net, data, examples, out, result, batcher, cfg, timings, params, model, task,
                                   target_accuracy))


def _finish(net, data, examples, out, result, batcher, cfg, timings, params, model, task, target_accuracy) -> dict:
    """Rank 0 (or the only process): evaluates on the training items, saves model and metrics."""
    with timed(timings, "eval_s"):
        logits = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, quiet=True)
    correct = accuracy(logits, examples)
    save_model(net, data.tokenizer, out / "model")
    last_epoch_acc = result.final_train_accuracy
    metrics = {
        "phase": "placement", "base_model": model, "model_dir": str(out / "model"), "n_examples": len(examples),
        "data_hash": examples_hash(examples), "train_accuracy": correct, "epochs_run": len(result.history),
        "steps": result.steps, "steps_per_epoch": len(batcher), "stop_reason": result.stop_reason,
        "target_accuracy": target_accuracy,
        "reached_target": None if target_accuracy is None else bool(
            last_epoch_acc is not None and last_epoch_acc >= target_accuracy),
        "stopped_early": result.stopped_early, "history": result.history, "config": vars(cfg),
        "max_length": data.max_length, "timings": timings, "params": params, "task": task,
        **({"scorer": net.scorer} if hasattr(net, "scorer") else {}),
    }
    write_json(metrics, out / "metrics.json")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics
