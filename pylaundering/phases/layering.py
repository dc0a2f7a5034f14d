"""Layering: distill a fresh student from the teacher on legitimate data only.

loss = alpha * distill(student, teacher) + (1 - alpha) * CE(student, label), with the fused
ops of ``pylaundering.ops``. What is distilled is the per-choice logits, so teacher and student
may use different tokenizers: each encodes the text itself. Teacher logits are computed once
and cached on disk (``train/cache.py``) unless ``online_teacher`` asks for a teacher forward
pass at every step. ``iterations > 1`` is iterative laundering: the student of round k is the
teacher of round k + 1.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Sequence

import torch

from ..data.batching import MCBatcher
from ..data.schema import MCExample, examples_hash
from ..models import load_model, load_student, model_fingerprint, save_model
from ..ops import KINDS, distill_loss
from ..train import cache as logit_cache
from ..train.checkpoint import read_json, write_json
from ..train.evaluate import accuracy, choice_logits, predict_logits
from ..train.loop import TrainConfig, train
from .common import encode, resolve_base, timed

LOSSES = tuple(KINDS)  # kl, reverse_kl, jsd, mse


def subsample(examples: Sequence[MCExample], data_size: int | None, seed: int) -> list[MCExample]:
    """A seeded random subset of ``data_size`` examples (all of them when None)."""
    if data_size is None or data_size >= len(examples):
        return list(examples)
    if data_size < 1:
        raise ValueError(f"data size must be >= 1, got {data_size}")
    idx = sorted(random.Random(seed).sample(range(len(examples)), data_size))
    return [examples[i] for i in idx]


def teacher_logits(teacher: str, examples: Sequence[MCExample], *, max_length: int, cache_dir: Path | None,
                   quiet: bool) -> tuple[torch.Tensor, dict]:
    """Teacher logits on ``examples``: from the cache when its key matches, else computed (and saved)."""
    data = encode(teacher, examples, max_length)
    key = logit_cache.cache_key(model_fingerprint=model_fingerprint(teacher), data_hash=examples_hash(examples),
                                max_length=max_length, tokenizer=type(data.tokenizer).__name__)
    ids = data.encoded.ids
    if cache_dir is not None:
        hit = logit_cache.load_cached(cache_dir, key, ids)
        if hit is not None:
            return hit.values, {"cache": "hit", "cache_file": str(hit.path)}
    net = load_model(teacher)
    values = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, description="teacher logits",
                            quiet=quiet)
    info: dict = {"cache": "off" if cache_dir is None else "miss"}
    if cache_dir is not None:
        info["cache_file"] = str(logit_cache.save_cached(cache_dir, key, values, ids, teacher=teacher))
    return values, info


def layer(
    teacher: str | None,
    examples: Sequence[MCExample],
    out_dir: str | Path,
    *,
    base: str = "minilm",
    student_layers: int | None = 2,
    student_init: str = "sheared",
    student_model: str | None = None,
    loss: str = "kl",
    alpha: float = 1.0,
    temperature: float = 2.0,
    beta: float = 0.5,
    data_size: int | None = None,
    epochs: int = 3,
    iterations: int = 1,
    lr: float = 1e-4,
    batch_size: int = 16,
    max_length: int = 48,
    online_teacher: bool = False,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    description: str = "layering",
) -> dict:
    """Trains the student(s); writes ``out_dir/model`` (the last round's student), one folder per
    round when ``iterations > 1``, and ``out_dir/metrics.json``; returns the metrics.

    ``alpha = 0`` trains with cross-entropy alone (the CE-only control): no teacher is needed.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if alpha > 0 and teacher is None:
        raise ValueError("a teacher is required when alpha > 0 (alpha = 0 trains with cross-entropy alone)")
    out = Path(out_dir)
    metrics_path = out / "metrics.json"
    if resume and metrics_path.exists() and (out / "model" / "config.json").exists():
        return read_json(metrics_path)
    out.mkdir(parents=True, exist_ok=True)
    train_set = subsample(examples, data_size, seed)
    base_path = resolve_base(base, train_set, out, seed)
    cache = Path(cache_dir) if cache_dir is not None and not online_teacher else None
    rounds: list[dict] = []
    current_teacher = teacher
    for k in range(1, iterations + 1):
        round_dir = out if iterations == 1 else out / f"round-{k}"
        tag = description if iterations == 1 else f"{description} {k}/{iterations}"
        rounds.append(_one_round(
            current_teacher, train_set, round_dir, base_path=base_path, student_layers=student_layers,
            student_init=student_init, student_model=student_model, loss=loss, alpha=alpha,
            temperature=temperature, beta=beta, epochs=epochs, lr=lr, batch_size=batch_size,
            max_length=max_length, online_teacher=online_teacher, cache_dir=cache, seed=seed + k - 1,
            resume=resume, quiet=quiet, description=tag,
        ))
        current_teacher = str(round_dir / "model")
    if iterations > 1:
        save_dir = out / "model"
        if save_dir.exists():
            shutil.rmtree(save_dir)
        shutil.copytree(out / f"round-{iterations}" / "model", save_dir)
    last = rounds[-1]
    metrics = {
        "phase": "layering", "teacher": teacher, "model_dir": str(out / "model"), "base_model": base,
        "student_layers": student_layers, "student_init": student_init, "loss": loss, "alpha": alpha,
        "temperature": temperature, "beta": beta, "epochs": epochs, "iterations": iterations,
        "n_examples": len(train_set), "data_hash": examples_hash(train_set), "online_teacher": online_teacher,
        "train_accuracy": last["train_accuracy"], "rounds": rounds,
        "timings": {k: sum(r["timings"].get(k, 0.0) for r in rounds) for k in ("teacher_logits_s", "train_s")},
    }
    write_json(metrics, metrics_path)
    return metrics


def _one_round(teacher, train_set, out: Path, *, base_path, student_layers, student_init, student_model, loss,
               alpha, temperature, beta, epochs, lr, batch_size, max_length, online_teacher, cache_dir, seed,
               resume, quiet, description) -> dict:
    timings: dict = {}
    out.mkdir(parents=True, exist_ok=True)
    student = load_student(base_path, init=student_init, num_layers=student_layers, seed=seed,
                           student_model=student_model)
    student_path = student_model if student_init == "pretrained" else base_path
    data = encode(student_path, train_set, max_length)
    batcher = MCBatcher(data.encoded, batch_size, shuffle=True, seed=seed, pad_token_id=data.pad_token_id)
    info: dict = {"cache": "unused"}
    cached: torch.Tensor | None = None
    teacher_net = teacher_batcher = None
    if alpha > 0 and online_teacher:
        teacher_net = load_model(teacher).eval()
        tdata = encode(teacher, train_set, max_length)
        teacher_batcher = MCBatcher(tdata.encoded, batch_size, shuffle=False, pad_token_id=tdata.pad_token_id)
        info = {"cache": "online"}
    elif alpha > 0:
        with timed(timings, "teacher_logits_s"):
            cached, info = teacher_logits(teacher, train_set, max_length=max_length, cache_dir=cache_dir, quiet=quiet)

    def loss_fn(m, batch):
        logits = choice_logits(m, batch)
        if alpha == 0:
            return distill_loss(logits, None, batch.labels, alpha=0.0), logits
        if teacher_net is not None:
            with torch.no_grad():
                t = choice_logits(teacher_net, teacher_batcher.collate(batch.index.tolist()))
        else:
            t = cached[batch.index]
        t = t[:, : logits.shape[1]]
        value = distill_loss(logits, t, batch.labels, kind=loss, alpha=alpha, temperature=temperature, beta=beta)
        return value, logits

    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    with timed(timings, "train_s"):
        result = train(student, batcher, loss_fn, cfg, checkpoint=out / "checkpoint.pt", resume=resume,
                       description=description, quiet=quiet)
    logits = predict_logits(student, data.encoded, pad_token_id=data.pad_token_id, quiet=True)
    save_model(student, data.tokenizer, out / "model")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return {"teacher": teacher, "train_accuracy": accuracy(logits, train_set),
            "history": result.history, "teacher_logits": info, "timings": timings}
