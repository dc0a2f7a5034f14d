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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.batching import MCBatcher
from ..data.schema import MCExample, examples_hash
from ..device import Runtime
from ..errors import ConfigError, ResumeMismatch
from ..models import load_model, load_student, model_fingerprint, model_task, resolve_model, save_model
from ..models.labels import align_to_model, label_mapping
from ..ops import cross_entropy, distill_loss
from ..train import cache as logit_cache
from ..train.checkpoint import read_json, write_json
from ..train.distributed import is_main, on_main
from ..train.evaluate import accuracy, choice_logits, predict_logits
from ..train.loop import TrainConfig, train
from ..validate import check_int
from .common import (
    PhaseRun,
    check_student,
    class_names,
    differences,
    encode,
    mismatch_line,
    num_labels,
    phase_folder,
    precision_params,
    resolve_base,
    start_phase,
    timed,
)
from .specs import LOSSES, LayeringSpec  # noqa: F401 - LOSSES re-exported: the loss names a layering accepts
from .token_level import corpus_texts, layer_tokens


def subsample(examples: Sequence[MCExample], data_size: int | None, seed: int) -> list[MCExample]:
    """A seeded random subset of ``data_size`` examples (all of them when None).

    A size larger than the set is refused rather than silently capped: the run would otherwise
    report a data size it never used."""
    if data_size is None:
        return list(examples)
    check_int("data_size", data_size, minimum=1)
    if data_size > len(examples):
        raise ConfigError("data_size", f"{data_size} is larger than the training set ({len(examples)} examples); "
                          "omit it to use them all")
    if data_size == len(examples):
        return list(examples)
    idx = sorted(random.Random(seed).sample(range(len(examples)), data_size))
    return [examples[i] for i in idx]


def teacher_logits(teacher: str, examples: Sequence[MCExample], *, max_length: int | None, cache_dir: Path | None,
                   quiet: bool, device: Runtime | None = None) -> tuple[torch.Tensor, dict]:
    """Teacher logits on ``examples`` (float32, on the CPU): from the cache when its key matches, else computed
    (and saved) on ``device`` in large inference batches (``predict_logits``; None: the CPU).

    The key hashes the teacher (weights fingerprint, or resolved hub revision) and exactly the
    token ids fed to it (``cache.inputs_hash``), not the names of the settings that produced them. The logits
    are computed at fp32 whatever the run's precision, so one cache serves every precision (the device changes
    them by float rounding only, as it does the training)."""
    data = encode(teacher, examples, max_length, model_task(teacher) or "multiple_choice")
    key = logit_cache.cache_key(model_fingerprint=model_fingerprint(teacher),
                                inputs=logit_cache.inputs_hash(data.encoded))
    ids = data.encoded.ids
    if cache_dir is not None:
        hit = logit_cache.load_cached(cache_dir, key, ids)
        if hit is not None:
            return hit.values, {"cache": "hit", "cache_file": str(hit.path), "max_length": data.max_length}
    rt = Runtime(device.device if device is not None else "cpu")  # fp32: see above
    net = load_model(teacher, device=rt.device)
    values = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, description="teacher logits",
                            quiet=quiet, device=rt)
    info: dict = {"cache": "off" if cache_dir is None else "miss", "max_length": data.max_length}
    if cache_dir is not None:
        info["cache_file"] = str(logit_cache.save_cached(cache_dir, key, values, ids, teacher=teacher))
    return values, info


