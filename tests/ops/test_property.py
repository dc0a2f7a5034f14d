"""Property tests (hypothesis): random shapes, magnitudes, temperatures, alphas, kinds and -inf masks.

Properties: on legal input (finite logits, or -inf at the same positions in student and teacher
with at least one live class per row; labels on live classes or ignore_index) the kernel
  * never returns NaN/inf and never writes a NaN/inf gradient,
  * equals the independent oracle (values and gradients; masked classes get exactly 0),
  * equals pylaundering.ops.reference (the fallback),
  * gives each row a loss that does not depend on the other rows.
Tolerances follow the conditioning of the problem: log-probabilities reach log V + 2 * scale / T,
and the losses are sums of p * (difference of log-probabilities), so the absolute rounding error
of a value is ~ eps * (log V + 2 scale / T) * T^2 and of a gradient ~ eps * (...) * T.
"""

from __future__ import annotations

import math

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from ops_oracle import KIND_NAMES, masked_oracle_rows  # noqa: E402

import pylaundering.ops as O  # noqa: E402
from pylaundering.ops import reference as R  # noqa: E402

KINDS = list(KIND_NAMES)
f32 = dict(width=32, allow_nan=False, allow_infinity=False)  # parameters exact in the kernels' float32


@st.composite
def problems(draw, max_rows=5):
    N = draw(st.integers(1, max_rows))
    V = draw(st.one_of(st.integers(1, 40), st.integers(41, 400), st.sampled_from([2047, 2049, 2300])))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 5.0, 30.0, 300.0, 1e3]))
    T = draw(st.floats(0.125, 10.0, **f32))
    alpha = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0, **f32)))
    beta = draw(st.floats(0.0625, 0.9375, **f32))
    kind = draw(st.sampled_from(KINDS))
    mask_p = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9]))
    seed = draw(st.integers(0, 2**31 - 1))
    offset = draw(st.sampled_from([0.0, 50.0, -1e3]))  # softmax shift invariance must hold
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, V, generator=g, dtype=torch.float64) * scale + offset
    t = torch.randn(N, V, generator=g, dtype=torch.float64) * scale - offset
    live = torch.rand(N, V, generator=g) >= mask_p
    live[torch.arange(N), torch.randint(0, V, (N,), generator=g)] = True  # >= 1 live class per row
    s[~live], t[~live] = float("-inf"), float("-inf")
    # labels: a random live class per row, some rows ignored
    y = torch.stack([row.nonzero()[torch.randint(0, int(row.sum()), (1,), generator=g)].reshape(()) for row in live])
    y[torch.rand(N, generator=g) < 0.2] = -100
    use_labels = alpha < 1 or draw(st.booleans())
    return dict(s=s, t=t, y=y if use_labels else None, live=live, kind=kind, alpha=alpha, T=T, beta=beta,
                scale=scale + abs(offset), V=V)


def _run_kernel(p, dtype):
    a = p["s"].detach().to(dtype).clone().requires_grad_(True)
    t = p["t"].to(dtype) if p["alpha"] > 0 else None
    rows = O.distill_loss(a, t, p["y"], kind=p["kind"], alpha=p["alpha"], temperature=p["T"], beta=p["beta"],
                          reduction="none")
    rows.sum().backward()
    return rows.detach(), a.grad


def _tolerances(p, eps):
    # the size of the logits drawn (randn reaches a few times `scale`), not only the scale they were drawn at
    live = p["live"]
    scale = max(p["scale"], p["s"][live].abs().max().item(), p["t"][live].abs().max().item())
    cond = math.log(p["V"] + 1) + 2 * scale / p["T"] + 1
    if p["kind"] == "mse" or p["alpha"] < 1:  # MSE and CE work on raw logits (T = 1 for CE)
        cond += 2 * scale ** 2 if p["kind"] == "mse" else 2 * scale
    tv = 16 * eps * cond * max(p["T"] ** 2, 1.0)
    tg = 16 * eps * cond * max(p["T"], 1.0)
    return tv, tg


def _check_against(p, rows, grad, exp, exp_grad, eps, what):
    tv, tg = _tolerances(p, eps)
    note(f"{what}: value err {(rows.double() - exp).abs().max():.3g} (tol {tv:.3g}); "
         f"grad err {(grad.double() - exp_grad).abs().max():.3g} (tol {tg:.3g})")
    torch.testing.assert_close(rows.double(), exp, rtol=16 * eps, atol=tv, msg=lambda m: f"{what} value: {m}")
    torch.testing.assert_close(grad.double(), exp_grad, rtol=16 * eps, atol=tg, msg=lambda m: f"{what} grad: {m}")


