"""fused_linear_distill_loss against the naive computation: full logits by matmul, then the oracle.

The oracle (ops_oracle.oracle, plain torch in float64) sees the whole [N, V] logits; the op never
forms them. Values and the gradients of hidden states, weight and bias must agree for every kind,
reduction, teacher form (logits, hidden states + head with and without bias) and chunk size
(dividing N, not dividing it, larger than N).
"""

from __future__ import annotations

import pytest
import torch
from ops_oracle import BigAllocations, Case, oracle, requires_compiled
from torch import nn

import pylaundering.ops as O

CASES = [
    Case("kl", "distill_loss", "kl", {"alpha": 1.0, "temperature": 2.0}),
    Case("kl_ce", "distill_loss", "kl", {"alpha": 0.5, "temperature": 2.0}),
    Case("rkl_ce", "distill_loss", "reverse_kl", {"alpha": 0.75, "temperature": 0.5}),
    Case("jsd_ce", "distill_loss", "jsd", {"alpha": 0.25, "temperature": 1.0, "beta": 0.25}),
    Case("mse_ce", "distill_loss", "mse", {"alpha": 0.5}),
    Case("ce", "distill_loss", "kl", {"alpha": 0.0}),
]
REDUCTIONS = ("none", "sum", "mean", "batchmean")


def _inputs(N=29, Hs=12, Ht=7, V=41, dtype=torch.float64, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    h, w = r(N, Hs), r(V, Hs) * 0.5
    b = r(V) if bias else None
    th, tw, tb = r(N, Ht), r(V, Ht) * 0.7, r(V)
    y = torch.randint(0, V, (N,), generator=g)
    y[::5] = -100
    return h, w, b, (th, tw, tb), y


def _teacher(form, t):
    th, tw, tb = t
    if form == "logits":
        return th @ tw.T + tb
    return (th, tw, tb) if form == "hidden+bias" else (th, tw)


def _teacher_logits(form, t):
    th, tw, tb = t
    return th @ tw.T + (tb if form != "hidden" else 0)


def _leaves(*xs):
    return [x.detach().clone().requires_grad_(True) if x is not None else None for x in xs]


def _run(case, form, reduction, chunk, dtype=torch.float64, bias=True, seed=0):
    h, w, b, t, y = _inputs(dtype=dtype, seed=seed, bias=bias)
    fh, fw, fb = _leaves(h, w, b)
    kw = {k: v for k, v in case.kw.items()}
    loss = O.fused_linear_distill_loss(fh, fw, _teacher(form, t) if kw["alpha"] > 0 else None, y,
                                       student_bias=fb, kind=case.kind, reduction=reduction, chunk_size=chunk, **kw)
    oh, ow, ob = _leaves(h.double(), w.double(), b.double() if b is not None else None)
    logits = oh @ ow.T + (ob if ob is not None else 0)
    tl = _teacher_logits(form, tuple(x.double() for x in t))
    expected = oracle(case, logits, tl, y, reduction)
    up = torch.randn(loss.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    got = torch.autograd.grad((loss.double() * up).sum(), [x for x in (fh, fw, fb) if x is not None])
    want = torch.autograd.grad((expected * up).sum(), [x for x in (oh, ow, ob) if x is not None])
    return loss, expected, got, want


@pytest.mark.parametrize("chunk", [1, 7, 29, 64])
@pytest.mark.parametrize("form", ["logits", "hidden", "hidden+bias"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_the_naive_computation_fp64(case, reduction, form, chunk):
    loss, expected, got, want = _run(case, form, reduction, chunk)
    assert loss.dtype == torch.float64 and loss.shape == expected.shape
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)
    for name, a, e in zip(("hidden", "weight", "bias"), got, want):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-11, msg=lambda m, name=name: f"grad of {name}: {m}")


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 2e-5), (torch.bfloat16, 3e-2)], ids=str)
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4]], ids=repr)
def test_low_precision_close_to_the_naive_computation(case, dtype, rtol):
    loss, expected, got, want = _run(case, "hidden+bias", "batchmean", 8, dtype=dtype)
    assert loss.dtype == dtype and all(g.dtype == dtype for g in got)
    torch.testing.assert_close(loss.double(), expected, rtol=rtol, atol=rtol)
    for a, e in zip(got, want):
        scale = e.abs().max().item()
        assert (a.double() - e).abs().max().item() <= rtol * 4 * scale, (a, e)


