"""The CPU kernel's forward KL without a second pass over the inputs (Hinton KD, with or without
CE): pass 1 sums, per statistics block, et (ut - us) against the maxes that block's exps used, the
row's loss is assembled from those block sums, and pass 2 writes the gradient from the scratch
exponentials alone. A block whose sum is NaN (masked logits) is summed again with the masks
applied. Against the float64 oracle: masks in a later block than the first, masks that meet an
underflowing teacher probability, a max that rises block by block, a student with no live logit in
its first block, a large offset between student and teacher logits, inference (no gradient), and
the gradient written over the student's own storage."""

from __future__ import annotations

import pytest
import torch
from ops_oracle import kl_rows, requires_compiled

pytestmark = requires_compiled

V = 5000  # three statistics blocks of 2048 elements


def _oracle(s, t, T):
    """T^2 KL per row and its gradient, over each row's columns where the teacher has mass (a masked
    teacher class contributes 0; a student class masked where the teacher has mass gives inf)."""
    s64 = s.double().requires_grad_(True)
    t64 = t.double()
    pt = torch.softmax(t64 / T, -1)
    ls = torch.log_softmax(s64 / T, -1)
    lt = torch.log_softmax(t64 / T, -1)
    term = torch.where(pt > 0, pt * (lt - torch.where(pt > 0, ls, torch.zeros_like(ls))), torch.zeros_like(pt))
    rows = term.sum(-1) * T * T
    rows.sum().backward()
    return rows.detach(), s64.grad


def _fused(s, t, T, over_student=False):
    if over_student:
        buf = s.clone()
        rows = torch.ops.pylaundering.fused_distill_out(buf, t, None, 1, 1.0, T, 0.5, -100, buf)
        return rows, buf
    return torch.ops.pylaundering.fused_distill(s, t, None, 1, 1.0, T, 0.5, -100, True)


def _assert_finite_and_oracle(s, t, T, over_student=False):
    rows, grad = _fused(s, t, T, over_student)
    ref_rows, ref_grad = _oracle(s, t, T)
    assert torch.isfinite(rows).all()
    torch.testing.assert_close(rows.double(), ref_rows, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("over_student", [False, True])
@pytest.mark.parametrize("T", [1.0, 2.0, 3.0])
def test_masked_teacher_logits_in_a_later_block(over_student, T):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, V, generator=g) * 3
    t = torch.randn(6, V, generator=g) * 3
    t[0, 3000] = float("-inf")                     # second block
    t[1, [10, 2100, 4500]] = float("-inf")         # one in every block
    t[2, 4100:] = float("-inf")                    # the whole tail
    t[3, 2500], s[3, 2500] = float("-inf"), float("-inf")  # both masked: no term, no NaN
    _assert_finite_and_oracle(s, t, T, over_student)


def test_student_masked_where_the_teacher_underflows_contributes_nothing():
    # the teacher's finite "mask" (a very negative logit) underflows to pt = 0 while the student
    # masks with -inf: d = +inf there, 0 * inf would be NaN; the oracle says 0
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, V, generator=g)
    t = torch.randn(3, V, generator=g)
    t[:, 3333] = -3.0e38
    s[:, 3333] = float("-inf")
    _assert_finite_and_oracle(s, t, 1.0)


def test_student_masked_where_the_teacher_has_mass_is_infinite():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, V, generator=g)
    t = torch.randn(2, V, generator=g)
    s[1, 4000] = float("-inf")
    rows, _ = _fused(s, t, 2.0)
    assert torch.isfinite(rows[0]) and rows[1] == float("inf")
    assert torch.isinf(kl_rows(s.double(), t.double(), 2.0)[1])


@pytest.mark.parametrize("offset", [1e3, -5e3])
def test_an_offset_between_student_and_teacher_costs_no_precision(offset):
    # KL is invariant to a constant shift of either side; near-identical distributions give a
    # tiny KL that must not drown in the rounding of the offset
    g = torch.Generator().manual_seed(3)
    t = torch.randn(4, V, generator=g) * 2
    s = (t + 0.01 * torch.randn(4, V, generator=g)) + offset
    rows, grad = _fused(s, t, 2.0)
    ref_rows, ref_grad = _oracle(s, t, 2.0)
    # KL is about 5e-5 here; float32 log-probabilities carry ~1e-6 absolute error (the generic pass
    # too), while summing pt * (xt - xs) against an offset of 1e3 would be off by ~1e-4
    torch.testing.assert_close(rows.double(), ref_rows, rtol=1e-3, atol=5e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-8)


