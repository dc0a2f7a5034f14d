"""grad_scale: the dense op writes its gradient times a factor (a mean's 1/count, folded in by the
Python front), and backward then skips its pass over the [rows, V] gradient when what arrives is
exactly that factor. Values against the unscaled op and plain-PyTorch formulas; the skip itself by
the aten ops backward runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ops_oracle import requires_compiled
from torch.utils._python_dispatch import TorchDispatchMode

import pylaundering.ops as O

pytestmark = requires_compiled

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no CUDA device"))]
# (kind, alpha, temperature): each kind, CE alone, and the KD + CE mix at T != 1 and T = 1
MIXES = [(1, 1.0, 2.0), (2, 1.0, 2.0), (3, 1.0, 2.0), (4, 1.0, 1.0), (0, 0.0, 1.0), (1, 0.5, 2.0), (3, 0.3, 1.0)]


def _case(V, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(9, V, generator=g) * 3).to(dtype)
    t = (torch.randn(9, V, generator=g) * 3).to(dtype)
    y = torch.randint(0, V, (9,), generator=g)
    y[4] = -100
    s[2, V // 2] = float("-inf")
    return s.to(device), t.to(device), y.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("V", [4, 37, 5000])  # the small-V path, vector tails, several blocks
@pytest.mark.parametrize("scale", [0.37, -2.0])
def test_grad_scale_multiplies_the_gradient_not_the_loss(device, dtype, V, scale):
    s, t, y = _case(V, dtype, device)
    for kind, alpha, T in MIXES:
        tt, yy = (t if kind else None), (y if alpha < 1 else None)
        rows1, grad1 = torch.ops.pylaundering.fused_distill(s, tt, yy, kind, alpha, T, 0.5, -100, True)
        rows, grad = torch.ops.pylaundering.fused_distill(s, tt, yy, kind, alpha, T, 0.5, -100, True, scale)
        assert torch.equal(rows, rows1), (kind, alpha, T)
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(grad, grad1 * scale, rtol=tol, atol=tol, msg=f"{(kind, alpha, T)}")
        assert grad1.abs().sum() > 0


def test_out_op_takes_the_same_scale_bitwise():
    s, t, y = _case(300, torch.float32, "cpu")
    rows, grad = torch.ops.pylaundering.fused_distill(s, t, y, 1, 0.5, 2.0, 0.5, -100, True, 0.25)
    buf = s.clone()
    out_rows = torch.ops.pylaundering.fused_distill_out(buf, t, y, 1, 0.5, 2.0, 0.5, -100, buf, 0.25)
    assert torch.equal(out_rows, rows) and torch.equal(buf, grad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_grad_scale_is_refused(bad):
    s, t, _ = _case(10, torch.float32, "cpu")
    with pytest.raises(ValueError, match="grad_scale"):
        torch.ops.pylaundering.fused_distill(s, t, None, 1, 1.0, 2.0, 0.5, -100, True, bad)


def _reference(s, t, y, T, alpha):
    sf, tf = s.double(), t.double()
    kd = F.kl_div(F.log_softmax(sf / T, -1), F.log_softmax(tf / T, -1), log_target=True,
                  reduction="none").sum(-1) * T * T
    ce = F.cross_entropy(sf, y, ignore_index=-100, reduction="none")
    keep = y != -100
    return ((alpha * kd + (1 - alpha) * ce) * keep).sum() / keep.sum()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("upstream", [1.0, 2.5])
def test_batchmean_gradient_with_ignored_rows_and_any_upstream_gradient(device, upstream):
    s, t, y = _case(300, torch.float32, device)
    s[2, 150] = 0.0  # the reference would give NaN for a masked student logit under CE
    a = s.clone().requires_grad_(True)
    (O.distill_loss(a, t, y, alpha=0.5, temperature=2.0) * upstream).backward()
    b = s.double().requires_grad_(True)
    (_reference(b, t, y, 2.0, 0.5) * upstream).backward()
    torch.testing.assert_close(a.grad, b.grad.float(), rtol=1e-5, atol=1e-7)
    assert a.grad[4].abs().max() == 0  # the ignored row


@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum"])
def test_retained_graph_gives_the_same_gradient_twice(reduction):
    s, t, _ = _case(64, torch.float32, "cpu")
    a = s.clone().requires_grad_(True)
    loss = O.kl_div(a, t, temperature=2.0, reduction=reduction)
    loss.backward(retain_graph=True)
    first = a.grad.clone()
    loss.backward()
    torch.testing.assert_close(a.grad, 2 * first)
    b = s.double().requires_grad_(True)
    ref = F.kl_div(F.log_softmax(b / 2, -1), F.log_softmax(t.double() / 2, -1), log_target=True,
                   reduction=reduction if reduction != "mean" else "mean") * 4
    ref.backward()
    torch.testing.assert_close(first, b.grad.float(), rtol=1e-5, atol=1e-8)


class _AtenLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = tuple(tuple(x.shape) for x in args if isinstance(x, torch.Tensor))
        self.ops.append((str(func), shapes))
        return func(*args, **(kwargs or {}))


def _big_ops_in_backward(reduction, upstream=1.0):
    s, t, y = _case(500, torch.float32, "cpu")
    a = s.clone().requires_grad_(True)
    loss = O.distill_loss(a, t, y, alpha=0.5, temperature=2.0, reduction=reduction)
    if reduction == "none":
        loss = loss.sum()
    loss = loss * upstream if upstream != 1.0 else loss
    with _AtenLog() as log:
        loss.backward()
    # views and detach (autograd handing the gradient to .grad without a copy) move no data
    free = ("aten.detach.default", "aten.alias.default", "aten.view.default", "aten._unsafe_view.default")
    return [op for op, shapes in log.ops if any(sh == tuple(s.shape) for sh in shapes) and op not in free]


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_backward_of_a_plain_loss_does_not_touch_the_gradient_again(reduction):
    assert _big_ops_in_backward(reduction) == []


def test_backward_still_scales_when_the_upstream_gradient_is_not_one():
    assert any("mul" in op for op in _big_ops_in_backward("batchmean", upstream=3.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_large_cuda_mean_folds_its_scale_and_matches_the_unfolded_gradient():
    # at least SYNC_WORTH_NUMEL elements: on a GPU the fold (and its two syncs) starts here
    from pylaundering.ops._registry import SYNC_WORTH_NUMEL

    V = 65536
    rows = max(2, SYNC_WORTH_NUMEL // V)
    g = torch.Generator().manual_seed(3)
    s = (torch.randn(rows, V, generator=g) * 3).cuda()
    t = (torch.randn(rows, V, generator=g) * 3).cuda()
    y = torch.randint(0, V, (rows,), generator=g).cuda()
    y[1] = -100
    a = s.clone().requires_grad_(True)
    with _AtenLog() as log:
        loss = O.distill_loss(a, t, y, alpha=0.5, temperature=2.0)
        loss.backward()
    backward_big = [op for op, shapes in log.ops if (rows, V) in shapes and "mul" in op]
    assert backward_big == []
    b = s.clone().requires_grad_(True)
    per_row = O.distill_loss(b, t, y, alpha=0.5, temperature=2.0, reduction="none")
    (per_row.sum() / (y != -100).sum()).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------------ the sparse (top-k) op, CPU


def _sparse_args(V, dtype, k=5, with_lognorm=True, T=2.0):
    s, t, y = _case(V, dtype, "cpu")
    top = O.topk_teacher(t, min(k, V), T)
    lognorm = top.log_normalizer.to(torch.float64 if dtype == torch.float64 else torch.float32) \
        if with_lognorm else None
    return s, (top.values, top.indices, lognorm), y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("V", [37, 5000])
@pytest.mark.parametrize("with_lognorm", [True, False])
def test_sparse_grad_scale_multiplies_the_gradient_not_the_loss(dtype, V, with_lognorm):
    s, (values, indices, lognorm), y = _sparse_args(V, dtype, with_lognorm=with_lognorm)
    for kind, alpha in [(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (1, 0.5), (3, 0.3)]:
        args = (values, indices, lognorm, y if alpha < 1 else None, kind, alpha, 2.0, 0.5, -100)
        rows1, grad1 = torch.ops.pylaundering.fused_sparse_distill(s, *args, True)
        rows, grad = torch.ops.pylaundering.fused_sparse_distill(s, *args, True, 0.37)
        assert torch.equal(rows, rows1), (kind, alpha)
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(grad, grad1 * 0.37, rtol=tol, atol=tol, msg=f"{(kind, alpha)}")
        buf = s.clone()
        out_rows = torch.ops.pylaundering.fused_sparse_distill_out(buf, *args, buf, 0.37)
        assert torch.equal(out_rows, rows) and torch.equal(buf, grad), (kind, alpha)


def test_sparse_backward_of_a_plain_loss_does_not_touch_the_gradient_again():
    s, t, y = _case(500, torch.float32, "cpu")
    top = O.topk_teacher(t, 8, 2.0)
    a = s.clone().requires_grad_(True)
    loss = O.topk_distill_loss(a, top, y, alpha=0.5, temperature=2.0)
    with _AtenLog() as log:
        loss.backward()
    free = ("aten.detach.default", "aten.alias.default", "aten.view.default", "aten._unsafe_view.default")
    assert [op for op, shapes in log.ops if tuple(s.shape) in shapes and op not in free] == []
    b = s.clone().requires_grad_(True)
    per_row = O.topk_distill_loss(b, top, y, alpha=0.5, temperature=2.0, reduction="none")
    (per_row.sum() / (y != -100).sum()).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sparse_cuda_op_refuses_a_scale():
    s, (values, indices, lognorm), _ = _sparse_args(50, torch.float32)
    args = [x.cuda() if isinstance(x, torch.Tensor) else x for x in (s, values, indices, lognorm)]
    with pytest.raises(ValueError, match="CPU-only"):
        torch.ops.pylaundering.fused_sparse_distill(*args, None, 1, 1.0, 2.0, 0.5, -100, True, 0.5)