def test_no_bias():
    loss, expected, got, want = _run(CASES[1], "logits", "sum", 5, bias=False)
    torch.testing.assert_close(loss, expected)
    assert len(got) == 2
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_gradcheck_fp64(reduction):
    h, w, b, t, y = _inputs(N=6, Hs=4, Ht=3, V=5)
    h, w, b = _leaves(h, w, b)

    def fn(h, w, b):
        return O.fused_linear_distill_loss(h, w, t, y, student_bias=b, kind="jsd", alpha=0.5, temperature=2.0,
                                           beta=0.25, reduction=reduction, chunk_size=4)

    assert torch.autograd.gradcheck(fn, (h, w, b))
    assert torch.autograd.gradgradcheck is not None  # (second order is not supported: backward is fused)


def test_every_row_ignored_gives_zero_loss_and_gradient():
    h, w, b, t, y = _inputs()
    y[:] = -100
    h, w, b = _leaves(h, w, b)
    loss = O.fused_linear_distill_loss(h, w, t, y, student_bias=b, alpha=0.5, temperature=2.0, chunk_size=8)
    loss.backward()
    assert loss.item() == 0 and not h.grad.any() and not w.grad.any() and not b.grad.any()


def test_masked_vocabulary_entries_as_the_dense_op():
    """A -inf bias masks a vocabulary entry (probability 0, no loss, no gradient), as in distill_loss."""
    h, w, b, t, y = _inputs()
    b[3] = float("-inf")
    tl = _teacher_logits("hidden+bias", t)
    tl[:, 3] = float("-inf")
    y[y == 3] = 4
    fh, fw = _leaves(h, w)
    loss = O.fused_linear_distill_loss(fh, fw, tl, y, student_bias=b, alpha=0.5, temperature=2.0, chunk_size=6)
    loss.backward()
    dh, dw = _leaves(h, w)
    dense = O.distill_loss(dh @ dw.T + b, tl, y, alpha=0.5, temperature=2.0)
    dense.backward()
    torch.testing.assert_close(loss, dense)
    torch.testing.assert_close(fh.grad, dh.grad)
    torch.testing.assert_close(fw.grad, dw.grad)
    assert not fw.grad[3].any()


def test_no_grad_and_frozen_inputs():
    h, w, b, t, y = _inputs()
    with torch.no_grad():
        a = O.fused_linear_distill_loss(h, w, t, y, student_bias=b, alpha=0.5)
    h2 = h.clone().requires_grad_(True)  # only the hidden states train (a frozen head)
    c = O.fused_linear_distill_loss(h2, w, t, y, student_bias=b, alpha=0.5)
    c.backward()
    torch.testing.assert_close(a, c.detach())
    assert h2.grad is not None and w.grad is None


def test_module_wrapper_takes_the_lm_head_and_any_leading_shape():
    torch.manual_seed(0)
    head = nn.Linear(12, 41).double()
    teacher_head = nn.Linear(7, 41).double()
    hs, ht = torch.randn(2, 5, 12, dtype=torch.float64), torch.randn(2, 5, 7, dtype=torch.float64)
    y = torch.randint(0, 41, (2, 5))
    loss_fn = O.FusedLinearDistillLoss(head, kind="kl", alpha=0.5, temperature=2.0, chunk_size=3)
    loss = loss_fn(hs, (ht, teacher_head.weight, teacher_head.bias), y)
    loss.backward()
    got = head.weight.grad.clone()
    head.zero_grad()
    dense = O.distill_loss(head(hs), teacher_head(ht).detach(), y, alpha=0.5, temperature=2.0)
    dense.backward()
    torch.testing.assert_close(loss, dense)
    torch.testing.assert_close(got, head.weight.grad)
    assert "kind='kl'" in repr(loss_fn)
    per_row = O.FusedLinearDistillLoss(head, alpha=0.5, reduction="none")(hs, teacher_head(ht), y)
    assert per_row.shape == (2, 5)


@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_compile_fullgraph(reduction):
    h, w, b, t, y = _inputs()
    up = torch.randn(h.shape[0] if reduction == "none" else (), dtype=torch.float64)

    def fn(h, w, b):
        return O.fused_linear_distill_loss(h, w, t, y, student_bias=b, kind="kl", alpha=0.5, temperature=2.0,
                                           reduction=reduction, chunk_size=8)

    def step(f):
        leaves = _leaves(h, w, b)
        out = f(*leaves)
        (out * up).sum().backward()
        return out.detach(), [x.grad for x in leaves]

    e_out, e_grads = step(fn)
    c_out, c_grads = step(torch.compile(fn, fullgraph=True, backend="aot_eager"))
    torch.testing.assert_close(c_out, e_out)
    for a, e in zip(c_grads, e_grads):
        torch.testing.assert_close(a, e)