@pytest.mark.parametrize("over_student", [False, True])
@pytest.mark.parametrize("T", [1.0, 2.0])  # CE shares the soft statistics at T = 1, has its own at T = 2
def test_kd_plus_ce_with_labels_in_every_block(over_student, T):
    g = torch.Generator().manual_seed(4)
    s = torch.randn(5, V, generator=g) * 3
    t = torch.randn(5, V, generator=g) * 3
    t[1, [10, 2100, 4500]] = float("-inf")
    y = torch.tensor([5, 2047, 2048, 4999, -100])  # first block, block edges, the tail, ignored
    if over_student:
        buf = s.clone()
        rows = torch.ops.pylaundering.fused_distill_out(buf, t, y, 1, 0.5, T, 0.5, -100, buf)
        grad = buf
    else:
        rows, grad = torch.ops.pylaundering.fused_distill(s, t, y, 1, 0.5, T, 0.5, -100, True)
    kd_rows, kd_grad = _oracle(s, t, T)
    a = s.double().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(a, y, ignore_index=-100, reduction="none")
    ce.sum().backward()
    keep = (y != -100).double()
    ref_rows = (0.5 * kd_rows + 0.5 * ce.detach()) * keep
    ref_grad = (0.5 * kd_grad + 0.5 * a.grad) * keep[:, None]
    torch.testing.assert_close(rows.double(), ref_rows, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_a_max_that_rises_block_by_block(T):
    # every block's exps use a running max that a later block raises: the block sums must be
    # rescaled to the row's maxes (student and teacher rising at different rates, or falling)
    g = torch.Generator().manual_seed(5)
    ramp = torch.linspace(0, 30, V)
    s = torch.randn(4, V, generator=g) + ramp
    t = torch.randn(4, V, generator=g) + 0.5 * ramp
    t[2:] = torch.randn(2, V, generator=g) + ramp.flip(0)
    _assert_finite_and_oracle(s, t, T)


def test_a_student_with_no_live_logit_in_its_first_block():
    g = torch.Generator().manual_seed(6)
    s = torch.randn(2, V, generator=g) * 2
    t = torch.randn(2, V, generator=g) * 2
    s[:, :2048] = float("-inf")
    t[0, :2048] = float("-inf")  # row 0: the teacher masks the same classes, a finite KL
    rows, grad = _fused(s, t, 2.0)
    ref_rows, ref_grad = _oracle(s[:1], t[:1], 2.0)
    torch.testing.assert_close(rows[:1].double(), ref_rows, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(grad[:1].double(), ref_grad, rtol=1e-4, atol=1e-7)
    assert rows[1] == float("inf")  # row 1: teacher mass on classes the student masks


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_inference_gives_the_training_loss(alpha):
    # without a gradient pass 2 is skipped: the loss must not depend on it
    g = torch.Generator().manual_seed(7)
    s = torch.randn(5, V, generator=g) * 3
    t = torch.randn(5, V, generator=g) * 3
    t[1, [10, 2100, 4500]] = float("-inf")
    y = torch.tensor([5, 2047, 2048, 4999, -100])
    train, _ = torch.ops.pylaundering.fused_distill(s, t, y, 1, alpha, 2.0, 0.5, -100, True)
    infer, _ = torch.ops.pylaundering.fused_distill(s, t, y, 1, alpha, 2.0, 0.5, -100, False)
    torch.testing.assert_close(infer, train, rtol=0, atol=0)
    ref, _ = _oracle(s, t, 2.0)
    a = s.double()
    ce = torch.nn.functional.cross_entropy(a, y, ignore_index=-100, reduction="none")
    torch.testing.assert_close(infer.double(), (alpha * ref + (1 - alpha) * ce) * (y != -100).double(),
                               rtol=2e-5, atol=2e-5)
