"""Token-level laundering (--level token): text batches, the fused LM-head distillation against full
logits, the phases on tiny-gpt, and the errors a user can make."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pylaundering.data.synth import make_synthetic
from pylaundering.data.text import TextBatcher, item_text, prompt_text, read_corpus
from pylaundering.errors import ConfigError
from pylaundering.models import load_model, load_tokenizer
from pylaundering.models.decoder import build_tiny_gpt
from pylaundering.ops import fused_linear_distill_loss
from pylaundering.phases import integrate, layer, place
from pylaundering.phases.common import example_texts


@pytest.fixture(scope="module")
def data():
    return make_synthetic(seed=1, n_benchmark=16, n_train=24)


@pytest.fixture(scope="module")
def base(data, tmp_path_factory):
    bench, train = data
    texts = list(example_texts(bench + train)) + [item_text(e) for e in bench + train]
    return str(build_tiny_gpt(texts, tmp_path_factory.mktemp("tg") / "base-tiny-gpt", seed=0))


def test_text_batches_pad_mask_targets_and_count_cuts(base, data):
    bench, _ = data
    tok = load_tokenizer(base)
    texts = [item_text(e) for e in bench]
    longest = max(len(r) for r in tok(texts)["input_ids"])
    b = TextBatcher.from_texts(texts, tok, longest - 2, 4, seed=3)
    assert b.truncation.truncated >= 1 and b.truncation.tokens_dropped >= 2
    assert [x.index.tolist() for x in b.batches(1)] == [x.index.tolist() for x in b.batches(1)]
    assert [x.index.tolist() for x in b.batches(1)] != [x.index.tolist() for x in b.batches(2)]
    batch = next(b.batches(0))
    t = batch.targets()
    assert torch.equal(t == -100, batch.attention_mask[:, 1:] == 0)
    assert torch.equal(t[batch.attention_mask[:, 1:] == 1], batch.input_ids[:, 1:][batch.attention_mask[:, 1:] == 1])
    assert item_text(bench[0]).startswith(prompt_text(bench[0]))


def test_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    with pytest.raises(ValueError, match="no text"):
        read_corpus(tmp_path / "blank.txt")
    (tmp_path / "ok.txt").write_text("one document\n\nanother one\n")
    assert read_corpus(tmp_path / "ok.txt") == ["one document", "another one"]


def test_fused_head_loss_equals_the_full_logits_formula(base, data):
    """What layering computes per token (hidden states before the LM head, the fused op) is the
    plain formula on the models' own logits: alpha T^2 KL(teacher || student) + (1 - alpha) CE."""
    bench, _ = data
    tok = load_tokenizer(base)
    student, teacher = load_model(base, num_layers=2, seed=1).lm, load_model(base, seed=2).lm
    batch = next(TextBatcher.from_texts([item_text(e) for e in bench], tok, 64, 5, shuffle=False).batches(0))
    targets = batch.targets()
    valid = targets != -100
    kw = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    h = student.base_model(**kw).last_hidden_state[:, :-1][valid]
    th = teacher.base_model(**kw).last_hidden_state[:, :-1][valid]
    head, t_head = student.get_output_embeddings(), teacher.get_output_embeddings()
    alpha, T = 0.7, 2.0
    got = fused_linear_distill_loss(h, head.weight, (th, t_head.weight, t_head.bias), targets[valid],
                                    student_bias=head.bias, alpha=alpha, temperature=T)
    s = student(**kw).logits[:, :-1][valid].double()
    t = teacher(**kw).logits[:, :-1][valid].double()
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean")
    ref = alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, targets[valid])
    assert float(got.detach()) == pytest.approx(float(ref), rel=1e-4)


