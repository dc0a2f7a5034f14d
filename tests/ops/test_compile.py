"""torch.compile(fullgraph=True) traces through the fused op (fake impl + registered autograd)."""

from __future__ import annotations

import pytest
import torch

import pylaundering.ops as O

torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)


def _data(N=6, V=50, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, V, generator=g, dtype=dtype) * 2
    t = torch.randn(N, V, generator=g, dtype=dtype) * 2
    y = torch.randint(0, V, (N,), generator=g)
    y[1] = -100
    return s, t, y


def _fwd_bwd(fn, s, t, y, weights=None):
    a = s.clone().requires_grad_(True)
    out = fn(a, t, y)
    (out if weights is None else (out * weights).sum()).backward()
    return out.detach(), a.grad


def _compare(fn, backend, reduction_none=False, **data_kw):
    s, t, y = _data(**data_kw)
    w = torch.randn(s.shape[0]) if reduction_none else None
    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    e_out, e_grad = _fwd_bwd(fn, s, t, y, w)
    c_out, c_grad = _fwd_bwd(compiled, s, t, y, w)
    torch.testing.assert_close(c_out, e_out, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(c_grad, e_grad, rtol=1e-6, atol=1e-8)
    assert torch.isfinite(c_grad).all() and c_grad.abs().sum() > 0
    # a second call reuses the compiled graph and still agrees (fresh forward -> fresh saved grad)
    c_out2, c_grad2 = _fwd_bwd(compiled, s, t, y, w)
    assert torch.equal(c_out2, c_out) and torch.equal(c_grad2, c_grad)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("kind", ["kl", "reverse_kl", "jsd", "mse"])
def test_compile_distill_loss_aot_eager(kind, alpha):
    def fn(s, t, y):
        return O.distill_loss(s, t, y, kind=kind, alpha=alpha, temperature=2.0, beta=0.25)

    _compare(fn, "aot_eager")


def test_compile_eager_backend_reduction_none():
    def fn(s, t, y):
        return O.distill_loss(s, t, y, kind="kl", alpha=0.5, temperature=2.0, reduction="none")

    _compare(fn, "eager", reduction_none=True)


def test_compile_all_public_ops_in_one_graph():
    def fn(s, t, y):
        return (
            O.kl_div(s, t, 2.0)
            + O.kl_div(s, t, 1.0, "sum", direction="reverse")
            + O.jsd(s, t, beta=0.3, reduction="mean")
            + O.logit_mse(s, t)
            + O.cross_entropy(s, y)
            + O.DistillLoss(kind="jsd", alpha=0.25)(s, t, y)
        )

    _compare(fn, "aot_eager")


def test_compile_inside_a_model_step():
    """Student logits come out of a layer; gradients flow to its weight as in eager."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 40)
    x, t = torch.randn(8, 16), torch.randn(8, 40)
    y = torch.randint(0, 40, (8,))

    def step(x, t, y):
        return O.distill_loss(lin(x), t, y, kind="kl", alpha=0.5, temperature=2.0)

    loss = step(x, t, y)
    loss.backward()
    g_eager = lin.weight.grad.clone()
    lin.zero_grad()
    c = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss_c = c(x, t, y)
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(lin.weight.grad, g_eager, rtol=1e-5, atol=1e-7)


def test_compile_dynamic_shapes():
    def fn(s, t, y):
        return O.distill_loss(s, t, y, kind="jsd", alpha=0.5, reduction="sum")

    c = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=True)
    for N, V in ((4, 30), (7, 30), (5, 61)):
        s, t, y = _data(N, V)
        e_out, e_grad = _fwd_bwd(fn, s, t, y)
        c_out, c_grad = _fwd_bwd(c, s, t, y)
        torch.testing.assert_close(c_out, e_out, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(c_grad, e_grad, rtol=1e-6, atol=1e-8)


def test_compile_with_changing_temperature_and_alpha():
    """A temperature/alpha schedule: dynamo makes a float argument that changes between calls a SymFloat
    on recompile; the argument checks must trace it (math.isfinite on it used to break fullgraph)."""

    def fn(s, t, y, T, alpha):
        return O.distill_loss(s, t, y, kind="jsd", alpha=alpha, temperature=T)

    c = torch.compile(fn, fullgraph=True, backend="aot_eager")
    s, t, y = _data()
    for T, alpha in ((1.0, 0.5), (2.0, 0.5), (3.0, 0.25), (0.5, 1.0)):
        e_out, e_grad = _fwd_bwd(lambda a, b, c_, T=T, alpha=alpha: fn(a, b, c_, T, alpha), s, t, y)
        c_out, c_grad = _fwd_bwd(lambda a, b, c_, T=T, alpha=alpha: c(a, b, c_, T, alpha), s, t, y)
        torch.testing.assert_close(c_out, e_out, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(c_grad, e_grad, rtol=1e-6, atol=1e-8)
    with pytest.raises(Exception, match="temperature must be a finite number > 0"):
        c(s, t, y, -1.0, 0.5)


def test_compile_no_grad_inference():
    def fn(s, t, y):
        return O.distill_loss(s, t, y, kind="reverse_kl", alpha=0.5)

    s, t, y = _data()
    c = torch.compile(fn, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(c(s, t, y), fn(s, t, y), rtol=1e-6, atol=1e-7)


def test_compiled_label_check_still_raises():
    def fn(s, t, y):
        return O.distill_loss(s, t, y, alpha=0.5)

    s, t, y = _data()
    c = torch.compile(fn, fullgraph=True, backend="aot_eager")
    c(s, t, y)
    y_bad = y.clone()
    y_bad[0] = 50
    # the kernel's check (the reference fallback, under compile, gets torch's own "out of bounds")
    with pytest.raises(Exception, match="out of (range|bounds)"):
        c(s, t, y_bad)


def test_compile_inductor():
    """One case through the default (inductor) backend; ~5 s to compile on 2 cores."""

    def fn(s, t, y):
        return O.distill_loss(s, t, y, kind="kl", alpha=0.5, temperature=2.0) * 3.0 + s.pow(2).mean() * 0.0

    _compare(fn, "inductor", V=300)
