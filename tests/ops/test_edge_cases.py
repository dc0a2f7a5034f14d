"""Edge cases: non-contiguous inputs, huge logits, -inf masks, ignored rows, empty batches,
block boundaries of the kernel, and float64 parameter precision."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from ops_oracle import (
    CASE_BY_ID,
    CASES,
    KIND_NAMES,
    TOL,
    assert_close_scaled,
    distill_rows,
    fused_and_oracle,
    masked_oracle_rows,
    requires_compiled,
)

import pylaundering.ops as O

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
KINDS = list(KIND_NAMES)
INF = float("inf")


def _dt(d):
    return str(d).replace("torch.", "")


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", ["transposed", "sliced", "expanded_teacher", "channels"])
@pytest.mark.parametrize("case", [c for c in CASES if c.op != "cross_entropy"] + [CASE_BY_ID["cross_entropy"]],
                         ids=repr)
def test_non_contiguous_inputs(case, layout):
    g = torch.Generator().manual_seed(1)
    if layout == "transposed":  # [V, N] storage, used as [N, V]
        s = torch.randn(37, 6, generator=g).t()
        t = torch.randn(37, 6, generator=g).t()
    elif layout == "sliced":  # every other class of a wider tensor, every other row
        s = torch.randn(12, 80, generator=g)[::2, 1::2]
        t = torch.randn(12, 80, generator=g)[::2, ::2]
    elif layout == "expanded_teacher":  # one teacher row broadcast to all rows (stride 0)
        s = torch.randn(6, 40, generator=g)
        t = torch.randn(1, 40, generator=g).expand(6, 40)
    else:  # [B, V, L] storage permuted to [B, L, V]
        s = torch.randn(2, 33, 3, generator=g).permute(0, 2, 1)
        t = torch.randn(2, 33, 3, generator=g).permute(0, 2, 1)
    assert not (s.is_contiguous() and t.is_contiguous())
    V = s.shape[-1]
    y = torch.randint(0, V, s.shape[:-1], generator=g)
    y = torch.stack([y, y], -1)[..., 0]  # non-contiguous labels too
    for reduction in ("none", "batchmean"):
        out, grad, exp, exp_grad = fused_and_oracle(case, s, t if case.needs_teacher else None, y, reduction)
        assert_close_scaled(out, exp, 2e-5, 1e-6, "value")
        assert_close_scaled(grad, exp_grad, 2e-5, 1e-12, "grad")
        assert grad.shape == s.shape


# --------------------------------------------------------------------------- magnitudes
@pytest.mark.parametrize("dtype", DTYPES, ids=_dt)
@pytest.mark.parametrize("kind", KINDS)
def test_huge_logits(kind, dtype):
    """Logits of +/-1e4: no overflow, no NaN; values and gradients as the float64 oracle.

    Gradient tolerance: at |logits| = 1e4 the reverse-KL gradient is the difference of two O(1e4)
    log-ratios, so float32 arithmetic (eager PyTorch included) has absolute errors ~ eps32 * 1e4.
    """
    g = torch.Generator().manual_seed(2)
    sign = torch.randint(0, 2, (4, 50), generator=g) * 2 - 1
    s = (sign * 1e4 + torch.randn(4, 50, generator=g) * 100).to(dtype)
    t = (-sign * 1e4 + torch.randn(4, 50, generator=g) * 100).to(dtype)
    s[0, 3], t[0, 3] = 1e4, 1e4
    y = torch.tensor([3, 0, -100, 49])
    if kind == "mse" and dtype == torch.float16:  # a loss of (2e4)^2 overflows float16 (max 65504)
        s, t = s / 128, t / 128
    for alpha, T in ((1.0, 1.0), (0.5, 2.0)):
        case = replace(CASE_BY_ID["distill_kl_ce"], kind=kind, kw={"alpha": alpha, "temperature": T})
        out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, "batchmean")  # fp16 max is 65504
        assert torch.isfinite(out) and torch.isfinite(grad).all()
        assert_close_scaled(out, exp, TOL[dtype][0], 0, f"{kind} value")
        eps_acc = 2.0**-53 if dtype == torch.float64 else 2.0**-24
        atol = T * TOL[dtype][2] + 4 * eps_acc * 1e4
        torch.testing.assert_close(grad.double(), exp_grad, rtol=TOL[dtype][2], atol=atol)


def test_identical_inputs_give_zero_loss():
    s = torch.randn(5, 300) * 50
    for kind in KINDS:
        assert O.distill_loss(s, s.clone(), kind=kind, reduction="none").abs().max() < 1e-5


# --------------------------------------------------------------------------- -inf masks
def _check_masked(kind, s, t, y, live, alpha, T, dtype=torch.float64, beta=0.5):
    a = s.detach().to(dtype).clone().requires_grad_(True)
    rows = O.distill_loss(a, t.to(dtype), y, kind=kind, alpha=alpha, temperature=T, beta=beta, reduction="none")
    rows.sum().backward()
    assert torch.isfinite(rows).all(), rows
    assert not torch.isnan(a.grad).any() and torch.isfinite(a.grad).all()
    assert (a.grad[~live] == 0).all(), "masked classes must get exactly zero gradient"
    exp, exp_grad = masked_oracle_rows(kind, s.to(dtype), t.to(dtype), y, live, alpha, T, beta)
    rtol, atol, gtol = TOL[dtype]
    assert_close_scaled(rows, exp, rtol, atol, "masked value")
    assert_close_scaled(a.grad, exp_grad, gtol, 1e-12, "masked grad")


@pytest.mark.parametrize("dtype", DTYPES, ids=_dt)
@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("kind", KINDS)
def test_three_of_five_options_mask(kind, alpha, dtype):
    """A multiple-choice head: 5 classes, 2 masked with -inf in both student and teacher."""
    g = torch.Generator().manual_seed(4)
    s = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    t = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    live = torch.tensor([True, False, True, False, True]).expand(6, 5).clone()
    s[~live], t[~live] = -INF, -INF
    y = torch.tensor([0, 2, 4, -100, 2, 0])
    _check_masked(kind, s, t, y, live, alpha, 2.0, dtype)


@pytest.mark.parametrize("V", [3, 40, 5000])
@pytest.mark.parametrize("kind", KINDS)
def test_random_masks_same_positions(kind, V):
    """Per-row random masks (at least one class live), long rows crossing the 2048 block."""
    g = torch.Generator().manual_seed(V)
    N = 5
    s = torch.randn(N, V, generator=g, dtype=torch.float64) * 3
    t = torch.randn(N, V, generator=g, dtype=torch.float64) * 3
    live = torch.rand(N, V, generator=g) < 0.6
    live[:, 0] |= ~live.any(1)
    live[1] = False  # a row with a single live class (V - 1 masked)
    live[1, V - 1] = True
    if V > 2048:
        live[2, :2100] = False  # the whole first statistics block masked
        live[3, 2040:] = False  # everything after the first block masked
    s[~live], t[~live] = -INF, -INF
    y = torch.stack([live[i].nonzero()[-1, 0] for i in range(N)])
    y[4] = -100
    for alpha, T in ((1.0, 1.0), (0.25, 3.0)):
        _check_masked(kind, s, t, y, live, alpha, T)


@pytest.mark.parametrize("V", [7, 3000])
def test_one_sided_masks(V):
    """Legal one-sided masks: teacher-only -inf for forward KL and JSD (pt = 0 there), student-only for
    reverse KL and JSD. Compared with the written-out KL sum over the live terms."""
    g = torch.Generator().manual_seed(7)
    s = torch.randn(3, V, generator=g, dtype=torch.float64) * 2
    t = torch.randn(3, V, generator=g, dtype=torch.float64) * 2
    masked = torch.zeros(3, V, dtype=torch.bool)
    masked[:, : V // 2 + 1] = True  # first half: the first statistics block when V > 2048
    masked[1, :] = False
    masked[2, -2:] = True

    def kl(p_log, q_log):  # sum p (log p - log q) over the classes where p > 0 (NaN-free gradient)
        live = p_log > -INF
        pl = torch.where(live, p_log, torch.zeros_like(p_log))
        ql = torch.where(live, q_log, torch.zeros_like(q_log))
        return torch.where(live, pl.exp() * (pl - ql), torch.zeros_like(pl)).sum(-1)

    for side, kinds in (("teacher", ["kl", "jsd"]), ("student", ["reverse_kl", "jsd"])):
        sm = s.masked_fill(masked, -INF) if side == "student" else s
        tm = t.masked_fill(masked, -INF) if side == "teacher" else t
        for kind in kinds:
            a = sm.clone().requires_grad_(True)
            got = O.distill_loss(a, tm, kind=kind, temperature=2.0, beta=0.25, reduction="none")
            got.sum().backward()
            b = sm.clone().requires_grad_(True)
            ls, lt = F.log_softmax(b / 2, -1), F.log_softmax(tm / 2, -1)
            if kind == "kl":
                exp = 4 * kl(lt, ls)
            elif kind == "reverse_kl":
                exp = 4 * kl(ls, lt)
            else:
                lm = torch.logaddexp(lt + math.log(0.25), ls + math.log(0.75))
                exp = 4 * (0.25 * kl(lt, lm) + 0.75 * kl(ls, lm))
            exp.sum().backward()
            assert torch.isfinite(got).all() and torch.isfinite(a.grad).all(), (side, kind)
            torch.testing.assert_close(got, exp, rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
            if side == "student":
                assert (a.grad[masked] == 0).all()


# --------------------------------------------------------------------------- ignored rows
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("case", [c for c in CASES if c.needs_labels] + [CASE_BY_ID["distill_kl_ce"]], ids=repr)
def test_all_rows_ignored(case, reduction):
    """Every label is ignore_index: loss 0, gradient 0, no NaN (F.cross_entropy's mean gives NaN here)."""
    s, t = torch.randn(2, 3, 11), torch.randn(2, 3, 11)
    y = torch.full((2, 3), -100)
    for alpha in {case.kw.get("alpha", 0.0), 1.0} if case.op == "distill_loss" else {None}:
        c = case if alpha is None else replace(case, kw={**case.kw, "alpha": alpha})
        from ops_oracle import call_fused

        a = s.clone().requires_grad_(True)
        out = call_fused(c, a, t, y, reduction)
        out.sum().backward()
        assert out.shape == ((2, 3) if reduction == "none" else ())
        assert (out == 0).all() and not torch.isnan(out).any()
        assert (a.grad == 0).all()


@pytest.mark.parametrize("ignore_index", [-100, -1, 0, 7])
def test_custom_ignore_index(ignore_index):
    s, t = torch.randn(6, 9, dtype=torch.float64), torch.randn(6, 9, dtype=torch.float64)
    y = torch.tensor([1, ignore_index, 2, 3, ignore_index, 8])
    y = torch.where(y == ignore_index, y, (y + 1) % 9)
    y = torch.where((y == ignore_index) & (torch.arange(6) % 3 != 1),
                    torch.full_like(y, 5 if ignore_index != 5 else 4), y)
    keep = y != ignore_index
    got = O.distill_loss(s, t, y, kind="jsd", alpha=0.5, ignore_index=ignore_index, reduction="none")
    exp = (0.5 * distill_rows(s, t, "jsd", 1.0, 0.5)
           + 0.5 * F.cross_entropy(s, y, ignore_index=ignore_index, reduction="none"))
    torch.testing.assert_close(got, torch.where(keep, exp, torch.zeros_like(exp)), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        O.cross_entropy(s, y, ignore_index=ignore_index), F.cross_entropy(s, y, ignore_index=ignore_index),
        rtol=1e-10, atol=0
    )


# --------------------------------------------------------------------------- degenerate shapes
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_empty_batch(case, reduction):
    from ops_oracle import call_fused

    s = torch.randn(0, 7, requires_grad=True)
    t = torch.randn(0, 7)
    y = torch.zeros(0, dtype=torch.long)
    out = call_fused(case, s, t, y, reduction)
    assert out.shape == ((0,) if reduction == "none" else ())
    if reduction != "none":
        assert out.item() == 0.0  # never 0/0
    out.sum().backward()
    assert s.grad.shape == (0, 7)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_single_class_is_zero(case):
    from ops_oracle import call_fused

    s, t = torch.randn(4, 1) * 10, torch.randn(4, 1) * 10
    y = torch.zeros(4, dtype=torch.long)
    a = s.clone().requires_grad_(True)
    out = call_fused(case, a, t, y, "sum")
    out.backward()
    if case.op == "logit_mse" or case.kind == "mse":  # MSE sees the raw difference, not a distribution
        w = case.kw.get("alpha", 1.0)
        torch.testing.assert_close(out, w * ((s - t) ** 2).sum(), rtol=1e-5, atol=1e-6)
    else:
        assert out.item() == 0.0 and (a.grad == 0).all()


# --------------------------------------------------------------------------- kernel structure
@pytest.mark.parametrize("order", ["student_max_last", "teacher_max_last", "both_last", "max_in_tail"])
@pytest.mark.parametrize("kind", KINDS)
def test_block_boundaries_and_running_max(kind, order):
    """Monotone rows move the running max in every 2048-element block; a max in the vector tail."""
    V = 2048 * 2 + 37
    x = torch.linspace(-30, 30, V, dtype=torch.float64)
    s, t = {
        "student_max_last": (x, x.flip(0)),
        "teacher_max_last": (x.flip(0), x),
        "both_last": (x, 0.5 * x),
        "max_in_tail": (torch.sin(x), torch.cos(x)),
    }[order]
    if kind == "tvd" and order in ("student_max_last", "teacher_max_last"):
        # a mirrored row has pt = ps exactly in its middle, where tvd's gradient is a choice of subgradient
        # that rounding makes (sign +-1 or 0); off the tie the comparison is exact
        t = 1.01 * t
    s, t = s.clone()[None].repeat(2, 1), t.clone()[None].repeat(2, 1)
    if order == "max_in_tail":
        s[:, -1], t[:, -2] = 40.0, 40.0
    y = torch.tensor([V - 1, 0])
    for alpha, T in ((1.0, 1.0), (0.5, 4.0)):
        case = replace(CASE_BY_ID["distill_kl_ce"], kind=kind, kw={"alpha": alpha, "temperature": T})
        for dtype in (torch.float64, torch.float32):
            out, grad, exp, exp_grad = fused_and_oracle(case, s.to(dtype), t.to(dtype), y, "none")
            # JSD of disjoint distributions has a ~0 gradient: the floor is absolute
            rtol, floor = (1e-10, 1e-12) if dtype == torch.float64 else (1e-4, 1e-6)
            assert_close_scaled(out, exp, rtol, floor, f"{kind} value {dtype}")
            assert_close_scaled(grad, exp_grad, rtol, floor, f"{kind} grad {dtype}")


@pytest.mark.parametrize("V", [15, 16, 17, 31, 33, 2047, 2048, 2049])
def test_vector_tails(V):
    """Lengths around the SIMD width (8/16 floats) and the 2048 block."""
    s, t = torch.randn(3, V, dtype=torch.float64), torch.randn(3, V, dtype=torch.float64)
    y = torch.tensor([V - 1, 0, V // 2])
    for kind in KINDS:
        case = replace(CASE_BY_ID["distill_kl_ce"], kind=kind, kw={"alpha": 0.5, "temperature": 2.0})
        out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, "sum")
        assert_close_scaled(out, exp, 1e-10, 1e-12, kind)
        assert_close_scaled(grad, exp_grad, 1e-10, 1e-14, kind)


def test_float32_accuracy_at_large_V():
    """fp32 accumulation over 128256 classes stays within 1e-5 of the float64 oracle."""
    s, t = torch.randn(2, 128256) * 4, torch.randn(2, 128256) * 4
    y = torch.tensor([5, 128255])
    for kind in KINDS:
        case = replace(CASE_BY_ID["distill_kl_ce"], kind=kind, kw={"alpha": 0.5, "temperature": 2.0})
        out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, "sum")
        assert_close_scaled(out, exp, 1e-5, 0, kind)
        assert_close_scaled(grad, exp_grad, 1e-5, 1e-12, kind)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=_dt)