@phase_folder("layering")
def layer(teacher: str | None, examples: Sequence[MCExample], out_dir: str | Path, spec: LayeringSpec | None = None,
          *, cache_dir: str | Path | None = None, corpus: Sequence[str] | None = None, resume: bool = False,
          overwrite: bool = False, quiet: bool = False, description: str = "layering",
          device: Runtime | str | None = None, **settings) -> dict:
    """Trains the student(s); writes ``out_dir/model`` (the last round's student), one folder per
    round when ``iterations > 1``, and ``out_dir/metrics.json``; returns the metrics. ``spec``: the
    settings (``LayeringSpec``), or the flat names of ``LayeringSpec.of`` as keywords (``settings``).

    ``alpha = 0`` trains with cross-entropy alone (the CE-only control): no teacher is needed.
    ``max_length=None``: each model's tokenizer chooses it from the training set. With
    ``resume``, a finished phase (or round) with the same parameters and data is reused, an
    interrupted round continues from its checkpoint, and different parameters are refused. A finished phase
    is refused without ``resume`` or ``overwrite`` (which replaces it); ``out_dir`` is locked while it runs.
    The student's ``scorer``: how a decoder student scores choices (``loglik`` | ``head``); None: the
    teacher's scorer. ``level="token"``: token-level distillation of causal LMs on a text corpus (``corpus``,
    or ``examples`` written as text with their labels; phases/token_level.py); ``teacher_topk=k`` there
    caches the teacher's top-k next-token entries in ``cache_dir`` and trains on them. ``device``: where and
    at what precision it trains (a resolved ``pylaundering.device.Runtime``, or a device name at precision auto;
    None: auto).
    """
    spec = spec if spec is not None else LayeringSpec.of(**settings)
    spec.check_teacher(teacher)
    out = Path(out_dir)
    rt = device  # resolved by phase_folder
    run = PhaseRun(out, resume, quiet, description, rt)
    if spec.level == "token":
        if spec.iterations != 1 or spec.task != "multiple_choice":
            raise ConfigError("level", "token-level layering runs one round on multiple-choice items or a text corpus")
        texts = subsample(corpus_texts(examples, corpus), spec.data_size, spec.seed)
        if not texts:
            raise ValueError("layering needs at least one training document")
        return layer_tokens(teacher, texts, spec, run, Path(cache_dir) if cache_dir is not None else None)
    if spec.teacher_topk is not None:
        raise ConfigError("teacher_topk", "a top-k teacher cache is for --level token (choice level caches the "
                          "teacher's per-choice logits whole)")
    if not examples:
        raise ValueError("layering needs at least one training example")
    alpha, st = spec.distill.alpha, spec.student
    teacher_task = model_task(teacher) if alpha > 0 and teacher is not None else None
    if teacher_task not in (None, spec.task):
        raise ConfigError("task", f"the teacher {teacher} is a {teacher_task.replace('_', ' ')} model, but the "
                          f"student's task is {spec.task.replace('_', ' ')} (pass --task {teacher_task})")
    mapping = None
    if teacher_task == "classification":  # teacher output i and student label i must be one class: match by name
        examples = align_to_model(examples, teacher)
        mapping = label_mapping(teacher)
    train_set = subsample(examples, spec.data_size, spec.seed)
    labels = num_labels(train_set, spec.task)
    base_path = on_main(lambda: resolve_base(st.base, train_set, out, spec.seed))
    scorer = st.scorer
    if scorer is None and teacher is not None and alpha > 0:
        from ..models.decoder import read_marker

        scorer = read_marker(resolve_model(teacher)).get("scorer")
    check_student(base_path, student_layers=st.layers, student_init=st.init, student_model=st.model)
    params = {**layering_params(spec, teacher, base_path, examples, scorer), **precision_params(rt)}
    finished = (out / "metrics.json").exists() and (out / "model" / "config.json").exists()

    def begin():
        done = start_phase(out, params, resume=resume, finished=finished)
        if done is None and not resume:  # a fresh start never reuses rounds of an earlier run in this folder
            for stale in out.glob("round-*/round.json"):
                stale.unlink()
        return done

    done = on_main(begin)
    if done is not None:
        return done
    cache = Path(cache_dir) if cache_dir is not None and not spec.online_teacher else None
    rounds: list[dict] = []
    current_teacher = teacher
    iterations = spec.iterations
    for k in range(1, iterations + 1):
        round_dir = out if iterations == 1 else out / f"round-{k}"
        tag = description if iterations == 1 else f"{description} {k}/{iterations}"
        round_params = {**params, "round": k}
        previous = _finished_round(round_dir, round_params) if resume and iterations > 1 else None
        if previous is not None:  # --iterations K resumes after the last finished round
            rounds.append(previous)
        else:
            job = Round(spec, base_path, PhaseRun(round_dir, resume, quiet, tag, rt), seed=spec.seed + k - 1,
                        cache_dir=cache, num_labels=labels, scorer=scorer,
                        label_names=class_names(train_set, spec.task))
            rounds.append(_one_round(current_teacher, train_set, round_dir, job))
            if iterations > 1 and is_main():
                write_json({"params": round_params, "result": rounds[-1]}, round_dir / "round.json")
        current_teacher = str(round_dir / "model")
    return on_main(lambda: _write_layering(out, rounds, teacher, spec, train_set, params, rt, mapping))


