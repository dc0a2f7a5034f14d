"""Values and gradients of every op x reduction x dtype x V x leading shape against the oracle.

The oracle (ops_oracle.py) is plain torch (F.kl_div / F.log_softmax / F.cross_entropy /
F.mse_loss) in float64 on the same (dtype-rounded) inputs; gradients are autograd through it.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
import torch.nn.functional as F
from ops_oracle import (
    CASE_BY_ID,
    CASES,
    KIND_NAMES,
    REDUCTIONS,
    TOL,
    assert_close_scaled,
    fused_and_oracle,
    grad_atol,
    jsd_rows,
    jsd_written_out,
    make_inputs,
    requires_compiled,
    reverse_kl_rows,
)

import pylaundering.ops as O

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
VS = [1, 3, 4, 17, 1000, 32000]
LEADS = [(), (7,), (2, 5)]
# V = 32000 only with few rows (the oracle runs eager float64): one row, and a 2-D leading shape
SHAPES = [(V, lead) for V in VS for lead in (LEADS if V < 32000 else [(), (1, 2)])]


def _id(x):
    if isinstance(x, torch.dtype):
        return str(x).replace("torch.", "")
    if isinstance(x, tuple):
        return "lead" + "x".join(map(str, x)) if x else "lead0d"
    return None


@pytest.mark.parametrize(("V", "lead"), SHAPES, ids=[f"V{v}-{_id(lead)}" for v, lead in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_value_and_grad_match_oracle(case, reduction, dtype, V, lead):
    seed = zlib.crc32(repr((case.id, reduction, str(dtype), V, lead)).encode())  # stable across processes
    s, t, y = make_inputs(case, lead, V, dtype, seed)
    out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, reduction, seed)

    # shape and dtype contract: per-row output for 'none', scalar otherwise, in the input dtype
    assert out.shape == (lead if reduction == "none" else ())
    assert out.dtype == dtype
    assert grad.shape == s.shape and grad.dtype == dtype
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()

    rtol, atol, gtol = TOL[dtype]
    assert_close_scaled(out, exp, rtol, atol, f"{case.id} value")
    atol = grad_atol(case, s, t, y, reduction, exp_grad, seed)
    torch.testing.assert_close(grad.double(), exp_grad, rtol=gtol, atol=atol, msg=lambda m: f"{case.id} grad: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=_id)
def test_batchmean_default_is_F_kl_div_times_T2(dtype):
    """DESIGN 3: the default reduction equals F.kl_div(..., 'batchmean') * T*T on 2-D logits."""
    s, t = torch.randn(6, 50, dtype=dtype) * 3, torch.randn(6, 50, dtype=dtype) * 3
    T = 3.0
    exp = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean") * T * T
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(O.kl_div(s, t, temperature=T), exp, rtol=rtol, atol=0)
    torch.testing.assert_close(O.distill_loss(s, t, temperature=T), exp, rtol=rtol, atol=0)
    torch.testing.assert_close(O.KLDivLoss(temperature=T)(s, t), exp, rtol=rtol, atol=0)


def test_oracle_jsd_agrees_with_written_out_formula():
    """The oracle's JSD (logsumexp form) against the literal sum p log(p/m)."""
    s, t = torch.randn(5, 40, dtype=torch.float64) * 2, torch.randn(5, 40, dtype=torch.float64) * 2
    for beta in (0.1, 0.5, 0.9):
        torch.testing.assert_close(jsd_rows(s, t, 1.5, beta), jsd_written_out(s, t, 1.5, beta), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.875])
def test_jsd_kernel_against_written_out_formula(beta):
    s, t = torch.randn(4, 300, dtype=torch.float64) * 2, torch.randn(4, 300, dtype=torch.float64) * 2
    exp = jsd_written_out(s, t, 2.0, beta)
    got = O.jsd(s, t, beta=beta, temperature=2.0, reduction="none")
    # beta is passed to the kernel as float32; 0.1 is not exact there
    torch.testing.assert_close(got, exp, rtol=1e-7 if beta == 0.1 else 1e-11, atol=1e-12)


