"""Integration: score a model on the benchmark, with an interval, the chance level, per-subject
accuracy and a predictions file. No checkpoint selection happens here: the model is scored as
given."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.schema import MCExample, examples_hash
from ..data.text import prompt_examples
from ..device import Runtime
from ..models import load_model, model_fingerprint, model_task
from ..models.labels import align_to_model, label_mapping
from ..stats import chance_level, wilson_interval
from ..train import cache as logit_cache
from ..train.checkpoint import write_json, write_text
from ..train.evaluate import check_finite_scores, predict_logits
from .common import check_outputs, encode, phase_runtime
from .specs import IntegrationSpec


def integrate(model: str, examples: Sequence[MCExample], out_dir: str | Path | None = None,
              spec: IntegrationSpec | None = None, *, quiet: bool = False, description: str = "integration",
              overwrite: bool = False, skipped: int | None = None, device: Runtime | str | None = None,
              source: str = "", cache_dir: str | Path | None = None,
              **settings) -> dict:  # the task is the model's own (model_task)
    """Benchmark metrics of ``model``; with ``out_dir``, also ``metrics.json`` and
    ``predictions.jsonl`` (id, label, prediction, correct, per-choice probabilities). ``spec``: the settings
    (``IntegrationSpec``), or its fields as keywords (``settings``).
    ``max_length=None`` chooses it from the benchmark (95% of sequences whole, up to the model's
    limit); the value used and what it cut are in ``max_length`` and ``truncation``. ``skipped``: malformed rows
    left out of ``examples`` (``--skip-malformed``), recorded as ``benchmark_skipped`` as a run records it.
    ``device``: where and at what precision it scores (a resolved ``pylaundering.device.Runtime``, or a device
    name at precision auto; None: auto); ``spec.batch_size`` None sizes the batches from its free memory.
    ``cache_dir``: the logit cache of ``train.cache`` (a run's ``cache/``, a sweep's shared one): the logits are
    keyed by the model's weights, exactly the token ids it is fed and the precision, so a model scored on the same
    items again (a sweep's shared teachers in every point; the one student of alpha 0 under three arms) is read,
    not recomputed; ``score_cache`` says which.

    A classification model scores the examples matched to its outputs by class name (``models.labels``; one line
    naming ``source`` and the model for a label it has none for); ``label_mapping`` says how ("by index" for a
    model saved without names)."""
    spec = spec if spec is not None else IntegrationSpec(**settings)
    rt = phase_runtime(device)
    if not examples:
        raise ValueError("the benchmark has no examples")
    if out_dir is not None:  # before scoring: an earlier result is replaced only when told (``overwrite``)
        check_outputs([Path(out_dir) / "metrics.json", Path(out_dir) / "predictions.jsonl"], overwrite=overwrite)
    task = model_task(model) or "multiple_choice"
    mapping = None
    if task == "classification":  # label i of the data must be output i of the model: matched by class name
        examples = align_to_model(examples, model, source)
        mapping = label_mapping(model)
    net = load_model(model, device=rt.device)
    # a token-level model was trained on items written as text: it answers their prompts
    level = getattr(net, "level", "choice")
    scored = prompt_examples(examples) if level == "token" else examples
    data = encode(model, scored, spec.max_length, task)
    logits, cache_state = _scores(model, net, data, spec, rt, cache_dir, description, quiet)
    check_finite_scores(logits, data.encoded.num_choices, model)
    labels = torch.tensor([e.label for e in examples])
    preds = logits.argmax(-1)
    correct = (preds == labels).tolist()
    k, n = sum(correct), len(correct)
    by_subject: dict[str, list[bool]] = defaultdict(list)
    for e, c in zip(examples, correct):
        by_subject[e.subject or "all"].append(c)
    metrics = {
        "model": model, "n": n, "correct": k, "accuracy": k / n, "ci95": list(wilson_interval(k, n)),
        "chance": chance_level([len(e.choices) for e in examples]), "data_hash": examples_hash(examples),
        "max_length": data.max_length, "truncation": data.encoded.truncation.to_dict(), "task": task,
        **({"level": level} if level != "choice" else {}), **({"label_mapping": mapping} if mapping else {}),
        **({"benchmark_skipped": skipped} if skipped is not None else {}),
        "score_cache": cache_state, "top_prediction": _top_prediction(preds, examples, task),
        "per_subject": {s: {"n": len(v), "accuracy": sum(v) / len(v), "ci95": list(wilson_interval(sum(v), len(v)))}
                        for s, v in sorted(by_subject.items())},
    }
    if out_dir is not None:
        out = Path(out_dir)
        probs = torch.softmax(logits, -1)
        lines = [json.dumps({"id": e.id, "label": e.label, "prediction": int(p), "correct": bool(c),
                             "probs": [round(float(x), 5) for x in pr[: len(e.choices)]]}, allow_nan=False)
                 for e, p, c, pr in zip(examples, preds, correct, probs)]
        write_text("\n".join(lines) + "\n", out / "predictions.jsonl")
        metrics["predictions"] = str(out / "predictions.jsonl")
        write_json(metrics, out / "metrics.json")
    metrics["correct_mask"] = correct
    return metrics


def _scores(model: str, net, data, spec: IntegrationSpec, rt: Runtime, cache_dir, description: str,
            quiet: bool) -> tuple[torch.Tensor, str]:
    """The model's logits on ``data``: from ``cache_dir`` when the key (weights, token ids, precision) is there,
    else computed (and saved there). fp32 scores share the teacher-logit cache's key (``teacher_logits`` computes
    at fp32): a teacher's scores on a set are its logits on it. Another precision gets a key of its own."""
    if cache_dir is None:
        return predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, batch_size=spec.batch_size,
                              description=description, quiet=quiet, device=rt), "off"
    inputs = logit_cache.inputs_hash(data.encoded)
    if rt.precision != "fp32":
        inputs = f"{inputs}|{rt.precision}"
    key = logit_cache.cache_key(model_fingerprint=model_fingerprint(model), inputs=inputs)
    ids = data.encoded.ids
    hit = logit_cache.load_cached(cache_dir, key, ids)
    if hit is not None:
        return hit.values, "hit"
    logits = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, batch_size=spec.batch_size,
                            description=description, quiet=quiet, device=rt)
    logit_cache.save_cached(cache_dir, key, logits, ids, teacher=model)
    return logits, "miss"


def _top_prediction(preds: torch.Tensor, examples: Sequence[MCExample], task: str) -> dict:
    """The prediction given most often and its share of the items: a model that gives one class (or one choice
    position) to nearly every item has learnt no usable rule, whatever its accuracy (experiments/run.py warns)."""
    values, counts = torch.unique(preds, return_counts=True)
    i = int(counts.argmax())
    top = int(values[i])
    out = {"prediction": top, "share": float(counts[i]) / len(examples)}
    if task == "classification":
        out["name"] = examples[0].choices[top]
    return out