@requires_compiled
def test_never_allocates_the_full_logits():
    N, H, V = 256, 16, 2048  # [N, V] (2 MB) is far larger than any chunk (32 rows) or the weight (128 KB)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, H, generator=g, requires_grad=True)
    w = torch.randn(V, H, generator=g, requires_grad=True)
    t = (torch.randn(N, H, generator=g), torch.randn(V, H, generator=g))
    y = torch.randint(0, V, (N,), generator=g)
    with BigAllocations(N * V * 4 // 4, [h, w, *t]) as mode:
        O.fused_linear_distill_loss(h, w, t, y, alpha=0.5, temperature=2.0, chunk_size=32).backward()
    assert w.grad is not None and not mode.storages, list(mode.storages.values())
    with BigAllocations(N * V * 4 // 4, [h, w, *t]) as naive:
        O.distill_loss(h @ w.T, t[0] @ t[1].T, y, alpha=0.5, temperature=2.0).backward()
    assert naive.storages  # the check can see an [N, V] tensor when there is one


def test_default_chunk_size():
    assert O.choose_chunk_size(10, 50) == 10
    per_row = 128_256 * (2 * 4 + 4)  # CPU: logits (their gradient written over them) and the teacher's
    small = O.choose_chunk_size(100_000, 128_256)  # 256 MB of chunk buffers
    assert small % 64 == 0 and small * per_row <= 256 * 2**20 < (small + 64) * per_row
    big = O.choose_chunk_size(100_000, 128_256, hidden=2048)  # up to half the 1 GB weight gradient
    assert big == 320 and big * per_row <= 128_256 * 2048 * 4 // 2 < (big + 64) * per_row
    assert O.choose_chunk_size(100_000, 128_256, torch.bfloat16) > small


def _ok_args():
    h, w, b, t, y = _inputs(dtype=torch.float32)
    return h, w, b, t, y


@pytest.mark.parametrize("mutate, error, match", [
    (lambda a: a.update(h=a["h"][:, :5]), ValueError, "hidden size 5 does not match student_weight"),
    (lambda a: a.update(t=(a["t"][0], a["t"][1][:30], None)), ValueError, "vocabulary mismatch"),
    (lambda a: a.update(t=a["t"][0] @ a["t"][1].T[:, :30]), ValueError, "do not match the student's"),
    (lambda a: a.update(t=(a["t"][0][:4], a["t"][1], None)), ValueError, "teacher_hidden has 4 rows"),
    (lambda a: a.update(chunk=0), ValueError, "chunk_size must be an integer >= 1"),
    (lambda a: a.update(w=a["w"].double()), TypeError, "dtype mismatch"),
    (lambda a: a.update(t=(a["t"][0].double(), a["t"][1].double(), None)), TypeError, "dtype mismatch"),
    (lambda a: a.update(h=a["h"].to(torch.int64)), TypeError, "student_hidden must be float"),
    (lambda a: a.update(b=a["b"][:3]), ValueError, "student_bias has 3 entries"),
    (lambda a: a.update(y=a["y"][:3]), ValueError, r"labels \(3,\) must have shape \[N\]"),
    (lambda a: a.update(y=a["y"].float()), TypeError, "labels must be an integer tensor"),
    (lambda a: a["y"].__setitem__(0, 41), ValueError, "label 41 is out of range"),
    (lambda a: a.update(t="logits"), TypeError, "teacher must be logits"),
    (lambda a: a.update(t=None), ValueError, "a teacher is required"),
    (lambda a: a.update(T=0.0), ValueError, "temperature"),
])
def test_bad_input_is_refused_clearly(mutate, error, match):
    h, w, b, t, y = _ok_args()
    a = dict(h=h, w=w, b=b, t=t, y=y, chunk=8, T=2.0)
    mutate(a)
    with pytest.raises(error, match=match):
        O.fused_linear_distill_loss(a["h"], a["w"], a["t"], a["y"], student_bias=a["b"], alpha=0.5,
                                    temperature=a["T"], chunk_size=a["chunk"])


def test_device_mismatch_is_refused():
    h, w, b, t, y = _ok_args()
    with pytest.raises(ValueError, match="device mismatch"):
        O.fused_linear_distill_loss(h, w.to("meta"), t, y, alpha=0.5)


# ------------------------------------------------------------------ sparse teachers (top-k, sampled)

SPARSE_CASES = [("kl", 1.0, 2.0), ("kl", 0.5, 1.0), ("reverse_kl", 0.75, 2.0), ("jsd", 0.25, 1.0), ("mse", 0.5, 1.0)]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("reduction", ["none", "batchmean"])
@pytest.mark.parametrize("kind, alpha, T", SPARSE_CASES, ids=lambda x: str(x))
def test_sparse_teacher_matches_topk_distill_loss_on_full_logits(kind, alpha, T, reduction, chunk, backend,
                                                                   monkeypatch):
    """fused_linear_distill_loss(h, w, sparse) == topk_distill_loss(h @ w.T + b, sparse), values and the
    gradients of h, w and b (topk_distill_loss is tied to the dense loss in test_sparse.py)."""
    if backend == "reference":
        monkeypatch.setenv("PYLAUNDERING_BACKEND", "reference")
    elif not O.backend().name == "cpp":
        pytest.skip("compiled kernels not in use")
    h, w, b, t, y = _inputs()
    teacher = O.topk_teacher(_teacher_logits("hidden+bias", t), 6, temperature=T)
    up = torch.randn(h.shape[0] if reduction == "none" else (), dtype=torch.float64,
                     generator=torch.Generator().manual_seed(2))
    fh, fw, fb = _leaves(h, w, b)
    got = O.fused_linear_distill_loss(fh, fw, teacher, y, student_bias=fb, kind=kind, alpha=alpha, temperature=T,
                                      reduction=reduction, chunk_size=chunk)
    gg = torch.autograd.grad((got * up).sum(), [fh, fw, fb])
    oh, ow, ob = _leaves(h, w, b)
    want = O.topk_distill_loss(oh @ ow.T + ob, teacher, y, kind=kind, alpha=alpha, temperature=T,
                               reduction=reduction)
    gw = torch.autograd.grad((want * up).sum(), [oh, ow, ob])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for a, e in zip(gg, gw):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-10)


def test_sampled_teacher_through_the_linear_op_and_its_refusals():
    h, w, b, t, y = _inputs()
    st = O.sampled_teacher(_teacher_logits("hidden", t), 8, temperature=2.0, generator=torch.Generator().manual_seed(0))
    got = O.fused_linear_distill_loss(h, w, st, y, student_bias=b, alpha=0.5, temperature=2.0, chunk_size=5)
    want = O.topk_distill_loss(h @ w.T + b, st, y, alpha=0.5, temperature=2.0)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="sampled teacher"):
        O.fused_linear_distill_loss(h, w, st, y, student_bias=b, kind="jsd", alpha=0.5, temperature=2.0)
    bad = st._replace(indices=st.indices[:, [0, 0, 2, 3, 4, 5, 6, 7]])
    with pytest.raises(ValueError, match="repeat"):
        O.fused_linear_distill_loss(h, w, bad, y, student_bias=b, alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match=r"V = 5 classes"):  # k > V
        O.fused_linear_distill_loss(h, w[:5], st, alpha=1.0, temperature=2.0)
    with pytest.raises(ValueError, match=r"out of range \[0, 20\)"):  # a teacher of a larger vocabulary
        O.fused_linear_distill_loss(h, w[:20], st, alpha=1.0, temperature=2.0)


def test_sparse_teacher_module_wrapper_and_compile():
    h, w, b, t, y = _inputs()
    teacher = O.topk_teacher(_teacher_logits("hidden", t), 5, temperature=2.0)
    head = nn.Linear(h.shape[1], w.shape[0], dtype=torch.float64)
    loss_fn = O.FusedLinearDistillLoss(head, alpha=0.5, temperature=2.0, chunk_size=8)
    want = O.topk_distill_loss(head(h), teacher, y, alpha=0.5, temperature=2.0)
    torch.testing.assert_close(loss_fn(h.reshape(1, *h.shape), teacher, y.reshape(1, -1)), want)

    def fn(h, w):
        return O.fused_linear_distill_loss(h, w, teacher, y, alpha=0.5, temperature=2.0, chunk_size=8)

    a = _leaves(h, w)
    fn(*a).backward()
    c = _leaves(h, w)
    torch.compile(fn, fullgraph=True, backend="aot_eager")(*c).backward()
    for x, z in zip(a, c):
        torch.testing.assert_close(x.grad, z.grad)