def test_jsd_symmetric_at_half_and_swaps_with_beta():
    s, t = torch.randn(3, 64, dtype=torch.float64), torch.randn(3, 64, dtype=torch.float64)
    torch.testing.assert_close(O.jsd(s, t, beta=0.5), O.jsd(t, s, beta=0.5), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(O.jsd(s, t, beta=0.25), O.jsd(t, s, beta=0.75), rtol=1e-12, atol=1e-14)


def test_reverse_kl_is_forward_kl_with_roles_swapped():
    s, t = torch.randn(3, 64, dtype=torch.float64), torch.randn(3, 64, dtype=torch.float64)
    torch.testing.assert_close(
        O.kl_div(s, t, 2.0, "none", direction="reverse"), O.kl_div(t, s, 2.0, "none"), rtol=1e-12, atol=1e-14
    )
    torch.testing.assert_close(O.kl_div(s, t, 2.0, "none", "reverse"), reverse_kl_rows(s, t, 2.0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_reference_module_agrees_with_oracle(kind):
    """pylaundering.ops.reference (the fallback) against the independent formulas."""
    from ops_oracle import distill_rows

    from pylaundering.ops import reference as R

    s, t = torch.randn(6, 33, dtype=torch.float64) * 3, torch.randn(6, 33, dtype=torch.float64) * 3
    got = R.distill_term_rows(s, t, O.KINDS[kind], 1.5, 0.3)
    torch.testing.assert_close(got, distill_rows(s, t, kind, 1.5, 0.3), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("T", [0.05, 0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("kind", ["kl", "reverse_kl", "jsd"])
def test_temperatures(kind, T):
    """Soft terms at T != 1 (fp64: parameters chosen exact in float32 except 0.05)."""
    case = CASE_BY_ID["distill_kl_ce"]
    s, t = torch.randn(4, 257, dtype=torch.float64) * 4, torch.randn(4, 257, dtype=torch.float64) * 4
    y = torch.tensor([0, 256, -100, 100])
    from dataclasses import replace

    c = replace(case, kind=kind, kw={"alpha": 0.5, "temperature": T})
    out, grad, exp, exp_grad = fused_and_oracle(c, s, t, y, "batchmean")
    rtol = 1e-6 if T == 0.05 else 1e-10
    assert_close_scaled(out, exp, rtol, 1e-12, "value")
    assert_close_scaled(grad, exp_grad, rtol, 1e-12, "grad")


def test_temperature_scaling_convention():
    """KL/JSD carry T^2 (gradient scale independent of T to first order); MSE ignores T."""
    s, t = torch.randn(4, 100, dtype=torch.float64), torch.randn(4, 100, dtype=torch.float64)
    big = 1000.0  # high-temperature limit: T^2 KL -> sum (s - t - mean)^2 / (2V) per row
    d = (s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))
    limit = (d * d).sum(-1) / (2 * 100)
    torch.testing.assert_close(O.kl_div(s, t, big, "none"), limit, rtol=5e-3, atol=0)
    assert O.distill_loss(s, t, kind="mse", temperature=5.0) == O.distill_loss(s, t, kind="mse", temperature=1.0)


def test_cross_entropy_matches_F_cross_entropy_with_custom_ignore_index():
    s = torch.randn(2, 5, 11)
    y = torch.randint(0, 11, (2, 5))
    y[0, 1] = 3  # 3 is the ignore index here
    got = O.cross_entropy(s, y, ignore_index=3)
    exp = F.cross_entropy(s.reshape(-1, 11), y.reshape(-1), ignore_index=3)
    torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(O.CrossEntropyLoss(ignore_index=3)(s, y), exp, rtol=1e-5, atol=1e-6)


def test_int32_labels_are_accepted():
    s = torch.randn(4, 9)
    y = torch.tensor([1, 2, 3, 8], dtype=torch.int32)
    torch.testing.assert_close(O.cross_entropy(s, y), F.cross_entropy(s, y.long()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_modules_equal_functional(kind):
    s, t = torch.randn(3, 4, 21), torch.randn(3, 4, 21)
    y = torch.randint(0, 21, (3, 4))
    m = O.DistillLoss(kind=kind, alpha=0.5, temperature=2.0, beta=0.25, reduction="sum")
    assert kind in repr(m)
    f = O.distill_loss(s, t, y, kind=kind, alpha=0.5, temperature=2.0, beta=0.25, reduction="sum")
    assert torch.equal(m(s, t, y), f)
    assert torch.equal(O.JSDLoss(0.25, 2.0, "none")(s, t), O.jsd(s, t, 0.25, 2.0, "none"))
    assert torch.equal(O.LogitMSELoss("sum")(s, t), O.logit_mse(s, t, "sum"))
    assert torch.equal(O.KLDivLoss(2.0, "mean", "reverse")(s, t), O.kl_div(s, t, 2.0, "mean", "reverse"))


def test_distill_mean_counts_only_kept_rows():
    """distill_loss 'mean'/'batchmean' divide by the rows whose label is not ignore_index."""
    s, t = torch.randn(6, 10, dtype=torch.float64), torch.randn(6, 10, dtype=torch.float64)
    y = torch.tensor([1, -100, 2, -100, -100, 3])
    rows = O.distill_loss(s, t, y, kind="kl", alpha=0.5, reduction="none")
    assert (rows[[1, 3, 4]] == 0).all() and (rows[[0, 2, 5]] > 0).all()
    for red in ("mean", "batchmean"):
        torch.testing.assert_close(
            O.distill_loss(s, t, y, kind="kl", alpha=0.5, reduction=red), rows.sum() / 3, rtol=1e-14, atol=0
        )
    # alpha = 1 with labels: pure distillation, but ignored rows still drop out
    rows1 = O.distill_loss(s, t, y, kind="kl", alpha=1.0, reduction="none")
    torch.testing.assert_close(rows1[[0, 2, 5]], O.kl_div(s, t, reduction="none")[[0, 2, 5]], rtol=1e-14, atol=0)
    assert (rows1[[1, 3, 4]] == 0).all()


def test_alpha_zero_is_cross_entropy_and_ignores_teacher():
    s, t = torch.randn(5, 13), torch.randn(5, 13)
    y = torch.randint(0, 13, (5,))
    exp = F.cross_entropy(s, y)
    torch.testing.assert_close(O.distill_loss(s, t, y, alpha=0.0), exp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(O.distill_loss(s, None, y, alpha=0.0), exp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(O.distill_loss(s, t * 100, y, alpha=0.0), exp, rtol=1e-5, atol=1e-6)


def test_teacher_gets_no_gradient():
    s = torch.randn(3, 8, requires_grad=True)
    t = torch.randn(3, 8, requires_grad=True)
    O.distill_loss(s, t, kind="jsd").backward()
    assert t.grad is None and s.grad is not None


def test_no_grad_forward_equals_grad_forward():
    s, t = torch.randn(4, 1000), torch.randn(4, 1000)
    y = torch.randint(0, 1000, (4,))
    with torch.no_grad():
        a = O.distill_loss(s.requires_grad_(), t, y, alpha=0.5, temperature=2.0, reduction="none")
    b = O.distill_loss(s, t, y, alpha=0.5, temperature=2.0, reduction="none")
    assert not a.requires_grad and b.requires_grad
    assert torch.equal(a, b.detach())


@pytest.mark.parametrize("kind", KIND_NAMES)
@requires_compiled
def test_thread_count_does_not_change_results(kind):
    """Rows are independent: 1 thread and 2 threads give bit-identical losses and gradients."""
    s, t = torch.randn(64, 3000), torch.randn(64, 3000)
    y = torch.randint(0, 3000, (64,))
    old = torch.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            a = s.clone().requires_grad_()
            loss = O.distill_loss(a, t, y, kind=kind, alpha=0.5, temperature=2.0, reduction="none")
            loss.sum().backward()
            res.append((loss.detach(), a.grad))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1])


def test_rows_are_independent():
    """A row's loss does not depend on the other rows in the batch."""
    s, t = torch.randn(9, 700), torch.randn(9, 700)
    full = O.jsd(s, t, reduction="none")
    for i in (0, 4, 8):
        assert torch.equal(O.jsd(s[i : i + 1], t[i : i + 1], reduction="none"), full[i : i + 1])


@requires_compiled
def test_backend_reports_compiled_cpu_kernel():
    b = O.backend()
    assert b.name == "cpp", str(b)
    assert any(v in b.reason for v in ("AVX512", "AVX2", "DEFAULT")), b.reason
    assert math.isfinite(float(O.kl_div(torch.randn(2, 3), torch.randn(2, 3))))


def test_demo_runs_and_agrees(capsys):
    from pylaundering.ops import demo

    assert demo.main(["--rows", "16", "--vocab", "300"]) == 0
    out = capsys.readouterr().out
    assert "backend cpp" in out or "backend reference" in out
    assert len([ln for ln in out.splitlines() if "x" in ln and "ms" not in ln]) >= len(demo.OPS)
