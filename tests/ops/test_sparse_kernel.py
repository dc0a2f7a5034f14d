"""The fused sparse-teacher kernel (torch.ops.pylaundering.fused_sparse_distill) against a float64 oracle.

The oracle is the plain-PyTorch formulas of pylaundering/ops/sparse.py (``sparse_distill_rows``, the
same semantics written with gathers and logsumexp) on float64 copies of the inputs, with the gradient
from autograd; tests/ops/test_sparse.py ties those formulas to the dense op (k = V, chain rule).
Every CPU variant runs the matrix in a subprocess, as tests/ops/test_backends.py does for the dense op.
"""

from __future__ import annotations

import itertools
import textwrap

import pytest
import torch
import torch.nn.functional as F
from ops_oracle import requires_compiled
from test_backends import HAS_AVX2, HAS_AVX512, IS_X86

import pylaundering.ops as O
from pylaundering.ops.sparse import SparseTeacher, sparse_distill_rows

KIND_CODES = dict(O.KINDS)
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def make_case(N, V, k, dtype, seed, *, masks=True):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, V, generator=g, dtype=torch.float64) * 3
    t = torch.randn(N, V, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, V, (N,), generator=g)
    if masks and N > 2:
        y[1] = -100  # ignored row
        s[2, torch.randperm(V, generator=g)[: max(1, V // 5)]] = float("-inf")  # masked student entries
    return s.to(dtype), t.to(dtype), y


def oracle(s, values, indices, lognorm, y, kind, alpha, T, beta=0.5):
    """float64 rows and gradient from the reference formulas + autograd."""
    x = s.detach().double().requires_grad_(True)
    # the log-normaliser stays in its stored dtype: its rounding decides whether k = V leaves a teacher rest
    teacher = SparseTeacher(values.double(), indices, lognorm, T)
    rows = alpha * sparse_distill_rows(x, teacher, kind, T, beta) if alpha > 0 else torch.zeros(len(x),
                                                                                                 dtype=torch.float64)
    if y is not None and alpha < 1:
        rows = rows + (1 - alpha) * F.cross_entropy(x, y, ignore_index=-100, reduction="none")
    if y is not None:
        rows = torch.where(y == -100, torch.zeros_like(rows), rows)
    (g,) = torch.autograd.grad(rows.sum(), x)
    return rows.detach(), g


def kernel(s, values, indices, lognorm, y, kind, alpha, T, beta=0.5, grad=True):
    if lognorm is not None:
        lognorm = lognorm.to(torch.float64 if s.dtype == torch.float64 else torch.float32)
    return torch.ops.pylaundering.fused_sparse_distill(s, values, indices, lognorm, y, kind, alpha, T, beta, -100, grad)


def check(s, t, k, y, kind, alpha, T, with_lognorm):
    teacher = O.topk_teacher(t, k, temperature=T)  # its log-normaliser is at T
    lognorm = teacher.log_normalizer if with_lognorm else None
    labels = y if alpha < 1 else None
    rows, g = kernel(s, teacher.values, teacher.indices, lognorm, labels, kind, alpha, T)
    er, eg = oracle(s, teacher.values, teacher.indices, lognorm, labels, kind, alpha, T)
    tol = TOL[s.dtype]
    # relative to the row's scale: an exact 0 or inf is compared as such
    assert er[er.isfinite()].numel() >= len(er) - 1  # the case is not all infinities
    torch.testing.assert_close(rows.double(), er, rtol=tol, atol=tol * (1 + er[er.isfinite()].abs().max().item()),
                               equal_nan=True)
    scale = 1 + eg[eg.isfinite()].abs().max().item()
    torch.testing.assert_close(g.double(), eg, rtol=tol, atol=tol * scale, equal_nan=True)
    assert g.dtype == s.dtype and rows.dtype == (torch.float64 if s.dtype == torch.float64 else torch.float32)


@requires_compiled
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("kind", list(KIND_CODES.values()), ids=list(KIND_CODES))
@pytest.mark.parametrize("V, k", [(37, 1), (37, 7), (37, 37), (2500, 64), (2500, 2500)])
def test_kernel_matches_the_float64_oracle(dtype, kind, V, k):
    s, t, y = make_case(6, V, k, dtype, seed=V + k)
    for with_lognorm, alpha, T in itertools.product((True, False), (1.0, 0.5), (1.0, 2.0)):
        check(s, t, k, y, kind, alpha, T, with_lognorm)


@requires_compiled
def test_teacher_entries_of_zero_probability_and_sampled_style_teachers():
    """-inf teacher values (an entry the teacher gives nothing, as the padding of a sampled teacher)."""
    s, t, y = make_case(5, 300, 12, torch.float64, seed=3)
    teacher = O.topk_teacher(t, 12)
    values = teacher.values.clone()
    values[:, 8:] = float("-inf")
    for kind in (1, 3):
        for lognorm in (teacher.log_normalizer, None):
            rows, g = kernel(s, values, teacher.indices, lognorm, None, kind, 1.0, 1.0)
            er, eg = oracle(s, values, teacher.indices, lognorm, None, kind, 1.0, 1.0)
            torch.testing.assert_close(rows, er, rtol=1e-10, atol=1e-10, equal_nan=True)
            torch.testing.assert_close(g, eg, rtol=1e-10, atol=1e-10, equal_nan=True)


@requires_compiled
def test_nan_in_a_student_row_poisons_that_row_only():
    s, t, y = make_case(4, 200, 10, torch.float32, seed=5, masks=False)
    teacher = O.topk_teacher(t, 10, temperature=2.0)
    s[2, 17] = float("nan")
    rows, g = kernel(s, teacher.values, teacher.indices, teacher.log_normalizer, y, 1, 0.5, 2.0)
    assert torch.isnan(rows[2]) and torch.isnan(g[2]).all()
    keep = torch.tensor([0, 1, 3])
    assert torch.isfinite(rows[keep]).all() and torch.isfinite(g[keep]).all()


@requires_compiled
def test_many_rows_on_several_threads_equal_one_thread():
    s, t, y = make_case(64, 3000, 32, torch.float32, seed=7)
    teacher = O.topk_teacher(t, 32, temperature=2.0)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = kernel(s, teacher.values, teacher.indices, teacher.log_normalizer, y, 3, 0.5, 2.0)
        torch.set_num_threads(2)
        b = kernel(s, teacher.values, teacher.indices, teacher.log_normalizer, y, 3, 0.5, 2.0)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@requires_compiled
def test_no_gradient_asked_writes_none():
    s, t, y = make_case(3, 50, 4, torch.float32, seed=1)
    teacher = O.topk_teacher(t, 4)
    rows, g = kernel(s, teacher.values, teacher.indices, None, None, 1, 1.0, 1.0, grad=False)
    assert g.numel() == 0
    torch.testing.assert_close(rows, kernel(s, teacher.values, teacher.indices, None, None, 1, 1.0, 1.0)[0])


@requires_compiled
@pytest.mark.parametrize("mutate, match", [
    (lambda a: a.__setitem__("indices", torch.cat([a["indices"][:, :1], a["indices"][:, :-1]], 1)), "repeats in row 0"),
    (lambda a: a["indices"].__setitem__((1, 2), 50), r"index 50 at row 1 is out of range \[0, 50\)"),
    (lambda a: a["indices"].__setitem__((1, 2), -1), "out of range"),
    (lambda a: a.__setitem__("values", a["values"].double()), "values dtype"),
    (lambda a: a.__setitem__("indices", a["indices"].int()), "indices must be int64"),
    (lambda a: a.__setitem__("lognorm", a["lognorm"][:2]), "log_normalizer"),
    (lambda a: a.__setitem__("lognorm", a["lognorm"].double()), "log_normalizer must be Float"),
    (lambda a: a.__setitem__("kind", 0), "unknown kind"),
    (lambda a: a.__setitem__("T", 0.0), "temperature"),
    (lambda a: a.__setitem__("alpha", 0.5), "needs labels"),
    (lambda a: a.__setitem__("y", torch.tensor([0, 50, 1])), "label 50 at row 1"),
])
def test_raw_op_refuses_bad_input_with_a_value_or_type_error(mutate, match):
    s, t, _ = make_case(3, 50, 4, torch.float32, seed=2, masks=False)
    teacher = O.topk_teacher(t, 4)
    a = {"values": teacher.values.clone(), "indices": teacher.indices.clone(),
         "lognorm": teacher.log_normalizer.float(), "y": None, "kind": 1, "alpha": 1.0, "T": 1.0}
    mutate(a)
    if a["y"] is not None:
        a["alpha"] = 0.5
    with pytest.raises((ValueError, TypeError), match=match):
        torch.ops.pylaundering.fused_sparse_distill(s, a["values"], a["indices"], a["lognorm"], a["y"], a["kind"],
                                                    a["alpha"], a["T"], 0.5, -100, True)


_VARIANT_SCRIPT = textwrap.dedent(
    """
    import json, sys, itertools, torch
    sys.path.insert(0, "tests/ops")
    import pylaundering.ops as O
    from test_sparse_kernel import make_case, kernel, oracle, TOL
    from pylaundering import _C
    worst = 0.0
    for dtype, kind, (V, k) in itertools.product((torch.float32, torch.bfloat16, torch.float64), (1, 2, 3, 4),
                                                  ((37, 5), (2500, 2500))):
        s, t, y = make_case(5, V, k, dtype, seed=k)
        teacher = O.topk_teacher(t, k, temperature=2.0)
        for lognorm in (teacher.log_normalizer, None):
            rows, g = kernel(s, teacher.values, teacher.indices, lognorm, y, kind, 0.5, 2.0)
            er, eg = oracle(s, teacher.values, teacher.indices, lognorm, y, kind, 0.5, 2.0)
            fin = er.isfinite()
            scale = 1 + eg[eg.isfinite()].abs().max().item()
            worst = max(worst, float(((rows.double() - er)[fin].abs() / (TOL[dtype] * (1 + er[fin].abs()))).max()),
                        float(((g.double() - eg)[eg.isfinite()].abs() / (TOL[dtype] * scale)).max()))
    print(json.dumps({"variant": _C.cpu_kernel_variant(), "worst": worst}))
    """
)


@requires_compiled
@pytest.mark.parametrize(("cap", "expected"), [
    ("default", "DEFAULT"),
    pytest.param("avx2", "AVX2", marks=pytest.mark.skipif(not (IS_X86 and HAS_AVX2), reason="no AVX2/FMA")),
    pytest.param("avx512", "AVX512", marks=pytest.mark.skipif(not (IS_X86 and HAS_AVX512), reason="no AVX-512")),
])
def test_every_cpu_variant_matches_the_oracle(run_py, cap, expected):
    res = run_py(_VARIANT_SCRIPT, env={"PYLAUNDERING_CPU_CAPABILITY": cap})
    assert res["variant"] == expected
    assert res["worst"] <= 1.0, res


@requires_compiled
@pytest.mark.parametrize("kind", [1, 2, 3])
def test_a_rest_far_below_the_kept_entries_does_not_underflow(kind):
    """Kept entries ~120 above every other logit: fp32 exps of the rest relative to the row max are 0,
    so the kernel measures the rest from its own max; the float64 oracle has no underflow."""
    g = torch.Generator().manual_seed(11)
    V, k = 3000, 8
    s = torch.randn(4, V, generator=g, dtype=torch.float64)
    t = torch.randn(4, V, generator=g, dtype=torch.float64) * 2
    top = O.topk_teacher(t, k)
    s.scatter_(1, top.indices, 120 + torch.randn(4, k, generator=g, dtype=torch.float64))
    s32 = s.float()
    y = torch.randint(0, V, (4,), generator=g)
    for alpha in (1.0, 0.5):
        labels = y if alpha < 1 else None
        top32 = O.topk_teacher(t.float(), k)
        rows, grad = kernel(s32, top32.values, top32.indices, top32.log_normalizer, labels, kind, alpha, 1.0)
        er, eg = oracle(s32, top32.values, top32.indices, top32.log_normalizer, labels, kind, alpha, 1.0)
        assert torch.isfinite(rows).all() and torch.isfinite(grad).all()
        torch.testing.assert_close(rows.double(), er, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(grad.double(), eg, rtol=1e-4, atol=1e-6)
        buf = s32.clone()  # the in-place form takes the same (scalar) path
        lognorm = top32.log_normalizer
        out = torch.ops.pylaundering.fused_sparse_distill_out(buf, top32.values, top32.indices, lognorm, labels,
                                                              kind, alpha, 1.0, 0.5, -100, buf)
        assert torch.equal(out, rows) and torch.equal(buf, grad)


@requires_compiled
def test_non_finite_teacher_values_poison_the_row_and_alpha_zero_ignores_the_teacher():
    s, t, y = make_case(3, 40, 5, torch.float32, seed=4, masks=False)
    top = O.topk_teacher(t, 5)
    values = top.values.clone()
    values[1, 2] = float("nan")
    lognorm = top.log_normalizer.clone()
    lognorm[2] = float("inf")
    for kind in (1, 2, 3):
        rows, grad = kernel(s, values, top.indices, lognorm, None, kind, 1.0, 1.0)
        assert torch.isfinite(rows[0]) and torch.isnan(rows[1:]).all() and torch.isnan(grad[1:]).all()
    # alpha = 0: cross-entropy alone, whatever the teacher holds (never 0 * inf or 0 * NaN)
    rows, grad = kernel(s, values, top.indices, lognorm, y, 1, 0.0, 1.0)
    ce = F.cross_entropy(s, y, reduction="none")
    torch.testing.assert_close(rows, ce)
    torch.testing.assert_close(grad, torch.softmax(s, -1) - F.one_hot(y, 40).float())
