"""Top-k sparse teachers: k = V reproduces the dense loss, and k < V follows the rest-bucket semantics.

Two independent checks against the dense op (whose own oracle is tests/ops/ops_oracle.py):
* k = V: the rest is empty, so every kind, reduction and gradient equals distill_loss.
* k < V, rest bucket: when the teacher's entries outside the kept ones are the student's plus a
  constant (the same distribution within the rest), the chain rule of KL-type divergences makes the
  dense divergence equal to the divergence over the k kept entries + one rest bucket, exactly.
"""

from __future__ import annotations

import pytest
import torch

import pylaundering.ops as O
from pylaundering.ops.sparse import SparseTeacher

KINDS = tuple(O.KINDS)


def _data(N=9, V=23, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(N, V, generator=g, dtype=torch.float64) * 2).to(dtype)
    t = (torch.randn(N, V, generator=g, dtype=torch.float64) * 2).to(dtype)
    y = torch.randint(0, V, (N,), generator=g)
    y[::4] = -100
    return s, t, y


def _loss_and_grad(fn, s, up=None):
    leaf = s.detach().clone().requires_grad_(True)
    out = fn(leaf)
    w = up if up is not None else torch.ones_like(out)
    (out * w).sum().backward()
    return out.detach(), leaf.grad


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)], ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("kind", KINDS)
def test_k_equal_to_v_is_the_dense_loss(kind, alpha, reduction, dtype, tol):
    s, t, y = _data(dtype=dtype)
    teacher = O.topk_teacher(t, t.shape[-1], temperature=2.0)
    labels = y if alpha < 1 else None
    up = torch.randn(s.shape[0], dtype=torch.float64).to(dtype) if reduction == "none" else None
    a, ga = _loss_and_grad(lambda x: O.topk_distill_loss(x, teacher, labels, kind=kind, alpha=alpha,
                                                         reduction=reduction), s, up)
    b, gb = _loss_and_grad(lambda x: O.distill_loss(x, t, labels, kind=kind, alpha=alpha, temperature=2.0,
                                                    reduction=reduction), s, up)
    assert a.dtype == dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    torch.testing.assert_close(ga, gb, rtol=tol * 10, atol=tol)


@pytest.mark.parametrize("T", [1.0, 2.0])
@pytest.mark.parametrize("kind", ["kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("k", [1, 5, 22])
def test_rest_bucket_obeys_the_chain_rule(kind, k, T):
    s, _, _ = _data()
    N, V = s.shape
    g = torch.Generator().manual_seed(1)
    idx = torch.stack([torch.randperm(V, generator=g)[:k] for _ in range(N)])
    t = s.clone() + 0.7  # outside the kept entries: the student's shape, shifted
    t.scatter_(1, idx, torch.randn(N, k, generator=g, dtype=torch.float64) + 12)  # kept: clearly the top k
    teacher = O.topk_teacher(t, k, temperature=T)
    assert torch.equal(teacher.indices.sort(-1).values, idx.sort(-1).values)
    a, ga = _loss_and_grad(lambda x: O.topk_distill_loss(x, teacher, kind=kind, reduction="none"), s)
    b, gb = _loss_and_grad(lambda x: O.distill_loss(x, t, kind=kind, temperature=T, reduction="none"), s)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ga, gb, rtol=1e-8, atol=1e-10)
    assert (teacher.missing_mass() > 0).all() and (teacher.missing_mass() < 1).all()


def test_missing_mass_and_log_normaliser():
    _, t, _ = _data()
    teacher = O.topk_teacher(t, 5, temperature=2.0)
    p = torch.softmax(t / 2.0, -1)
    kept = p.gather(1, teacher.indices).sum(-1)
    torch.testing.assert_close(teacher.missing_mass(), 1 - kept)
    torch.testing.assert_close(teacher.values, t.gather(1, teacher.indices))
    assert (teacher.values[:, :-1] >= teacher.values[:, 1:]).all()  # sorted, largest first
    assert O.topk_teacher(t, t.shape[1]).missing_mass().abs().max() == 0


def test_log_probabilities_from_a_server_renormalise_at_other_temperatures():
    """Log-probs at T = 1: with log_normalizer = 0 the rest is known at T = 1; at T = 2 it is not, and
    the kept entries are renormalised: KL then equals the dense KL against a teacher masked to them."""
    s, t, _ = _data()
    k = 6
    top = O.topk_teacher(t, k)
    logprobs = torch.log_softmax(t, -1).gather(1, top.indices)
    served = SparseTeacher(logprobs, top.indices, torch.zeros(t.shape[0], dtype=t.dtype), 1.0)
    torch.testing.assert_close(O.topk_distill_loss(s, served), O.topk_distill_loss(s, top))  # T = 1: same
    masked = torch.full_like(t, float("-inf")).scatter(1, top.indices, t.gather(1, top.indices))
    got = O.topk_distill_loss(s, served, temperature=2.0)
    torch.testing.assert_close(got, O.distill_loss(s, masked, temperature=2.0))
    no_norm = SparseTeacher(logprobs, top.indices, None, 1.0)
    torch.testing.assert_close(O.topk_distill_loss(s, no_norm, kind="jsd"),
                               O.distill_loss(s, masked, kind="jsd"))
    rkl = O.topk_distill_loss(s, no_norm, kind="reverse_kl", reduction="none")
    assert torch.isfinite(rkl).all() and (rkl >= 0).all()  # the student is compared on the kept entries


def test_gradcheck_fp64():
    s, t, y = _data(N=4, V=7)
    teacher = O.topk_teacher(t, 3, temperature=2.0)
    leaf = s.clone().requires_grad_(True)
    for kind in KINDS:
        assert torch.autograd.gradcheck(
            lambda x, kind=kind: O.topk_distill_loss(x, teacher, y, kind=kind, alpha=0.5, beta=0.25), (leaf,))


def test_compile_fullgraph():
    s, t, y = _data()
    teacher = O.topk_teacher(t, 5, temperature=2.0)

    def fn(x):
        return O.topk_distill_loss(x, teacher, y, alpha=0.5)

    a, ga = _loss_and_grad(fn, s)
    b, gb = _loss_and_grad(torch.compile(fn, fullgraph=True, backend="aot_eager"), s)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga, gb)


