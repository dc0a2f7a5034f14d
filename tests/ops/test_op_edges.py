"""Edges of the fused ops: double backward is refused with a clear error (never a silently wrong second
derivative), fused_linear_distill_loss takes [..., H] hidden states, and its default chunk is sized from
the logits."""

from __future__ import annotations

import pytest
import torch

import pylaundering.ops as O
from pylaundering.ops import _ext

compiled = pytest.mark.skipif(not _ext.compiled_available("cpu"), reason="the compiled CPU extension is not built")


def _dense():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 11, generator=g, requires_grad=True)
    t = torch.randn(6, 11, generator=g)
    return O.distill_loss(s, t, temperature=2.0), (s,)


def _sparse():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 11, generator=g, requires_grad=True)
    teacher = O.topk_teacher(torch.randn(6, 11, generator=g), 4)
    return O.topk_distill_loss(s, teacher), (s,)


def _linear(reduction="batchmean"):
    g = torch.Generator().manual_seed(2)
    h = torch.randn(10, 5, generator=g, requires_grad=True)
    w = torch.randn(13, 5, generator=g, requires_grad=True)
    t = torch.randn(10, 13, generator=g)
    loss = O.fused_linear_distill_loss(h, w, t, temperature=2.0, reduction=reduction, chunk_size=4)
    return (loss.sum() if reduction == "none" else loss), (h, w)


@compiled
@pytest.mark.parametrize("make", [_dense, _sparse, _linear, lambda: _linear("none")],
                         ids=["dense", "sparse", "linear", "linear-none"])
def test_double_backward_is_refused_with_a_clear_error(make):
    loss, inputs = make()
    first = torch.autograd.grad(loss, inputs, retain_graph=True)
    grads = torch.autograd.grad(loss, inputs, create_graph=True)
    for a, b in zip(first, grads):  # the first derivative is unchanged
        assert torch.equal(a, b.detach())
    with pytest.raises(RuntimeError, match="double backward .*not supported"):
        sum(g.pow(2).sum() for g in grads).backward()  # was: no error, a second derivative of 0


@compiled
def test_first_order_training_step_unaffected_by_the_guard():
    loss, (h, w) = _linear()
    loss.backward()
    assert h.grad is not None and h.grad.grad_fn is None and not h.grad.requires_grad


@pytest.mark.parametrize("reduction", ["none", "batchmean", "sum"])
def test_linear_accepts_leading_dimensions(reduction):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, 3, 5, 8, generator=g)
    w = torch.randn(17, 8, generator=g, requires_grad=True)
    th, tw = torch.randn(2, 3, 5, 6, generator=g), torch.randn(17, 6, generator=g)
    y = torch.randint(0, 17, (2, 3, 5), generator=g)
    y[0, 1, 2] = -100
    for teacher, flat in (((th, tw), (th.reshape(-1, 6), tw)), ((th @ tw.T), (th @ tw.T).reshape(-1, 17))):
        h1 = h.clone().requires_grad_(True)
        h2 = h.reshape(-1, 8).clone().requires_grad_(True)
        kw = dict(alpha=0.5, temperature=2.0, reduction=reduction, chunk_size=4)
        got = O.fused_linear_distill_loss(h1, w, teacher, y, **kw)
        ref = O.fused_linear_distill_loss(h2, w, flat, y.reshape(-1), **kw)
        assert got.shape == ((2, 3, 5) if reduction == "none" else ())
        torch.testing.assert_close(got.reshape(-1) if reduction == "none" else got, ref)
        got.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(h1.grad.reshape(-1, 8), h2.grad)
    # the leading shapes must agree
    with pytest.raises(ValueError, match="labels"):
        O.fused_linear_distill_loss(h, w, (th, tw), y.reshape(-1), alpha=0.5)
    with pytest.raises(ValueError, match="teacher"):
        O.fused_linear_distill_loss(h, w, (th[:1], tw))


BIG = dict(dtype=torch.float32, device="cpu")


@pytest.mark.parametrize("n, vocab, hidden", [(2048, 32000, 512), (4096, 32000, 1024), (1024, 128256, 2048),
                                              (100_000, 128_256, 2048), (300, 32000, 512), (40, 32000, 512),
                                              (10, 50, None)])
def test_default_chunk_is_at_most_a_quarter_of_the_logits(n, vocab, hidden):
    chunk = O.choose_chunk_size(n, vocab, hidden=hidden, **BIG)
    per_row = vocab * (2 * 4 + 4)  # CPU fp32: the chunk's logits (gradient written over them), teacher's, fp32 rows
    assert 1 <= chunk <= n
    if n >= 4 * 64 * 3:  # large enough for 64-row chunks to fit a quarter of the logits
        assert chunk * per_row <= n * vocab * 4 // 4 and chunk % 64 == 0
    else:
        assert chunk == min(n, 64)  # the matmul floor, or all rows
    # never above the memory budget of the old rule
    assert chunk * per_row <= max(O.linear.CHUNK_BUDGET_BYTES, vocab * (hidden or 0) * 4 // 2) or chunk == 64


def test_chunk_budget_counts_the_float64_copies_above_high_temperature():
    from pylaundering.ops.functional import HIGH_TEMPERATURE

    n, vocab = 100_000, 128_256  # the budget binds, not the logits' share
    low = O.choose_chunk_size(n, vocab, temperature=HIGH_TEMPERATURE, **BIG)
    high = O.choose_chunk_size(n, vocab, temperature=2 * HIGH_TEMPERATURE, **BIG)
    assert high < low
    wide_row = vocab * (2 * 4 + 4 + 16 + 4)  # + the fp64 copies of both logits and the gradient's cast
    assert high * wide_row <= O.linear.CHUNK_BUDGET_BYTES
    # the hard-label-only and mse kinds never widen
    assert O.choose_chunk_size(n, vocab, temperature=20.0, kind="mse", **BIG) == low
