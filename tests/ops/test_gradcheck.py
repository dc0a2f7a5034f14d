"""torch.autograd.gradcheck (float64, finite differences) of every op and kind.

Most cases wrap the op in ``_Recompute``: each backward recomputes the fused forward on a fresh
graph. The numerical Jacobian then comes from the wrapper's forward, which runs the kernel
without a gradient (compute_grad=False), so those tests also tie the two kernel paths together.
``test_plain_gradcheck_without_recompute`` runs gradcheck on the op directly (it backpropagates
through one retained graph several times, which the out-of-place scale then supports).
"""

from __future__ import annotations

import pytest
import torch
from ops_oracle import SOFT_KIND_NAMES, requires_compiled

import pylaundering.ops as O


class _Recompute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, s):
        ctx.fn = fn
        ctx.save_for_backward(s)
        return fn(s)

    @staticmethod
    def backward(ctx, grad_out):
        (s,) = ctx.saved_tensors
        with torch.enable_grad():
            s2 = s.detach().requires_grad_(True)
            out = ctx.fn(s2)
            (g,) = torch.autograd.grad(out, s2, grad_out)
        return None, g


def gradcheck(fn, s, **kw):
    return torch.autograd.gradcheck(lambda x: _Recompute.apply(fn, x), (s,), eps=1e-6, atol=1e-7, rtol=1e-5, **kw)


LABELS = torch.tensor([[1, -100, 4], [0, 2, 4]])  # leading shape (2, 3); one ignored row


def _inputs(V=5, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(2, 3, V, generator=g, dtype=torch.float64) * scale).requires_grad_(True)
    t = torch.randn(2, 3, V, generator=g, dtype=torch.float64) * scale
    return s, t


FNS = {
    "kl_T1": lambda t, y, r: lambda s: O.kl_div(s, t, 1.0, r),
    "kl_T2.5": lambda t, y, r: lambda s: O.kl_div(s, t, 2.5, r),
    "reverse_kl_T0.5": lambda t, y, r: lambda s: O.kl_div(s, t, 0.5, r, direction="reverse"),
    "jsd_b0.5": lambda t, y, r: lambda s: O.jsd(s, t, 0.5, 1.0, r),
    "jsd_b0.2_T3": lambda t, y, r: lambda s: O.jsd(s, t, beta=0.2, temperature=3.0, reduction=r),
    "logit_mse": lambda t, y, r: lambda s: O.logit_mse(s, t, r),
    "cross_entropy": lambda t, y, r: lambda s: O.cross_entropy(s, y, reduction=r),
    "distill_kl_ce_a0.3_T2": lambda t, y, r: lambda s: O.distill_loss(
        s, t, y, kind="kl", alpha=0.3, temperature=2.0, reduction=r
    ),
    "distill_kl_ce_a0.5_T1": lambda t, y, r: lambda s: O.distill_loss(s, t, y, kind="kl", alpha=0.5, reduction=r),
    "distill_rkl_ce_a0.7_T1.5": lambda t, y, r: lambda s: O.distill_loss(
        s, t, y, kind="reverse_kl", alpha=0.7, temperature=1.5, reduction=r
    ),
    "distill_jsd_ce_a0.6_T2": lambda t, y, r: lambda s: O.distill_loss(
        s, t, y, kind="jsd", alpha=0.6, temperature=2.0, beta=0.7, reduction=r
    ),
    "distill_mse_ce_a0.4": lambda t, y, r: lambda s: O.distill_loss(s, t, y, kind="mse", alpha=0.4, reduction=r),
    "distill_alpha0_ce": lambda t, y, r: lambda s: O.distill_loss(s, None, y, alpha=0.0, reduction=r),
    "distill_kl_alpha1_labels": lambda t, y, r: lambda s: O.distill_loss(s, t, y, kind="kl", alpha=1.0, reduction=r),
    "distill_tvd_ce_a0.6_T2": lambda t, y, r: lambda s: O.distill_loss(
        s, t, y, kind="tvd", alpha=0.6, temperature=2.0, reduction=r
    ),
    "distill_skew_kl_ce_a0.6_T2_b0.1": lambda t, y, r: lambda s: O.distill_loss(
        s, t, y, kind="skew_kl", alpha=0.6, temperature=2.0, beta=0.1, reduction=r
    ),
    "distill_skew_rkl_ce_a0.7_T1.5_b0.3": lambda t, y, r: lambda s: O.distill_loss(
        s, t, y, kind="skew_reverse_kl", alpha=0.7, temperature=1.5, beta=0.3, reduction=r
    ),
}


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("name", list(FNS))
def test_gradcheck(name, reduction):
    s, t = _inputs()
    assert gradcheck(FNS[name](t, LABELS, reduction), s)


@pytest.mark.parametrize("name", ["kl_T2.5", "reverse_kl_T0.5", "jsd_b0.2_T3", "distill_kl_ce_a0.3_T2",
                                  "distill_rkl_ce_a0.7_T1.5",
                                  "distill_tvd_ce_a0.6_T2", "distill_skew_kl_ce_a0.6_T2_b0.1",
                                  "distill_skew_rkl_ce_a0.7_T1.5_b0.3"])
def test_gradcheck_masked_logits(name):
    """-inf at the same positions in student and teacher: the gradient there is 0 (finite differences agree)."""
    s, t = _inputs(V=6, seed=3)
    mask = torch.tensor([True, False, True, True, False, True])
    with torch.no_grad():
        s[..., ~mask] = float("-inf")
    t[..., ~mask] = float("-inf")
    y = torch.tensor([[0, -100, 5], [2, 3, 0]])  # labels on live classes
    fn = FNS[name](t, y, "sum")
    assert gradcheck(fn, s)
    s2 = s.detach().clone().requires_grad_(True)
    fn(s2).backward()
    assert (s2.grad[..., ~mask] == 0).all() and torch.isfinite(s2.grad).all()


def test_gradcheck_multiblock_row():
    """A row longer than the kernel's 2048-element statistics block (online max rescaling)."""
    g = torch.Generator().manual_seed(5)
    s = (torch.randn(1, 2100, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    t = torch.randn(1, 2100, generator=g, dtype=torch.float64) * 3
    y = torch.tensor([2099])
    # fast_mode: one random projection instead of 2100 finite differences
    for kind in SOFT_KIND_NAMES:
        fn = lambda x, k=kind: O.distill_loss(x, t, y, kind=k, alpha=0.5, temperature=2.0)  # noqa: E731
        assert gradcheck(fn, s, fast_mode=True)


@requires_compiled
def test_plain_gradcheck_without_recompute():
    s, t = _inputs()
    torch.autograd.gradcheck(lambda x: O.kl_div(x, t, 2.0), (s,))