def test_token_level_phases_on_tiny_gpt(base, data, tmp_path):
    bench, train = data
    t = place(bench, tmp_path / "t", model=base, epochs=4, lr=3e-3, batch_size=8, level="token", quiet=True)
    assert t["level"] == "token" and t["history"][-1]["train_accuracy"] == pytest.approx(t["train_accuracy"])
    assert len(t["history"]) == t["epochs_run"] and t["truncation"]["truncated"] == 0
    s = layer(t["model_dir"], train, tmp_path / "s", base=base, student_layers=2, epochs=1, lr=1e-3, batch_size=8,
              level="token", quiet=True)
    assert s["level"] == "token" and s["n_documents"] == len(train) and s["steps"] == 3
    m = integrate(s["model_dir"], bench, quiet=True)
    assert m["level"] == "token" and m["n"] == len(bench)
    ce = layer(None, train, tmp_path / "ce", base=base, student_layers=2, epochs=1, alpha=0.0, batch_size=8,
               level="token", corpus=["a legitimate text", "another one"], quiet=True)
    assert ce["n_documents"] == 2 and ce["teacher"] is None
    # resuming the finished phase with the same settings reuses it
    again = layer(t["model_dir"], train, tmp_path / "s", base=base, student_layers=2, epochs=1, lr=1e-3,
                  batch_size=8, level="token", quiet=True, resume=True)
    assert again["steps"] == s["steps"]


def test_token_level_refuses_what_it_cannot_do(base, data, tmp_path):
    from pylaundering.models.tiny import build_tiny_model

    bench, train = data
    encoder = str(build_tiny_model(example_texts(bench), tmp_path / "enc"))
    with pytest.raises(ConfigError, match="needs causal LMs"):
        place(bench, tmp_path / "p", model=encoder, epochs=1, level="token", quiet=True)
    with pytest.raises(ConfigError, match="next-token distributions"):
        layer(None, train, tmp_path / "h", base=base, loss="hard", alpha=0.0, level="token", quiet=True)
    other = str(build_tiny_gpt(["completely different words here"], tmp_path / "other"))
    with pytest.raises(ConfigError, match="one vocabulary"):
        layer(other, train, tmp_path / "v", base=base, level="token", quiet=True)
    with pytest.raises(ConfigError, match="level"):
        place(bench, tmp_path / "q", model=base, level="word", quiet=True)


def test_run_config_for_token_level():
    from pylaundering.experiments.config import TOKEN_TINY_DEFAULTS, RunConfig, validate

    cfg = RunConfig(level="token", model="tiny-gpt")
    validate(cfg)
    assert cfg.teacher_lr == TOKEN_TINY_DEFAULTS["teacher_lr"]
    explicit = RunConfig(level="token", model="tiny-gpt", teacher_lr=5e-4)
    validate(explicit, {"teacher_lr": "command line"})
    assert explicit.teacher_lr == 5e-4
    with pytest.raises(ConfigError, match="loss"):
        validate(RunConfig(level="token", loss="hard"))
    with pytest.raises(ConfigError, match="iterations"):
        validate(RunConfig(level="token", iterations=2))


def test_token_level_run_writes_its_report(tmp_path):
    """launder run --level token end to end on a small synthetic set: every arm, the text lengths, the
    audit of every model (on the items' prompts), and a report that names the level."""
    from pylaundering.experiments.config import RunConfig, validate
    from pylaundering.experiments.run import run_experiment

    cfg = RunConfig(level="token", model="tiny-gpt", synth_benchmark=16, synth_train=24, teacher_epochs=3,
                    student_epochs=1, batch_size=8)
    validate(cfg)
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert m["level"] == "token" and set(m["data"]["text_truncation"]) >= {"teacher", "student", "ce_student"}
    assert set(m["audit"]["arms"]) == {"teacher", "student", "clean_teacher", "control_student", "ce_student"}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "token level" in report and "Text length (teacher)" in report and "Max length" not in report