def test_low_precision_accumulates_in_float32(dtype):
    """A bf16/fp16 loss is the float32-accumulated value rounded once, not a low-precision sum."""
    s, t = (torch.randn(4, 20000) * 3).to(dtype), (torch.randn(4, 20000) * 3).to(dtype)
    got = O.kl_div(s, t, 2.0, "none")
    exp = O.kl_div(s.double(), t.double(), 2.0, "none").to(dtype)
    assert torch.equal(got, exp) or (got.double() - exp.double()).abs().max() <= exp.double().abs().max() * 2**-7


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=_dt)
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("kind", ["kl", "reverse_kl", pytest.param("jsd", marks=[requires_compiled]), "mse"])
def test_low_precision_gradient_is_rounded_once(kind, alpha, dtype):
    """bf16/fp16 kernels compute in float32: their gradient is the float32 kernel's gradient on the same
    (rounded) inputs, rounded once to the output dtype - bit for bit (reduction='sum', so the backward's
    scale is 1 and adds no rounding)."""
    if kind == "jsd" and alpha == 0.0:  # alpha = 0 is pure CE: no JSD pass, nothing to fail
        pytest.skip("alpha = 0 has no JSD term")
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(64, 37, generator=g) * 3).to(dtype)
    t = (torch.randn(64, 37, generator=g) * 3).to(dtype)
    y = torch.randint(0, 37, (64,), generator=g)
    a = s.clone().requires_grad_(True)
    O.distill_loss(a, t, y, kind=kind, alpha=alpha, temperature=2.0, reduction="sum").backward()
    b = s.float().requires_grad_(True)
    O.distill_loss(b, t.float(), y, kind=kind, alpha=alpha, temperature=2.0, reduction="sum").backward()
    assert torch.equal(a.grad, b.grad.to(dtype)), f"max diff {(a.grad.float() - b.grad.to(dtype).float()).abs().max()}"