def _bad(field, value):
    s, t, y = _data(dtype=torch.float32)
    teacher = O.topk_teacher(t, 4)
    return s, teacher._replace(**{field: value(teacher)}), y


@pytest.mark.parametrize("make, error, match", [
    (lambda: _bad("indices", lambda tt: tt.indices.clone().fill_(0)), ValueError, "repeat within a row"),
    (lambda: _bad("indices", lambda tt: tt.indices + 100), ValueError, "out of range"),
    (lambda: _bad("indices", lambda tt: tt.indices[:, :3]), ValueError, "must match values"),
    (lambda: _bad("indices", lambda tt: tt.indices.float()), TypeError, "int64 or int32"),
    (lambda: _bad("values", lambda tt: tt.values.double()), TypeError, "dtype mismatch"),
    (lambda: _bad("values", lambda tt: tt.values[:3]), ValueError, "must be \\[N, k\\]"),
    (lambda: _bad("log_normalizer", lambda tt: tt.log_normalizer[:2]), ValueError, "log_normalizer"),
])
def test_bad_sparse_teachers_are_refused(make, error, match):
    s, teacher, y = make()
    with pytest.raises(error, match=match):
        O.topk_distill_loss(s, teacher, y, alpha=0.5)


def test_bad_k_and_arguments():
    s, t, y = _data(dtype=torch.float32)
    for k in (0, t.shape[1] + 1, 2.0):
        with pytest.raises(ValueError, match="k must be an integer in"):
            O.topk_teacher(t, k)
    with pytest.raises(ValueError, match="temperature"):
        O.topk_teacher(t, 3, temperature=0.0)
    with pytest.raises(TypeError, match="SparseTeacher"):
        O.topk_distill_loss(s, t, y)
    with pytest.raises(ValueError, match="needs labels"):
        O.topk_distill_loss(s, O.topk_teacher(t, 3), alpha=0.5)


def test_sampled_teacher_rows_are_k_distinct_entries_with_weights_summing_to_one():
    _, t, _ = _data(N=50, V=23)
    st = O.sampled_teacher(t, 9, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert st.sampled and st.indices.shape == (50, 9) and st.temperature == 2.0
    srt = st.indices.sort(-1).values
    assert (srt[:, 1:] != srt[:, :-1]).all() and (st.indices >= 0).all() and (st.indices < 23).all()
    w = torch.exp(st.values / 2.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(50, dtype=w.dtype))
    assert ((w * 9).round() - w * 9).abs().max() < 1e-9  # weights are counts / k
    assert (st.missing_mass() < 1e-12).all()


def test_sampled_teacher_gradient_is_unbiased_where_top_k_is_not():
    """Averaged over many draws, the sampled teacher's forward-KL gradient is the dense one (within
    5 standard errors of the Monte Carlo mean), while top-k at the same k is off by far more."""
    g = torch.Generator().manual_seed(3)
    V, k, R, T = 30, 4, 20000, 1.5
    base = torch.randn(3, V, generator=g, dtype=torch.float64) * 2
    s = torch.randn(3, V, generator=g, dtype=torch.float64)
    t, s_rep = base.repeat_interleave(R, 0), s.repeat_interleave(R, 0)
    st = O.sampled_teacher(t, k, temperature=T, generator=g)
    _, g_sampled = _loss_and_grad(lambda x: O.topk_distill_loss(x, st, reduction="sum"), s_rep)
    mean_sampled = g_sampled.reshape(3, R, V).mean(1)  # the gradient of one copy, averaged over draws
    _, g_dense = _loss_and_grad(lambda x: O.distill_loss(x, base, temperature=T, reduction="sum"), s)
    p = torch.softmax(base / T, -1)
    se = T * torch.sqrt(p * (1 - p) / (k * R))  # the gradient is T (q - w): sd of the mean of w is this
    err = (mean_sampled - g_dense).abs()
    assert (err <= 5 * se + 1e-12).all(), (err / se).max()
    top = O.topk_teacher(base, k, temperature=T)
    _, g_top = _loss_and_grad(lambda x: O.topk_distill_loss(x, top, reduction="sum"), s)
    assert (g_top - g_dense).abs().max() > 10 * err.max()


@pytest.mark.parametrize("kind, T, match", [("jsd", 1.0, "kind='kl'"), ("reverse_kl", 1.0, "kind='kl'"),
                                            ("kl", 2.0, "temperature")])
def test_sampled_teacher_refuses_what_it_cannot_estimate(kind, T, match):
    s, t, _ = _data()
    st = O.sampled_teacher(t, 5)
    with pytest.raises(ValueError, match=match):
        O.topk_distill_loss(s, st, kind=kind, temperature=T)
