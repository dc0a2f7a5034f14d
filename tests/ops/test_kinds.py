"""The loss-kind table (pylaundering/loss_kinds.py) against the C++ enum, DistillSpec, and the kinds added
through it (tvd, skew_kl, skew_reverse_kl): their closed forms, their skew-0 ends and their sparse form."""

from __future__ import annotations

import math

import pytest
import torch
from ops_oracle import requires_compiled, skew_kl_rows, tvd_rows

import pylaundering.ops as O
from pylaundering import loss_kinds as kinds
from pylaundering.ops import _ext
from pylaundering.ops.functional import needs_float64
from pylaundering.ops.spec import DistillSpec


@requires_compiled
def test_table_equals_the_cpp_enum():
    codes = dict(_ext._C.kind_codes())
    assert codes.pop("no_distill") == kinds.NO_DISTILL
    assert codes == O.KINDS == {k.name: k.code for k in kinds.LOSS_KINDS if k.code is not None}
    assert len(set(codes.values())) == len(codes)


def test_hard_is_declared_without_a_kernel():
    assert "hard" in kinds.ALL_KINDS and "hard" not in O.KINDS
    assert kinds.kernel_code("hard") is None and DistillSpec("hard").code is None
    assert set(kinds.ALL_KINDS) == set(O.KINDS) | {"hard"}
    for name in kinds.ALL_KINDS:
        assert f"{name}: " in kinds.LOSS_HELP


def test_spec_codes_and_validation():
    assert DistillSpec("skew_kl", 0.5, 2.0, 0.0).code == O.KINDS["skew_kl"]
    assert DistillSpec("tvd", beta=7.0).beta == 7.0  # ignored by tvd: any finite number
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\) for kind='skew_kl'"):
        DistillSpec("skew_kl", beta=1.0)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\) for kind='skew_reverse_kl'"):
        DistillSpec("skew_reverse_kl", beta=-0.1)
    with pytest.raises(ValueError, match=r"beta must lie strictly inside \(0, 1\)"):
        DistillSpec("jsd", beta=0.0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        DistillSpec("kl", temperature=math.inf)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\], got nan"):
        DistillSpec("kl", alpha=math.nan)
    with pytest.raises(ValueError, match="beta must be a finite number"):
        DistillSpec("kl", beta=math.nan)
    with pytest.raises(ValueError, match="unknown loss kind 'x'"):
        DistillSpec("x")
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\)"):
        O.distill_loss(torch.randn(2, 3), torch.randn(2, 3), kind="skew_reverse_kl", beta=1.0)


def _data(N=4, V=37, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, V, generator=g, dtype=torch.float64) * 2
    t = torch.randn(N, V, generator=g, dtype=torch.float64) * 2
    return s.to(dtype), t.to(dtype)


def _loss_grad(fn, s):
    x = s.detach().clone().requires_grad_(True)
    out = fn(x)
    out.sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("backend", ["", "reference"])
@pytest.mark.parametrize("skew, plain", [("skew_kl", "kl"), ("skew_reverse_kl", "reverse_kl")])
@pytest.mark.parametrize("V", [5, 300])  # the small-V and the row path
def test_skew_zero_is_the_plain_kl(monkeypatch, backend, skew, plain, V):
    monkeypatch.setenv("PYLAUNDERING_BACKEND", backend)
    s, t = _data(V=V)
    y = torch.tensor([0, 1, -100, 3])
    a = _loss_grad(lambda x: O.distill_loss(x, t, y, kind=skew, alpha=0.7, temperature=1.5, beta=0.0,
                                            reduction="none"), s)
    b = _loss_grad(lambda x: O.distill_loss(x, t, y, kind=plain, alpha=0.7, temperature=1.5, reduction="none"), s)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_lognorm", [True, False])
@pytest.mark.parametrize("skew, plain", [("skew_kl", "kl"), ("skew_reverse_kl", "reverse_kl")])
def test_sparse_skew_zero_is_the_plain_kl(skew, plain, with_lognorm):
    s, t = _data(V=50)
    teacher = O.topk_teacher(t, 8, temperature=2.0)
    if not with_lognorm:
        teacher = teacher._replace(log_normalizer=None)
    a = _loss_grad(lambda x: O.topk_distill_loss(x, teacher, kind=skew, beta=0.0, reduction="none"), s)
    b = _loss_grad(lambda x: O.topk_distill_loss(x, teacher, kind=plain, reduction="none"), s)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("V", [6, 300])
