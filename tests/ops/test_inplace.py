"""The _out ops: the gradient written into a given buffer, which may be the student logits themselves
(how fused_linear_distill_loss drops one [chunk, V] buffer). Bitwise the allocating ops' results."""

from __future__ import annotations

import itertools

import pytest
import torch
from ops_oracle import requires_compiled

import pylaundering.ops as O

pytestmark = requires_compiled


def _case(dtype, V, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(7, V, generator=g) * 3).to(dtype)
    t = (torch.randn(7, V, generator=g) * 3).to(dtype)
    y = torch.randint(0, V, (7,), generator=g)
    y[2] = -100
    s[3, 1] = float("-inf")
    return s, t, y


def _lognorm(teacher, dtype):
    return teacher.log_normalizer.to(torch.float64 if dtype == torch.float64 else torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("V", [4, 37, 5000])  # the small-V path, vector tails, several blocks
def test_gradient_over_the_logits_equals_the_allocating_op_bitwise(dtype, V):
    s, t, y = _case(dtype, V)
    for kind, alpha, T in itertools.product((0, 1, 2, 3, 4), (1.0, 0.5, 0.0), (1.0, 2.0)):
        if (kind == 0) != (alpha == 0.0):
            continue
        tt, yy = (t if kind else None), (y if alpha < 1 else None)
        rows, grad = torch.ops.pylaundering.fused_distill(s, tt, yy, kind, alpha, T, 0.5, -100, True)
        buf = s.clone()
        out_rows = torch.ops.pylaundering.fused_distill_out(buf, tt, yy, kind, alpha, T, 0.5, -100, buf)
        assert torch.equal(out_rows, rows) and torch.equal(buf, grad), (kind, alpha, T)
        if kind:
            top = O.topk_teacher(t, min(5, V), T)
            args = (top.values, top.indices, _lognorm(top, dtype), yy, kind, alpha, T, 0.5, -100)
            rows, grad = torch.ops.pylaundering.fused_sparse_distill(s, *args, True)
            buf = s.clone()
            out_rows = torch.ops.pylaundering.fused_sparse_distill_out(buf, *args, buf)
            assert torch.equal(out_rows, rows) and torch.equal(buf, grad), ("sparse", kind, alpha, T)


def test_a_separate_buffer_works_and_the_student_is_untouched():
    s, t, y = _case(torch.float32, 300)
    keep = s.clone()
    buf = torch.empty_like(s)
    rows = torch.ops.pylaundering.fused_distill_out(s, t, y, 1, 0.5, 2.0, 0.5, -100, buf)
    ref_rows, ref_grad = torch.ops.pylaundering.fused_distill(s, t, y, 1, 0.5, 2.0, 0.5, -100, True)
    assert torch.equal(rows, ref_rows) and torch.equal(buf, ref_grad) and torch.equal(s, keep)


def test_bad_grad_out_is_refused():
    s, t, _ = _case(torch.float32, 50)

    def run(student, out):
        return torch.ops.pylaundering.fused_distill_out(student, t[: len(student)], None, 1, 1.0, 1.0, 0.5, -100, out)

    with pytest.raises(ValueError, match="shape"):
        run(s, s[:, 1:].contiguous())
    with pytest.raises(TypeError, match="dtype"):
        run(s, s.double())
    with pytest.raises(ValueError, match="contiguous"):
        run(s, torch.empty(50, 7).t())
    rows = torch.cat([s, s[:1]])  # a spare row: the same storage shifted by one row fits
    with pytest.raises(ValueError, match="not overlap"):
        run(rows[:-1], rows[1:])