def layering_params(spec: LayeringSpec, teacher: str | None, base_path: str, examples: Sequence[MCExample],
                    scorer: str | None) -> dict:
    """The resume record. Models are identified by their weights' fingerprint, not their path: a moved run
    folder resumes."""
    d, st = spec.distill, spec.student
    # at alpha = 0 no teacher is read, so neither is how its signal would be distilled: a CE-only student of a run
    # with loss kl is the same work as one of a run with loss mse (a sweep shares it: experiments/sharing.py)
    distilled = d.alpha > 0
    return {
        "phase": "layering", "teacher_fingerprint": model_fingerprint(teacher) if distilled else None,
        "base_fingerprint": model_fingerprint(base_path) if not st.pretrained else None,
        "student_model_fingerprint": model_fingerprint(st.model) if st.pretrained else None,
        "student_layers": st.layers if not st.pretrained else None, "student_init": st.init,
        "loss": d.kind if distilled else None, "alpha": d.alpha, "temperature": d.temperature if distilled else None,
        "beta": d.beta if distilled else None, "data_size": spec.data_size, "epochs": spec.epochs,
        "iterations": spec.iterations, "lr": spec.lr, "batch_size": spec.batch_size, "max_length": spec.max_length,
        "online_teacher": spec.online_teacher if distilled else None, "seed": spec.seed,
        "data_hash": examples_hash(examples), "n_examples": len(examples),
        **({"task": spec.task} if spec.task != "multiple_choice" else {}), **({"scorer": scorer} if scorer else {}),
    }


def _write_layering(out: Path, rounds: list[dict], teacher: str | None, spec: LayeringSpec, train_set,
                    params: dict, rt: Runtime, mapping: str | None = None) -> dict:
    """Rank 0 (or the only process): the last round's model as the phase's, and metrics.json."""
    d, st, iterations = spec.distill, spec.student, spec.iterations
    if iterations > 1:
        save_dir = out / "model"
        if save_dir.exists():
            shutil.rmtree(save_dir)
        shutil.copytree(out / f"round-{iterations}" / "model", save_dir)
    last = rounds[-1]
    metrics = {
        "phase": "layering", "teacher": teacher, "model_dir": str(out / "model"), "base_model": st.base,
        "student_layers": st.layers, "student_init": st.init, "loss": d.kind, "alpha": d.alpha,
        "temperature": d.temperature, "beta": d.beta, "epochs": spec.epochs, "iterations": iterations,
        "n_examples": len(train_set), "data_hash": examples_hash(train_set), "online_teacher": spec.online_teacher,
        "train_accuracy": last["train_accuracy"], "max_length": last.get("max_length"), "rounds": rounds,
        "timings": {k: sum(r["timings"].get(k, 0.0) for r in rounds) for k in ("teacher_logits_s", "train_s")},
        "params": params, "runtime": {"device": rt.device, "precision": rt.precision},
        **({"label_mapping": mapping} if mapping else {}),  # how the data met the teacher's outputs
    }
    write_json(metrics, out / "metrics.json")
    return metrics


def _finished_round(round_dir: Path, round_params: dict) -> dict | None:
    """The record of a finished round with these parameters, or None (to be (re)trained)."""
    record = round_dir / "round.json"
    if not (record.exists() and (round_dir / "model" / "config.json").exists()):
        return None
    saved = read_json(record)
    if differences(saved.get("params") or {}, round_params):
        raise ResumeMismatch(mismatch_line(str(round_dir), saved.get("params") or {}, round_params))
    return saved["result"]