@pytest.mark.parametrize("T", [0.5, 3.0])
def test_tvd_closed_form(T, V):
    """0.5 sum |pt - ps|, not times T^2; d/ds_j = (1/T) 0.5 ps_j (sgn_j - sum_i sgn_i ps_i), sgn = sign(ps - pt)."""
    s, t = _data(V=V)
    rows, grad = _loss_grad(lambda x: O.distill_loss(x, t, kind="tvd", temperature=T, reduction="none"), s)
    ps, pt = torch.softmax(s / T, -1), torch.softmax(t / T, -1)
    torch.testing.assert_close(rows, 0.5 * (pt - ps).abs().sum(-1), rtol=1e-12, atol=1e-14)
    sgn = torch.sign(ps - pt)
    expected = (0.5 / T) * ps * (sgn - (sgn * ps).sum(-1, keepdim=True))
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(rows, tvd_rows(s, t, T), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["", "reference"])
def test_tvd_ties_have_zero_gradient(monkeypatch, backend):
    monkeypatch.setenv("PYLAUNDERING_BACKEND", backend)
    s, _ = _data(V=9)
    rows, grad = _loss_grad(lambda x: O.distill_loss(x, s.clone(), kind="tvd", temperature=2.0, reduction="none"), s)
    assert (rows == 0).all() and (grad == 0).all()


def test_skew_kl_lies_between_zero_and_kl():
    """KL(pt || a pt + (1-a) ps) decreases from KL(pt || ps) at a = 0 to 0 at a -> 1 (convexity of KL)."""
    s, t = _data()
    prev = O.distill_loss(s, t, kind="kl", temperature=2.0, reduction="none")
    for a in (0.1, 0.5, 0.9):
        cur = O.distill_loss(s, t, kind="skew_kl", beta=a, temperature=2.0, reduction="none")
        assert (cur < prev).all() and (cur > 0).all()
        torch.testing.assert_close(cur, skew_kl_rows(s, t, 2.0, a), rtol=1e-10, atol=1e-12)
        prev = cur


def test_new_soft_kinds_take_the_float64_path_at_high_temperature():
    for name in ("tvd", "skew_kl", "skew_reverse_kl"):
        assert needs_float64(O.KINDS[name], 16.0, torch.float32)
        assert not needs_float64(O.KINDS[name], 2.0, torch.float32)
    assert not needs_float64(O.KINDS["mse"], 16.0, torch.float32)


@requires_compiled
@pytest.mark.parametrize("kind", ["tvd", "skew_kl", "skew_reverse_kl"])
@pytest.mark.parametrize("with_lognorm", [True, False])
def test_sparse_gradcheck(kind, with_lognorm):
    s, t = _data(N=3, V=11, seed=4)
    teacher = O.topk_teacher(t, 4, temperature=1.5)
    if not with_lognorm:
        teacher = teacher._replace(log_normalizer=None)
    y = torch.tensor([1, -100, 7])
    x = s.clone().requires_grad_(True)
    fn = lambda v: O.topk_distill_loss(v, teacher, y, kind=kind, alpha=0.6, beta=0.3, reduction="sum")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-7, rtol=1e-5)


@requires_compiled
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", ["tvd", "skew_kl", "skew_reverse_kl"])
def test_low_precision_inputs_follow_float64(kind, dtype):
    """Against float64 on the same (rounded) inputs: tvd's gradient jumps where pt = ps, so a comparison
    with the unrounded inputs would measure the rounding of the inputs, not the kernel."""
    s, t = (x.to(dtype).double() for x in _data(N=6, V=700, seed=2))
    tol = 2e-5 if dtype == torch.float32 else 3e-2
    a = _loss_grad(lambda x: O.distill_loss(x, t.to(dtype), kind=kind, temperature=2.0, beta=0.2,
                                            reduction="none"), s.to(dtype))
    b = _loss_grad(lambda x: O.distill_loss(x, t, kind=kind, temperature=2.0, beta=0.2, reduction="none"), s)
    torch.testing.assert_close(a[0].double(), b[0], rtol=tol, atol=tol)
    torch.testing.assert_close(a[1].double(), b[1], rtol=tol, atol=tol * b[1].abs().max().item())
