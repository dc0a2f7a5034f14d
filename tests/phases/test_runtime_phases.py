"""The phases at another precision and through the GPU's code paths, on the CPU: bf16 autocast trains and
scores (choice and token level), its precision is in the resume record (fp32's is not: older records still
match), and the token-level loss the GPU takes (every position in, the padding's labels ignored) is the
CPU's (the predicted positions picked out)."""

from __future__ import annotations

import math

import pytest
import torch

from pylaundering.data.synth import make_synthetic
from pylaundering.data.text import TextBatcher, item_text
from pylaundering.device import Runtime
from pylaundering.errors import ResumeMismatch
from pylaundering.models import load_model, load_tokenizer
from pylaundering.models.decoder import build_tiny_gpt
from pylaundering.ops import topk_teacher
from pylaundering.phases import integrate, layer, place
from pylaundering.phases.common import example_texts
from pylaundering.phases.layering import teacher_logits
from pylaundering.phases.specs import LayeringSpec
from pylaundering.phases.token_level import token_loss
from pylaundering.train.checkpoint import read_json

BF16 = Runtime("cpu", "bf16")


def _finite(history):
    return history and all(math.isfinite(h["loss"]) for h in history)


def test_bf16_on_the_cpu_places_distils_and_scores_and_records_its_precision(small_data, tmp_path):
    bench, train = small_data
    train = train[:16]
    t = place(bench + train, tmp_path / "t", model="tiny", epochs=2, batch_size=8, quiet=True, device=BF16)
    assert _finite(t["history"]) and t["runtime"] == {"device": "cpu", "precision": "bf16"}
    assert t["params"]["precision"] == "bf16"
    s = layer(t["model_dir"], train, tmp_path / "s", base=str(tmp_path / "t" / "base-tiny"), student_layers=1,
              epochs=1, batch_size=8, quiet=True, device=BF16)
    assert _finite(s["rounds"][0]["history"]) and read_json(tmp_path / "s" / "phase.json")["params"]["precision"] \
        == "bf16"
    # the teacher's logits are computed at fp32 whatever the run's precision: one cache serves every precision
    fp32, _ = teacher_logits(t["model_dir"], train, max_length=None, cache_dir=None, quiet=True)
    at_bf16, _ = teacher_logits(t["model_dir"], train, max_length=None, cache_dir=None, quiet=True, device=BF16)
    assert torch.equal(fp32, at_bf16)
    m = integrate(s["model_dir"], bench[:8], None, quiet=True, device=BF16)
    assert 0 <= m["accuracy"] <= 1
    with pytest.raises(ResumeMismatch, match=r"precision \('bf16' -> None\)"):  # not continued at fp32
        place(bench + train, tmp_path / "t", model="tiny", epochs=2, batch_size=8, quiet=True, resume=True,
              device="cpu")


def test_an_fp32_record_has_no_precision_key_so_older_records_still_match(small_data, tmp_path):
    bench, _ = small_data
    place(bench[:8], tmp_path / "t", model="tiny", epochs=1, batch_size=8, quiet=True, device="cpu")
    assert "precision" not in read_json(tmp_path / "t" / "phase.json")["params"]


def test_scoring_batches_default_to_64_on_the_cpu(small_data, tiny_teacher):
    bench, _ = small_data
    a = integrate(str(tiny_teacher), bench, None, quiet=True, device="cpu")
    b = integrate(str(tiny_teacher), bench, None, quiet=True, batch_size=64)
    assert a["correct_mask"] == b["correct_mask"] and a["accuracy"] == b["accuracy"]


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    bench, train = make_synthetic(seed=1, n_benchmark=12, n_train=16)
    texts = list(example_texts(bench + train)) + [item_text(e) for e in bench + train]
    return str(build_tiny_gpt(texts, tmp_path_factory.mktemp("gpt") / "base-tiny-gpt", seed=0)), bench, train


def test_bf16_token_level_places_and_distils_through_the_fused_ops(gpt, tmp_path):
    base, bench, train = gpt
    t = place(bench[:8], tmp_path / "t", model=base, epochs=1, batch_size=8, level="token", quiet=True, device=BF16)
    assert _finite(t["history"]) and t["params"]["precision"] == "bf16"
    for topk, name in ((None, "online"), (4, "topk")):
        s = layer(t["model_dir"], train[:8], tmp_path / name, base=base, student_layers=1, epochs=1, batch_size=8,
                  level="token", teacher_topk=topk, cache_dir=tmp_path / "c", quiet=True, device=BF16)
        assert _finite(s["history"]), name


@pytest.mark.parametrize("teacher_kind", ["online", "topk", "none"])
def test_the_gpu_token_loss_equals_the_cpu_one(gpt, teacher_kind):
    base, _, train = gpt
    torch.manual_seed(0)
    student = load_model(base, seed=1, scorer="loglik").lm
    teacher = load_model(base, seed=2, random_init=True, scorer="loglik").lm.eval()
    tok = load_tokenizer(base)
    batcher = TextBatcher.from_texts([item_text(e) for e in train[:6]], tok, 48, 6, shuffle=False)
    batch = batcher.collate([0, 3, 5, 1])  # documents of different lengths: padding in every row but one
    spec = LayeringSpec.of(loss="jsd", alpha=0.0 if teacher_kind == "none" else 0.6, temperature=2.0,
                           level="token")
    sparse = starts = None
    if teacher_kind == "topk":
        lengths = [len(ids) - 1 for ids in batcher.ids]
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        with torch.no_grad():
            rows = [topk_teacher(teacher(input_ids=torch.tensor(ids)[None]).logits[0, :-1], 5, 2.0)
                    for ids in batcher.ids]
        sparse = type(rows[0])(torch.cat([r.values for r in rows]), torch.cat([r.indices for r in rows]),
                               torch.cat([r.log_normalizer for r in rows]), 2.0)
    online = teacher if teacher_kind == "online" else None
    head = student.get_output_embeddings()

    def hidden(input_ids, attention_mask):
        return student.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    values, grads = [], []
    for masked in (True, False):
        student.zero_grad()
        loss, _ = token_loss(spec, head, online, sparse, starts, Runtime(), masked=masked)(hidden, batch)
        loss.backward()
        values.append(loss.detach())
        grads.append(head.weight.grad.clone())
    torch.testing.assert_close(values[0], values[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