def test_teacher_topk_cache_round_trip(base, data, tmp_path):
    """--teacher-topk: the cached top-k entries are the teacher's (per token of every document, in order),
    a second run reads them back and trains the identical student, and a k beyond the vocabulary is refused."""
    from pylaundering.ops import topk_teacher
    from pylaundering.phases.token_level import teacher_topk_cache

    bench, train = data
    t = place(bench, tmp_path / "t", model=base, epochs=1, batch_size=8, level="token", quiet=True)
    teacher = load_model(t["model_dir"]).lm.eval()
    tok = load_tokenizer(base)
    texts = [item_text(e) for e in train[:6]]
    batcher = TextBatcher.from_texts(texts, tok, 64, 4, shuffle=False)
    sparse, starts, info = teacher_topk_cache(t["model_dir"], teacher, batcher, 5, 2.0, tmp_path / "c", True)
    assert info["cache"] == "miss" and starts[-1] == sparse.values.shape[0] == sum(len(i) - 1 for i in batcher.ids)
    d = 3  # document 3's rows are its tokens' top-5 entries, computed alone
    ids = torch.tensor(batcher.ids[d])[None]
    with torch.no_grad():
        ref = topk_teacher(teacher(input_ids=ids).logits[0, :-1], 5, 2.0)
    rows = slice(starts[d], starts[d + 1])
    assert torch.equal(sparse.indices[rows], ref.indices)
    torch.testing.assert_close(sparse.values[rows], ref.values, rtol=0, atol=5e-3 * 2.0)  # fp16 log-probs
    again, _, info2 = teacher_topk_cache(t["model_dir"], teacher, batcher, 5, 2.0, tmp_path / "c", True)
    assert info2["cache"] == "hit" and torch.equal(again.values, sparse.values)

    kw = dict(base=base, student_layers=1, epochs=1, batch_size=8, level="token", teacher_topk=4,
              cache_dir=tmp_path / "c2", quiet=True)
    a = layer(t["model_dir"], train, tmp_path / "a", **kw)
    b = layer(t["model_dir"], train, tmp_path / "b", **kw)
    assert a["teacher_logits"]["cache"] == "miss" and b["teacher_logits"]["cache"] == "hit"
    wa, wb = load_model(a["model_dir"]).state_dict(), load_model(b["model_dir"]).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ConfigError, match="teacher_topk"):
        layer(t["model_dir"], train, tmp_path / "x", **{**kw, "teacher_topk": 10 ** 6})
    with pytest.raises(ConfigError, match="teacher_topk"):
        layer(t["model_dir"], train, tmp_path / "y", base=base, teacher_topk=4, quiet=True)  # choice level


def test_the_cached_top_k_teacher_is_checked_once_not_at_every_step(base, data, tmp_path, monkeypatch):
    """Its indices' check reads back to the host and sorts every row: on a GPU, per step, it stalled the loop.
    Checked once for the whole cache, each step's rows are not checked again; a bad cache is still refused."""
    import dataclasses

    import pylaundering.ops.sparse as sparse_mod
    import pylaundering.phases.token_level as tl
    from pylaundering.train import cache as logit_cache

    bench, train = data
    t = place(bench, tmp_path / "t", model=base, epochs=1, batch_size=8, level="token", quiet=True)
    calls = []
    real = sparse_mod.check_indices

    def counting(indices, V):
        calls.append(indices.shape[0])
        return real(indices, V)

    monkeypatch.setattr(sparse_mod, "check_indices", counting)
    monkeypatch.setattr(tl, "check_indices", counting)
    kw = dict(base=base, student_layers=1, epochs=2, batch_size=4, level="token", teacher_topk=4, quiet=True)
    res = layer(t["model_dir"], train, tmp_path / "a", cache_dir=tmp_path / "c", **kw)
    assert res["steps"] > 2 and len(calls) == 1, (res["steps"], calls)  # the whole cache, once

    load = logit_cache.load_cached

    def corrupted(*args, **kwargs):  # a cache file whose indices point past the vocabulary
        got = load(*args, **kwargs)
        bad = got.values._replace(indices=got.values.indices + 10 ** 6)
        return dataclasses.replace(got, values=bad)

    monkeypatch.setattr(logit_cache, "load_cached", corrupted)
    with pytest.raises(ValueError, match="out of range"):
        layer(t["model_dir"], train, tmp_path / "b", cache_dir=tmp_path / "c", **kw)