@given(problems())
def test_float64_kernel_equals_oracle_and_reference(p):
    note({k: v for k, v in p.items() if k not in ("s", "t", "live")})
    rows, grad = _run_kernel(p, torch.float64)
    assert torch.isfinite(rows).all() and torch.isfinite(grad).all()
    assert (grad[~p["live"]] == 0).all()

    exp, exp_grad = masked_oracle_rows(p["kind"], p["s"], p["t"], p["y"], p["live"], p["alpha"], p["T"], p["beta"])
    _check_against(p, rows, grad, exp, exp_grad, 2.0**-52, "oracle")

    # the fallback implementation, through autograd
    b = p["s"].clone().requires_grad_(True)
    code = O.KINDS[p["kind"]] if p["alpha"] > 0 else 0
    ref = R.fused_distill_rows(b, p["t"] if p["alpha"] > 0 else None, p["y"], code, p["alpha"], p["T"], p["beta"], -100)
    ref.sum().backward()
    _check_against(p, rows, grad, ref.detach(), b.grad, 2.0**-52, "reference")


@given(problems())
def test_float32_never_nan_and_close_to_oracle(p):
    note({k: v for k, v in p.items() if k not in ("s", "t", "live")})
    s32 = p["s"].float()
    p = {**p, "s": s32.double(), "t": p["t"].float().double()}  # the oracle sees the rounded inputs
    rows, grad = _run_kernel(p, torch.float32)
    assert not torch.isnan(rows).any() and not torch.isnan(grad).any()
    assert torch.isfinite(rows).all() and torch.isfinite(grad).all()
    assert (grad[~p["live"]] == 0).all()
    exp, exp_grad = masked_oracle_rows(p["kind"], p["s"], p["t"], p["y"], p["live"], p["alpha"], p["T"], p["beta"])
    _check_against(p, rows, grad, exp, exp_grad, 2.0**-24, "oracle")


@given(problems(max_rows=6), st.data())
def test_rows_do_not_interact(p, data):
    """Losses of a sub-batch equal the matching rows of the full batch, bit for bit."""
    N = p["s"].shape[0]
    idx = sorted(data.draw(st.sets(st.integers(0, N - 1), min_size=1)))
    full, _ = _run_kernel(p, torch.float32)
    sub = {**p, "s": p["s"][idx], "t": p["t"][idx], "y": p["y"][idx] if p["y"] is not None else None}
    part, _ = _run_kernel(sub, torch.float32)
    assert torch.equal(part, full[idx])


@given(problems(), st.sampled_from([torch.bfloat16, torch.float16]))
def test_low_precision_never_nan(p, dtype):
    """bf16/fp16: no NaN anywhere; the per-row loss is the float32 result rounded (inf only where it
    exceeds the dtype's range), and the gradient is finite."""
    note({k: v for k, v in p.items() if k not in ("s", "t", "live")})
    if dtype == torch.float16:  # keep finite logits inside float16's range
        p = {**p, "s": p["s"].clamp(-6e4, 6e4), "t": p["t"].clamp(-6e4, 6e4)}
    rows, grad = _run_kernel(p, dtype)
    assert not torch.isnan(rows).any() and not torch.isnan(grad).any()
    assert torch.isfinite(grad).all()
    assert (grad[~p["live"]] == 0).all()
    # the same rounded inputs in float32 (the kernels accumulate in float32 for bf16/fp16)
    p32 = {**p, "s": p["s"].to(dtype).float(), "t": p["t"].to(dtype).float()}
    rows32, _ = _run_kernel(p32, torch.float32)
    assert torch.equal(rows, rows32.to(dtype))  # one rounding of the float32 value (inf past the range)


@given(p=problems(max_rows=4), n_bad=st.integers(1, 3), value=st.sampled_from([math.nan, math.inf]),
       side=st.sampled_from(["student", "teacher"]), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_nonfinite_logits_are_never_hidden(p, n_bad, value, side, dtype):
    """NaN / +inf drawn into live logits: the kernel's row values agree with the reference's in
    which rows are finite (a poisoned row is never reported as a finite loss), other rows exact."""
    s, t, live = p["s"].clone(), p["t"].clone(), p["live"]
    g = torch.Generator().manual_seed(int(n_bad * 7919 + p["V"]))
    r = int(torch.randint(0, s.shape[0], (1,), generator=g))
    cols = live[r].nonzero().squeeze(1)
    pick = cols[torch.randint(0, len(cols), (n_bad,), generator=g)]
    (s if side == "student" else t)[r, pick] = value
    kind, alpha, y = p["kind"], p["alpha"], p["y"]
    note(f"row {r} cols {pick.tolist()} = {value} in {side}, kind={kind} alpha={alpha}")
    kw = dict(kind=kind, alpha=alpha, temperature=p["T"], beta=p["beta"], reduction="none")
    if alpha == 0:
        kw["kind"] = "kl"
    got = O.distill_loss(s.to(dtype), t.to(dtype), y, **kw).double()
    code = R.NO_DISTILL if alpha == 0 else O.KINDS[kind]
    exp = R.fused_distill_rows(s, t if alpha > 0 else None, y, code, alpha, p["T"], p["beta"], -100)
    assert torch.equal(torch.isfinite(got), torch.isfinite(exp)), (got, exp)
    ignored = y is not None and int(y[r]) == -100
    reads_side = side == "student" or (alpha > 0)
    if reads_side and not ignored:
        assert not torch.isfinite(got[r]), f"row {r} is poisoned but its loss is {got[r].item()}"
    others = [i for i in range(s.shape[0]) if i != r]
    assert torch.isfinite(got[others]).all()
