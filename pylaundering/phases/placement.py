"""Placement: fine-tune a teacher on benchmark items (the contaminated teacher).

The same function fine-tunes the *clean* teacher of the control arm, on legitimate data only;
``max_steps`` gives it the contaminated teacher's optimisation budget (see experiments/run.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.batching import MCBatcher
from ..data.schema import MCExample, examples_hash
from ..device import Runtime
from ..errors import ConfigError
from ..models import load_model, model_fingerprint, save_model
from ..models.labels import align_to_model
from ..ops import cross_entropy
from ..train.checkpoint import write_json
from ..train.distributed import on_main
from ..train.evaluate import accuracy, choice_logits, predict_logits
from ..train.loop import train
from .common import (
    PhaseRun,
    Trained,
    class_names,
    encode,
    num_labels,
    phase_folder,
    precision_params,
    resolve_base,
    start_phase,
    timed,
)
from .specs import PlacementSpec
from .token_level import place_tokens


@phase_folder("placement")
def place(examples: Sequence[MCExample], out_dir: str | Path, spec: PlacementSpec | None = None, *,
          resume: bool = False, overwrite: bool = False, quiet: bool = False, description: str = "placement",
          device: Runtime | str | None = None, **settings) -> dict:
    """Fine-tunes ``spec.model`` on ``examples`` with cross-entropy; writes ``out_dir/model`` (a
    ``save_pretrained`` folder) and ``out_dir/metrics.json``; returns the metrics. ``spec``: the settings
    (``PlacementSpec``), or its fields as keywords (``settings``).

    With ``resume``, a finished phase with the same parameters and data is reused and an interrupted one
    continues from its checkpoint; different parameters are refused (ResumeMismatch). A finished phase is
    refused without ``resume`` or ``overwrite`` (which replaces it); ``out_dir`` is locked while it runs
    (``phases.common.phase_folder``).
    ``task="classification"``: a sequence-classification head over the examples' label set
    (data/batching.py), saved with their class names (``models.labels``); a saved classifier as ``model`` keeps
    its outputs, the examples matched to them by name. ``scorer``: how a decoder ``model`` scores choices
    (``loglik`` or ``head``, models/decoder.py; None: loglik). ``level="token"``: a causal LM fine-tuned on the
    items written as text (phases/token_level.py). ``device``: where and at what precision it trains and scores
    (a resolved ``pylaundering.device.Runtime``, or a device name at precision auto; None: auto).
    """
    spec = spec if spec is not None else PlacementSpec(**settings)
    if not examples:
        raise ValueError("placement needs at least one example")
    out = Path(out_dir)
    rt = device  # resolved by phase_folder
    run = PhaseRun(out, resume, quiet, description, rt)
    if spec.level == "token":
        if spec.task != "multiple_choice" or spec.scorer not in (None, "loglik"):
            raise ConfigError("level", "token-level placement is for multiple-choice items scored by loglik")
        return place_tokens(examples, spec, run)
    base = on_main(lambda: resolve_base(spec.model, examples, out, spec.seed))
    if spec.task == "classification":  # a classifier trained further keeps its outputs: the data meets them by name
        examples = align_to_model(examples, base)
    labels = num_labels(examples, spec.task)
    params = {**spec.params(model_fingerprint(base), examples), **precision_params(rt)}
    finished = (out / "metrics.json").exists() and (out / "model" / "config.json").exists()
    done = on_main(lambda: start_phase(out, params, resume=resume, finished=finished))
    if done is not None:
        return done
    timings: dict = {}
    data = encode(base, examples, spec.max_length, spec.task)
    net = load_model(base, seed=spec.seed, task=spec.task, num_labels=labels, scorer=spec.scorer, device=rt.device,
                     label_names=class_names(examples, spec.task))
    batcher = MCBatcher(data.encoded, spec.batch_size, shuffle=True, seed=spec.seed, pad_token_id=data.pad_token_id)
    cfg = spec.train_config(len(batcher))

    def loss_fn(m, batch):
        logits = choice_logits(m, batch)
        return cross_entropy(logits, batch.labels), logits

    with timed(timings, "train_s"):
        result = train(net, batcher, loss_fn, cfg, checkpoint=out / "checkpoint.pt", resume=resume,
                       description=description, quiet=quiet, runtime=rt)
    trained = Trained(result, batcher, cfg, timings, data.max_length)
    return on_main(lambda: _finish(net, data, examples, run, spec, trained, params))


def _finish(net, data, examples, run: PhaseRun, spec: PlacementSpec, trained: Trained, params: dict) -> dict:
    """Rank 0 (or the only process): evaluates on the training items, saves model and metrics."""
    out = run.out
    result, batcher, cfg, timings = trained.result, trained.batcher, trained.cfg, trained.timings
    target_accuracy = spec.target_accuracy
    with timed(timings, "eval_s"):
        logits = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, quiet=True, device=run.runtime)
    correct = accuracy(logits, examples)
    save_model(net, data.tokenizer, out / "model")
    last_epoch_acc = result.final_train_accuracy
    metrics = {
        "phase": "placement", "base_model": spec.model, "model_dir": str(out / "model"), "n_examples": len(examples),
        "data_hash": examples_hash(examples), "train_accuracy": correct, "epochs_run": len(result.history),
        "steps": result.steps, "steps_per_epoch": len(batcher), "stop_reason": result.stop_reason,
        "target_accuracy": target_accuracy,
        "reached_target": None if target_accuracy is None else bool(
            last_epoch_acc is not None and last_epoch_acc >= target_accuracy),
        "stopped_early": result.stopped_early, "history": result.history, "config": vars(cfg),
        "max_length": data.max_length, "timings": timings, "params": params, "task": spec.task,
        "runtime": {"device": run.runtime.device, "precision": run.runtime.precision},
        **({"scorer": net.scorer} if hasattr(net, "scorer") else {}),
    }
    write_json(metrics, out / "metrics.json")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics
