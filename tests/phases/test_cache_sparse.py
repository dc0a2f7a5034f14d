"""Sparse teachers (top-k, sampled) in the teacher-logit cache: compact, and what comes back is the teacher."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import pylaundering.ops as O
from pylaundering.train.cache import cache_path, load_cached, save_cached

IDS = ["a", "b", "c", "d"]


def _logits(V, seed=0):
    return torch.randn(len(IDS), V, generator=torch.Generator().manual_seed(seed)) * 4


@pytest.mark.parametrize("V, k, index_bytes", [(32_000, 128, 2), (128_256, 128, 4), (50, 50, 2)])
def test_topk_round_trip_is_compact_and_keeps_the_loss(tmp_path, V, k, index_bytes):
    t = _logits(V)
    top = O.topk_teacher(t, k, temperature=2.0)
    path = save_cached(tmp_path, "k" * 40, top, IDS, vocab=V, teacher="x")
    back = load_cached(tmp_path, "k" * 40, IDS)
    assert back is not None and back.hit and back.path == path == cache_path(tmp_path, "k" * 40)
    got = back.values
    assert isinstance(got, O.SparseTeacher) and not got.sampled and got.temperature == 2.0
    assert torch.equal(got.indices, top.indices) and torch.equal(got.log_normalizer, top.log_normalizer)
    # float16 log-probabilities: half an ulp is 2^-11 |log p|, so p comes back within that, relatively
    lp_saved = top.values.double() / 2.0 - top.log_normalizer.double()[:, None]
    lp_back = got.values.double() / 2.0 - got.log_normalizer.double()[:, None]
    assert ((lp_back - lp_saved).abs() <= 2.0**-11 * lp_saved.abs().clamp(min=1) * 1.01 + 1e-6).all()
    s = _logits(V, seed=1)
    torch.testing.assert_close(O.topk_distill_loss(s, got), O.topk_distill_loss(s, top), rtol=2e-3, atol=1e-5)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        stored = {name: f.get_tensor(name) for name in f.keys()}
    assert meta["format"] == "topk" and int(meta["vocab"]) == V and int(meta["k"]) == k
    assert stored["indices"].element_size() == index_bytes and stored["logprobs"].dtype == torch.float16
    assert float(meta["bytes_per_row"]) == k * (index_bytes + 2) + 4
    assert json.loads(meta["ids"]) == IDS


def test_sampled_round_trip_is_exact(tmp_path):
    V, k = 1000, 64
    st = O.sampled_teacher(_logits(V), k, temperature=1.5, generator=torch.Generator().manual_seed(0))
    save_cached(tmp_path, "s" * 40, st, IDS, vocab=V)
    got = load_cached(tmp_path, "s" * 40, IDS).values
    assert got.sampled and got.temperature == 1.5 and torch.equal(got.indices, st.indices)
    torch.testing.assert_close(torch.exp(got.values / 1.5), torch.exp(st.values / 1.5), rtol=1e-6, atol=0)
    with safe_open(str(cache_path(tmp_path, "s" * 40)), framework="pt") as f:
        assert f.get_tensor("counts").dtype == torch.uint8 and float(f.metadata()["bytes_per_row"]) == 3 * k
    s = _logits(V, seed=2)
    torch.testing.assert_close(O.topk_distill_loss(s, got), O.topk_distill_loss(s, st), rtol=1e-5, atol=1e-6)


def test_refusals_and_misses(tmp_path):
    t = _logits(30)
    top = O.topk_teacher(t, 5)
    with pytest.raises(ValueError, match="vocab="):
        save_cached(tmp_path, "m" * 40, top, IDS)
    with pytest.raises(ValueError, match="log-normaliser"):
        save_cached(tmp_path, "m" * 40, top._replace(log_normalizer=None), IDS, vocab=30)
    save_cached(tmp_path, "m" * 40, top, IDS, vocab=30)
    assert load_cached(tmp_path, "m" * 40, IDS[:3]) is None  # other examples: a miss
    cache_path(tmp_path, "m" * 40).write_bytes(b"damaged")
    assert load_cached(tmp_path, "m" * 40, IDS) is None