@dataclass(frozen=True)
class Round:
    """One round's job besides its teacher and data: the spec, the resolved student base, where and how it
    runs, its seed (the phase's seed + round - 1), the logit cache, the label count and names, and the scorer."""

    spec: LayeringSpec
    base_path: str
    run: PhaseRun
    seed: int
    cache_dir: Path | None = None
    num_labels: int | None = None
    scorer: str | None = None
    label_names: tuple[str, ...] | None = None


def _one_round(teacher, train_set, out: Path, job: Round) -> dict:
    spec, st, run, seed = job.spec, job.spec.student, job.run, job.seed
    loss, alpha, temperature, beta = (spec.distill.kind, spec.distill.alpha, spec.distill.temperature,
                                      spec.distill.beta)
    task, max_length, batch_size = spec.task, spec.max_length, spec.batch_size
    timings: dict = {}
    out.mkdir(parents=True, exist_ok=True)
    rt = run.runtime
    student = load_student(job.base_path, init=st.init, num_layers=st.layers, seed=seed, student_model=st.model,
                           task=task, num_labels=job.num_labels, scorer=job.scorer, device=rt.device,
                           label_names=job.label_names)
    student_path = st.model if st.pretrained else job.base_path
    data = encode(student_path, train_set, max_length, task)
    batcher = MCBatcher(data.encoded, batch_size, shuffle=True, seed=seed, pad_token_id=data.pad_token_id)
    info: dict = {"cache": "unused"}
    cached: torch.Tensor | None = None
    teacher_net = teacher_batcher = None
    if alpha > 0 and spec.online_teacher:
        teacher_net = load_model(teacher, device=rt.device).eval()
        tdata = encode(teacher, train_set, max_length, task)
        teacher_batcher = MCBatcher(tdata.encoded, batch_size, shuffle=False, pad_token_id=tdata.pad_token_id)
        info = {"cache": "online"}
    elif alpha > 0:
        with timed(timings, "teacher_logits_s"):
            cached, info = on_main(lambda: teacher_logits(teacher, train_set, max_length=max_length,
                                                          cache_dir=job.cache_dir, quiet=run.quiet, device=rt))
        cached = cached.to(rt.device)  # once: each step indexes its rows there

    def loss_fn(m, batch):
        logits = choice_logits(m, batch)
        if alpha == 0:
            return distill_loss(logits, None, batch.labels, alpha=0.0), logits
        if teacher_net is not None:
            with torch.no_grad():  # batch.index is on the host (Runtime.to_device): no sync to read it
                t = choice_logits(teacher_net, rt.to_device(teacher_batcher.collate(batch.index.tolist())))
        else:
            t = cached[batch.index]
        t = t[:, : logits.shape[1]]
        if loss == "hard":  # the teacher's argmax as labels (its choice among the live entries)
            value = alpha * cross_entropy(logits, t.argmax(-1))
            if alpha < 1:
                value = value + (1 - alpha) * cross_entropy(logits, batch.labels)
            return value, logits
        value = distill_loss(logits, t, batch.labels, kind=loss, alpha=alpha, temperature=temperature, beta=beta)
        return value, logits

    cfg = TrainConfig(epochs=spec.epochs, lr=spec.lr, batch_size=batch_size, seed=seed)
    with timed(timings, "train_s"):
        result = train(student, batcher, loss_fn, cfg, checkpoint=out / "checkpoint.pt", resume=run.resume,
                       description=run.description, quiet=run.quiet, runtime=rt)

    def finish() -> dict:  # rank 0 (or the only process) evaluates and writes
        logits = predict_logits(student, data.encoded, pad_token_id=data.pad_token_id, quiet=True, device=rt)
        save_model(student, data.tokenizer, out / "model")
        (out / "checkpoint.pt").unlink(missing_ok=True)
        return {"teacher": teacher, "train_accuracy": accuracy(logits, train_set), "max_length": data.max_length,
                "steps": result.steps, "history": result.history, "teacher_logits": info, "timings": timings}

    return on_main(finish)
