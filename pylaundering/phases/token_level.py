"""Token-level laundering (``--level token``): placement and layering of causal LMs on text.

Placement fine-tunes a causal LM on the benchmark's items written as text (question, options,
answer; data/text.py) with next-token cross-entropy. Layering trains a fresh student on a
legitimate text corpus with token-level distillation against the teacher's next-token
distributions through ``fused_linear_distill_loss``: the LM heads are applied chunk by chunk inside
the op, so no ``[tokens, V]`` logits of either model are held. Integration is the choice-level one:
each choice scored by its log-likelihood after the item's prompt (``loglik``; integration.py
renders the benchmark as prompts for a token-level model).

Teacher and student must share the tokenizer (one vocabulary: token t of one is token t of the
other); ``tiny-gpt`` builds one tokenizer for the run, hub models of one family share theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.schema import MCExample, examples_hash
from ..data.text import TextBatcher, item_text, prompt_examples, text_hash
from ..device import Runtime, score_batch_size
from ..errors import ConfigError
from ..models import load_model, load_student, load_tokenizer, model_fingerprint, save_model
from ..models.loading import BUILT_FROM_DATA, is_decoder
from ..ops import KINDS, SparseTeacher, cross_entropy, fused_linear_distill_loss, topk_teacher
from ..ops.sparse import check_indices
from ..progress import progress_bar
from ..train import cache as logit_cache
from ..train.checkpoint import write_json
from ..train.distributed import on_main
from ..train.evaluate import accuracy, predict_logits
from ..train.loop import TrainConfig, train
from .common import (
    PhaseRun,
    Trained,
    encode,
    model_max_length,
    precision_params,
    resolve_base,
    start_phase,
    timed,
)
from .specs import LEVELS, LayeringSpec, PlacementSpec  # noqa: F401 - LEVELS re-exported for the CLI


def check_decoder(path: str, what: str) -> None:
    if not is_decoder(path):
        raise ConfigError("level", f"token-level laundering needs causal LMs; the {what} {path} is not one "
                          "(use --model tiny-gpt offline, or a GPT-2 / Llama-style folder or hub name)")


def text_length(texts: Sequence[str], tokenizer, model_path: str, max_length: int | None) -> int:
    """``max_length``, or every text whole up to the model's context."""
    if max_length is not None:
        return max_length
    longest = max(len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"])
    limit = model_max_length(model_path, tokenizer)
    return max(2, min(longest, limit) if limit else longest)


#: A token-level step holds at most this share of the [tokens, V] logits in LM-head chunks (at least 64
#: rows): the student and teacher activations are small next to the logits, so the chunk decides the
#: step's peak. Measured with benchmarks/peak_memory.py --op token: docs/performance.md.
TOKEN_CHUNK_SHARE = 16


def token_chunk(rows: int) -> int:
    """Rows per LM-head chunk of a token-level step of ``rows`` predicted tokens."""
    chunk = -(-rows // TOKEN_CHUNK_SHARE)
    return max(1, min(rows, max(64, -(-chunk // 64) * 64)))


class _HiddenStates(torch.nn.Module):
    """The LM's final hidden states (before its head) as the module's forward, so the training loop
    (and DDP) runs the model through forward; the head is applied inside the fused loss."""

    def __init__(self, lm: torch.nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask):
        return self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _lm_loss(m, batch):
    logits = m(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    targets = batch.targets()
    valid = targets != -100
    flat = logits.reshape(-1, logits.shape[-1])
    if flat.dtype in (torch.bfloat16, torch.float16):  # autocast's logits: the fused op reads them as they are
        loss = cross_entropy(flat, targets.reshape(-1))  # (fp32 inside), no fp32 copy of [tokens, V]
    else:
        loss = F.cross_entropy(flat.float(), targets.reshape(-1), ignore_index=-100)
    correct = ((logits.argmax(-1) == targets) & valid).sum()
    return loss, (correct, valid.sum())  # device tensors: the loop reads them at its cadence


def place_tokens(examples: Sequence[MCExample], spec: PlacementSpec, run: PhaseRun) -> dict:
    """Next-token fine-tuning on the items written as text; after each epoch the items are scored
    by loglik after their prompts (the accuracy ``spec.target_accuracy`` stops on)."""
    # placement imports this module to dispatch --level token: imported here, that cycle is broken

    out, rt = run.out, run.runtime
    base = on_main(lambda: resolve_base(spec.model, examples, out, spec.seed))
    check_decoder(base, "model")
    params = {**spec.params(model_fingerprint(base), examples), **precision_params(rt)}
    finished = (out / "metrics.json").exists() and (out / "model" / "config.json").exists()
    done = on_main(lambda: start_phase(out, params, resume=run.resume, finished=finished))
    if done is not None:
        return done
    timings: dict = {}
    texts = [item_text(e) for e in examples]
    tok = load_tokenizer(base)
    length = text_length(texts, tok, base, spec.max_length)
    batcher = TextBatcher.from_texts(texts, tok, length, spec.batch_size, seed=spec.seed)
    net = load_model(base, seed=spec.seed, scorer="loglik", device=rt.device)
    net.level = "token"
    cfg = spec.train_config(len(batcher))
    prompts = encode(base, prompt_examples(examples), spec.max_length)

    def scored() -> float:
        return accuracy(predict_logits(net, prompts.encoded, pad_token_id=prompts.pad_token_id, quiet=True,
                                       device=rt), examples)

    with timed(timings, "train_s"):
        result = train(net.lm, batcher, _lm_loss, cfg, checkpoint=out / "checkpoint.pt", resume=run.resume,
                       description=run.description, quiet=run.quiet, epoch_accuracy=scored, runtime=rt)
    trained = Trained(result, batcher, cfg, timings, length)
    return on_main(lambda: _finish_placement(net, tok, scored, examples, spec, run, trained, params))


def _finish_placement(net, tok, scored, examples, spec: PlacementSpec, run: PhaseRun, trained: Trained,
                      params: dict) -> dict:
    out, result, target_accuracy = run.out, trained.result, spec.target_accuracy
    with timed(trained.timings, "eval_s"):
        net.eval()
        acc = scored()
    save_model(net, tok, out / "model")
    metrics = {
        "phase": "placement", "level": "token", "base_model": spec.model, "model_dir": str(out / "model"),
        "n_examples": len(examples), "data_hash": examples_hash(examples),
        # the items' choices scored by loglik after their prompts: the benchmark accuracy it trained for
        "train_accuracy": acc, "epochs_run": len(result.history), "steps": result.steps,
        "steps_per_epoch": len(trained.batcher), "stop_reason": result.stop_reason,
        "target_accuracy": target_accuracy,
        "reached_target": None if target_accuracy is None else bool(acc >= target_accuracy),
        "stopped_early": result.stopped_early, "history": result.history,
        "config": vars(trained.cfg), "max_length": trained.length, "truncation": trained.batcher.truncation.to_dict(),
        "timings": trained.timings, "params": params, "task": "multiple_choice", "scorer": "loglik",
        "runtime": {"device": run.runtime.device, "precision": run.runtime.precision},
    }
    write_json(metrics, out / "metrics.json")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics


def layer_tokens(teacher: str | None, texts: Sequence[str], spec: LayeringSpec, run: PhaseRun,
                 cache_dir: Path | None = None) -> dict:
    """Distils ``teacher``'s next-token distributions into a fresh student on ``texts``:
    ``alpha * distill + (1 - alpha) * next-token CE`` per token (alpha 0: the CE-only student).

    ``spec.teacher_topk=k``: the teacher runs once over the corpus and its top-k entries per token are cached
    (``cache_dir``, train/cache.py's compact format); training then reads them (the top-k semantics of
    ``topk_distill_loss``: the rest of the teacher's mass in one bucket) instead of running the teacher."""
    d, st, out, rt = spec.distill, spec.student, run.out, run.runtime
    if d.kind not in KINDS:
        raise ConfigError("loss", f"token-level layering distils next-token distributions: use one of "
                          f"{', '.join(KINDS)}, not {d.kind!r}")
    base_path = _base_folder(st.base, teacher)
    student_path = st.model if st.pretrained else base_path
    check_decoder(student_path, "student base")
    if d.alpha > 0:
        check_decoder(teacher, "teacher")
    params = {"phase": "layering", "level": "token",
              "teacher_fingerprint": model_fingerprint(teacher) if d.alpha > 0 else None,
              "base_fingerprint": model_fingerprint(student_path), "student_layers": st.layers,
              # alpha 0 reads no teacher, so neither how its signal would be distilled (as layering_params)
              "student_init": st.init, "loss": d.kind if d.alpha > 0 else None, "alpha": d.alpha,
              "temperature": d.temperature if d.alpha > 0 else None, "beta": d.beta if d.alpha > 0 else None,
              "epochs": spec.epochs, "lr": spec.lr, "batch_size": spec.batch_size,
              "max_length": spec.max_length, "seed": spec.seed, "data_hash": text_hash(texts),
              "n_documents": len(texts),
              **({"teacher_topk": spec.teacher_topk} if spec.teacher_topk and d.alpha > 0 else {}),
              **precision_params(rt)}
    finished = (out / "metrics.json").exists() and (out / "model" / "config.json").exists()
    done = on_main(lambda: start_phase(out, params, resume=run.resume, finished=finished))
    if done is not None:
        return done
    timings: dict = {}
    tok = load_tokenizer(student_path)
    student = load_student(base_path, init=st.init, num_layers=st.layers, seed=spec.seed, student_model=st.model,
                           scorer="loglik", device=rt.device)
    student.level = "token"
    teacher_lm = None
    if d.alpha > 0:
        if load_tokenizer(teacher).get_vocab() != tok.get_vocab():
            raise ConfigError("teacher", "token-level distillation needs one vocabulary: the teacher's tokenizer "
                              f"differs from the student's ({student_path}); use the teacher's base as --base")
        teacher_lm = load_model(teacher, device=rt.device).lm.eval()
        for p in teacher_lm.parameters():
            p.requires_grad_(False)
    length = text_length(texts, tok, student_path, spec.max_length)
    batcher = TextBatcher.from_texts(texts, tok, length, spec.batch_size, seed=spec.seed)

    head = student.lm.get_output_embeddings()
    sparse = None
    info = {"cache": "online (fused linear: no logits held)"}
    topk = spec.teacher_topk
    if teacher_lm is not None and topk:
        if not 1 <= topk <= head.weight.shape[0]:
            raise ConfigError("teacher_topk", f"must lie in [1, {head.weight.shape[0]}] (the vocabulary), "
                              f"got {topk}")
        with timed(timings, "teacher_logits_s"):
            sparse, starts, info = on_main(lambda: teacher_topk_cache(teacher, teacher_lm, batcher, topk,
                                                                      d.temperature, cache_dir, run.quiet, device=rt))
        sparse = SparseTeacher(*(x.to(rt.device) if isinstance(x, torch.Tensor) else x for x in sparse))  # once
        check_indices(sparse.indices, head.weight.shape[0])  # once here; each step's slice is not checked again
        teacher_lm = None  # training reads the cache

    loss_fn = token_loss(spec, head, teacher_lm, sparse, starts if sparse is not None else None, rt)
    cfg = TrainConfig(epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size, seed=spec.seed)
    with timed(timings, "train_s"):
        result = train(_HiddenStates(student.lm), batcher, loss_fn, cfg, checkpoint=out / "checkpoint.pt",
                       resume=run.resume, description=run.description, quiet=run.quiet, runtime=rt)
    trained = Trained(result, batcher, cfg, timings, length, info)
    return on_main(lambda: _finish_layering(student, tok, teacher, texts, spec, out, trained, params))


def token_loss(spec: LayeringSpec, head, teacher_lm, sparse: SparseTeacher | None, starts: list[int] | None,
               rt: Runtime, *, masked: bool | None = None):
    """The token-level step's loss: ``loss_fn(m, batch)`` with ``m`` the student's hidden states (DDP-wrapped
    under torchrun), distilled through ``fused_linear_distill_loss`` from the online teacher ``teacher_lm``, the
    cached top-k teacher ``sparse`` (document d's rows from ``starts[d]``), or nothing (alpha 0).

    ``masked`` (default: on the CPU): the predicted positions are picked out by the padding mask, which reads the
    mask on the host; else (a GPU) every position goes in, the padding's labels at -100 so the op skips them, and
    nothing is read. Both give one loss (per counted token), up to float rounding. At bf16/fp16 the op's inputs
    (hidden states, heads, top-k values) are cast to that dtype, as autocast casts a linear's, and the op runs
    outside autocast: it computes the chunk logits in that dtype, accumulating in fp32."""
    d = spec.distill
    masked = (not rt.cuda) if masked is None else masked

    def loss_fn(m, batch):
        targets = batch.targets()
        h = m(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[:, :-1]
        if masked:
            valid = targets != -100
            pick, labels = (lambda x: x[valid]), targets[valid]
        else:
            pick, labels = (lambda x: x.reshape(-1, x.shape[-1])), targets.reshape(-1)
        t = None
        if sparse is not None:
            rows = _sparse_rows(batch.index.tolist(), starts, None if masked else targets.shape[1])
            t = sparse._replace(values=rt.cast(sparse.values[rows]), indices=sparse.indices[rows],
                                log_normalizer=sparse.log_normalizer[rows])
        elif teacher_lm is not None:
            with torch.no_grad():
                th = teacher_lm.base_model(input_ids=batch.input_ids,
                                           attention_mask=batch.attention_mask).last_hidden_state
            t_head = teacher_lm.get_output_embeddings()
            t = (rt.cast(pick(th[:, :-1])), rt.cast(t_head.weight), rt.cast(t_head.bias))
        hs = rt.cast(pick(h))
        with rt.exact():
            value = fused_linear_distill_loss(hs, rt.cast(head.weight), t, labels, student_bias=rt.cast(head.bias),
                                              kind=d.kind, alpha=d.alpha, temperature=d.temperature, beta=d.beta,
                                              chunk_size=token_chunk(hs.shape[0]),
                                              _teacher_indices_checked=sparse is not None)
        return value, None

    return loss_fn


def _sparse_rows(docs: list[int], starts: list[int], width: int | None) -> torch.Tensor:
    """The cached top-k rows of the batch's documents ``docs``: their predicted tokens in order (``width``
    None), or ``width`` positions per document with the padding's pointing at row 0 (its label is ignored)."""
    if width is None:
        return torch.cat([torch.arange(starts[d], starts[d + 1]) for d in docs])
    return torch.tensor([[starts[d] + j if starts[d] + j < starts[d + 1] else 0 for j in range(width)]
                         for d in docs], dtype=torch.long).reshape(-1)


def teacher_topk_cache(teacher: str, teacher_lm, batcher: TextBatcher, k: int, temperature: float,
                       cache_dir: Path | None, quiet: bool, device: Runtime | None = None):
    """(SparseTeacher of every predicted token of the corpus, on the CPU; document start rows; info): document
    d's tokens 0..n-2 (each predicting the next) are rows starts[d]..starts[d+1]-1. Read from the cache when
    the teacher, the token ids, k and T match; else computed batch by batch and written. On a GPU (``device``)
    the teacher runs there, at fp32 (as the choice-level cache: one cache for every precision), in batches sized
    from its free memory; on the CPU in the batcher's batches."""
    import hashlib
    import json

    rt = Runtime(device.device) if device is not None else Runtime()

    lengths = [max(0, len(ids) - 1) for ids in batcher.ids]
    starts = [0]
    for n in lengths:
        starts.append(starts[-1] + n)
    inputs = hashlib.sha256(json.dumps({"ids": batcher.ids, "k": k, "T": temperature}).encode()).hexdigest()
    key = logit_cache.cache_key(model_fingerprint=model_fingerprint(teacher), inputs=inputs)
    doc_ids = [str(n) for n in lengths]
    if cache_dir is not None:
        hit = logit_cache.load_cached(cache_dir, key, doc_ids)
        if hit is not None and isinstance(hit.values, SparseTeacher):
            return hit.values, starts, {"cache": "hit", "format": "topk", "k": k, "path": str(hit.path)}
    parts = []
    size = score_batch_size(rt, items=len(batcher.ids), sequences_per_item=1, length=batcher_length(batcher),
                            config=teacher_lm.config, vocab=int(teacher_lm.config.vocab_size),
                            requested=None if rt.cuda else batcher.batch_size)
    order = [list(range(i, min(i + size, len(batcher.ids)))) for i in range(0, len(batcher.ids), size)]
    with torch.no_grad(), progress_bar(len(order), "teacher top-k", quiet=quiet) as bar:
        for rows in order:
            batch = rt.to_device(batcher.collate(rows))
            valid = batch.targets() != -100
            logits = teacher_lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
            parts.append(topk_teacher(logits[valid], k, temperature))
            bar.advance(1)
    sparse = SparseTeacher(torch.cat([p.values for p in parts]).cpu(), torch.cat([p.indices for p in parts]).cpu(),
                           torch.cat([p.log_normalizer for p in parts]).cpu(), temperature)
    info = {"cache": "miss" if cache_dir is not None else "off", "format": "topk", "k": k}
    if cache_dir is not None:
        path = logit_cache.save_cached(cache_dir, key, sparse, doc_ids, vocab=int(teacher_lm.config.vocab_size))
        info["path"] = str(path)
        # what training will read: the stored (fp16 log-probability) values, as a later hit would
        sparse = logit_cache.load_cached(cache_dir, key, doc_ids).values
    return sparse, starts, info


def batcher_length(batcher: TextBatcher) -> int:
    """The longest document of a text batcher, in tokens."""
    return max((len(ids) for ids in batcher.ids), default=1)


def _finish_layering(student, tok, teacher, texts, spec: LayeringSpec, out: Path, trained: Trained,
                     params: dict) -> dict:
    save_model(student, tok, out / "model")
    d, st, result, timings, info = spec.distill, spec.student, trained.result, trained.timings, trained.info
    metrics = {
        "phase": "layering", "level": "token", "teacher": teacher, "model_dir": str(out / "model"),
        "base_model": st.base, "student_layers": st.layers, "student_init": st.init, "loss": d.kind,
        "alpha": d.alpha, "temperature": d.temperature, "beta": d.beta, "epochs": spec.epochs, "iterations": 1,
        "n_documents": len(texts), "data_hash": params["data_hash"], "online_teacher": True, "train_accuracy": None,
        "max_length": trained.length, "truncation": trained.batcher.truncation.to_dict(), "history": result.history,
        "steps": result.steps, "timings": {"teacher_logits_s": 0.0, **timings}, "params": params,
        "teacher_logits": info,
        "rounds": [{"teacher": teacher, "train_accuracy": None, "timings": timings,
                    "teacher_logits": info}],
    }
    write_json(metrics, out / "metrics.json")
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics


def _base_folder(base: str, teacher: str | None) -> str:
    """``tiny-gpt`` here means the base the teacher was placed from (its tokenizer was trained on the
    run's texts; a new one would not share the teacher's vocabulary)."""
    if base not in BUILT_FROM_DATA:
        return base
    if teacher:  # `launder place --out T` builds it in T; `launder run --out R` in R (teacher in R/teacher)
        for placed in (Path(teacher).parent / f"base-{base}", Path(teacher).parent.parent / f"base-{base}"):
            if (placed / "config.json").exists():
                return str(placed)
    raise ConfigError("base", f"{base!r} is built from a run's texts; for token-level layering pass the folder the "
                      f"teacher was placed from (launder place wrote it to OUT/base-{base})")


def corpus_texts(examples: Sequence[MCExample] | None, corpus: Sequence[str] | None) -> list[str]:
    """The legitimate corpus: given texts, or a legitimate item set written with its own labels."""
    if corpus is not None:
        return list(corpus)
    return [item_text(e) for e in examples or []]