# --------------------------------------------------------------------------- float64 parameters
@pytest.mark.parametrize("kind", ["kl", "jsd"])
@requires_compiled
def test_fp64_parameters_are_not_rounded_to_float32(kind):
    s, t = torch.randn(4, 100, dtype=torch.float64) * 3, torch.randn(4, 100, dtype=torch.float64) * 3
    y = torch.tensor([1, 2, 3, 4])
    got = O.distill_loss(s, t, y, kind=kind, alpha=0.3, temperature=0.7, beta=0.3, reduction="none")
    exp = 0.3 * distill_rows(s, t, kind, 0.7, 0.3) + 0.7 * F.cross_entropy(s, y, reduction="none")
    torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-14)


def test_fp64_with_float32_exact_parameters_is_fp64_accurate():
    """The same comparison with T, alpha, beta exact in float32 does hold to 1e-12."""
    s, t = torch.randn(4, 100, dtype=torch.float64) * 3, torch.randn(4, 100, dtype=torch.float64) * 3
    y = torch.tensor([1, 2, 3, 4])
    for kind in ("kl", "jsd"):
        got = O.distill_loss(s, t, y, kind=kind, alpha=0.375, temperature=0.625, beta=0.25, reduction="none")
        exp = 0.375 * distill_rows(s, t, kind, 0.625, 0.25) + 0.625 * F.cross_entropy(s, y, reduction="none")
        torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("T", [16.0, 1e3, 1e6])
def test_large_temperature_stays_accurate(T, dtype, direction):
    """T^2 * KL at large T: float32 rounding of log-probabilities would grow like T^2 (a negative
    KL of -27672 at T = 1e6 where the value is 0.8); the value and gradient stay accurate."""
    g = torch.Generator().manual_seed(7)
    s = torch.randn(4, 1000, generator=g).to(dtype)
    t = torch.randn(4, 1000, generator=g).to(dtype)
    a = s.clone().requires_grad_(True)
    out = O.kl_div(a, t, temperature=T, direction=direction)
    out.backward()
    assert out.dtype == dtype and a.grad.dtype == dtype
    b = s.double().requires_grad_(True)
    ls, lt = F.log_softmax(b / T, -1), F.log_softmax(t.double() / T, -1)
    inp, tgt = (ls, lt) if direction == "forward" else (lt, ls)
    exp = F.kl_div(inp, tgt, log_target=True, reduction="batchmean") * T * T
    exp.backward()
    rtol = 1e-3 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), exp, rtol=rtol, atol=0)
    torch.testing.assert_close(a.grad.double(), b.grad, rtol=rtol, atol=rtol * float(b.grad.abs().max()))
