"""The CUDA kernels on a GPU: values, gradients, masks, ignored rows, alignment, determinism, compile.

Skipped where torch sees no CUDA device (the CI machine). Where it does, the compiled CUDA kernel
must be in use: a CUDA machine that silently falls back to the reference would pass every test
while testing nothing, so that is a failure unless PYLAUNDERING_BACKEND=reference is set on
purpose. ``make gpu-check`` (tools/gpu_check.sh) runs this file on a GPU machine.

Expected values come from the same independent float64 oracle as the CPU tests (ops_oracle.py),
evaluated on the CPU copies of the very inputs the GPU saw.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from ops_oracle import (
    CASE_BY_ID,
    CASES,
    KIND_NAMES,
    REDUCTIONS,
    TOL,
    assert_close_scaled,
    fused_and_oracle,
    grad_atol,
    make_inputs,
    masked_oracle_rows,
    oracle,
)

import pylaundering.ops as O
from pylaundering.ops import _ext

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
# warp-per-row (V <= 1024) and block-per-row, odd sizes (scalar head/tail around 16-byte chunks)
VS = [1, 3, 4, 17, 1000, 1024, 1025, 4099, 32000, 50257]


def _dt(x):
    return str(x).replace("torch.", "")


def test_cuda_backend_is_the_compiled_kernel():
    if _ext.forced_reference():
        pytest.skip("PYLAUNDERING_BACKEND=reference set on purpose")
    b = O.backend("cuda")
    assert b.name == "cuda", f"a CUDA device is present but the ops would use {b}"


@pytest.mark.parametrize("V", VS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dt)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_cuda_value_and_grad_match_oracle(case, reduction, dtype, V):
    lead = (5,) if V < 32000 else (2,)
    seed = zlib.crc32(repr(("cuda", case.id, reduction, str(dtype), V)).encode())
    s, t, y = make_inputs(case, lead, V, dtype, seed)
    out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, reduction, seed, device="cuda")
    assert out.dtype == dtype and grad.dtype == dtype and grad.shape == s.shape
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    rtol, atol, gtol = TOL[dtype]
    assert_close_scaled(out, exp, rtol, atol, f"{case.id} value")
    atol = grad_atol(case, s, t, y, reduction, exp_grad, seed)
    torch.testing.assert_close(grad.double(), exp_grad, rtol=gtol, atol=atol, msg=lambda m: f"{case.id} grad: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=_dt)
@pytest.mark.parametrize("kind", ["kl", "reverse_kl", "jsd", "mse"])
@pytest.mark.parametrize("shape", [(64, 128256), (4096, 4), (300, 50257)])
def test_cuda_matches_cpu_kernel_at_scale(kind, dtype, shape):
    """Large shapes, where the float64 oracle would be slow: the CUDA and CPU kernels agree."""
    g = torch.Generator().manual_seed(1)
    s = (torch.randn(*shape, generator=g) * 3).to(dtype)
    t = (torch.randn(*shape, generator=g) * 3).to(dtype)
    y = torch.randint(0, shape[1], (shape[0],), generator=g)
    y[::7] = -100
    a_cpu, a_gpu = s.clone().requires_grad_(True), s.cuda().requires_grad_(True)
    kw = dict(kind=kind, alpha=0.5, temperature=2.0)
    l_cpu = O.distill_loss(a_cpu, t, y, **kw)
    l_gpu = O.distill_loss(a_gpu, t.cuda(), y.cuda(), **kw)
    l_cpu.backward()
    l_gpu.backward()
    rtol = 2e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(l_gpu.cpu().double(), l_cpu.double(), rtol=rtol, atol=1e-6)
    gmax = float(a_cpu.grad.double().abs().max())
    torch.testing.assert_close(a_gpu.grad.cpu().double(), a_cpu.grad.double(), rtol=rtol, atol=rtol * gmax)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=_dt)
@pytest.mark.parametrize("case_id", ["kl_div", "kl_div_reverse", "jsd", "distill_kl_ce", "distill_mse_ce"])
@pytest.mark.parametrize("V", [5, 40, 3000])
def test_cuda_minus_inf_masks(case_id, dtype, V):
    """Masked choices (-inf in both) get probability 0 and gradient 0, as on the CPU."""
    case = CASE_BY_ID[case_id]
    g = torch.Generator().manual_seed(V)
    N = 6
    s, t, y = make_inputs(case, (N,), V, dtype, seed=V, ignore_some=False)
    live = torch.rand(N, V, generator=g) < 0.6
    live[:, 0] = True
    if y is not None:
        y = torch.stack([live[i].nonzero()[torch.randint(0, int(live[i].sum()), (1,), generator=g)].reshape(())
                         for i in range(N)])
    s = s.masked_fill(~live, -math.inf)
    t = t.masked_fill(~live, -math.inf) if t is not None else None
    alpha = case.kw.get("alpha", 1.0)
    kind = {"kl_div": "kl", "jsd": "jsd"}.get(case.op, case.kind)
    if case.op == "kl_div" and case.kind == "reverse":
        kind = "reverse_kl"
    a = s.cuda().requires_grad_(True)
    out = O.distill_loss(a, t.cuda(), y.cuda() if y is not None else None, kind=kind, alpha=alpha,
                         temperature=case.kw.get("temperature", 1.0), beta=case.kw.get("beta", 0.5), reduction="none")
    out.sum().backward()
    exp, exp_grad = masked_oracle_rows(kind, s, t, y, live, alpha, case.kw.get("temperature", 1.0),
                                       case.kw.get("beta", 0.5))
    rtol, atol, gtol = TOL[dtype]
    assert_close_scaled(out.detach().cpu(), exp, rtol, atol, f"{case_id} masked value")
    got = a.grad.cpu().double()
    assert (got[~live] == 0).all(), "masked logits must get gradient exactly 0"
    torch.testing.assert_close(got, exp_grad, rtol=gtol, atol=gtol * float(exp_grad.abs().max()) + 1e-6)


@pytest.mark.parametrize("V", [7, 5000])
def test_cuda_ignored_rows(V):
    s, t = torch.randn(4, V).cuda(), torch.randn(4, V).cuda()
    y = torch.tensor([1, -100, 2, -100]).cuda()
    a = s.clone().requires_grad_(True)
    out = O.distill_loss(a, t, y, kind="kl", alpha=0.5, reduction="none")
    out.sum().backward()
    assert out[1].item() == 0 and out[3].item() == 0
    assert (a.grad[1] == 0).all() and (a.grad[3] == 0).all()
    assert (a.grad[0] != 0).any()
    # all ignored: loss 0, gradient 0, never 0/0
    a = s.clone().requires_grad_(True)
    out = O.distill_loss(a, t, torch.full((4,), -100).cuda(), kind="kl", alpha=0.5)
    out.backward()
    assert out.item() == 0 and (a.grad == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=_dt)
@pytest.mark.parametrize("offset", [1, 3])
@pytest.mark.parametrize("V", [9, 1000, 5003])
def test_cuda_misaligned_inputs(dtype, offset, V):
    """Student storage not 16-byte aligned (scalar path or a different head), same results."""
    N = 5
    s0, t0 = torch.randn(N, V, dtype=dtype), torch.randn(N, V, dtype=dtype)
    buf = torch.empty(N * V + offset, dtype=dtype, device="cuda")
    s = buf[offset:].view(N, V)
    s.copy_(s0.cuda())
    tbuf = torch.empty(N * V + 2 * offset, dtype=dtype, device="cuda")
    t = tbuf[2 * offset:].view(N, V)
    t.copy_(t0.cuda())
    for kind in ("kl", "reverse_kl", "jsd", "mse"):
        a = s.detach().requires_grad_(True)
        out = O.distill_loss(a, t, kind=kind, temperature=2.0, reduction="none")
        out.sum().backward()
        b = s0.cuda().requires_grad_(True)
        ref = O.distill_loss(b, t0.cuda(), kind=kind, temperature=2.0, reduction="none")
        ref.sum().backward()
        rtol = 1e-5 if dtype != torch.bfloat16 else 1e-2
        torch.testing.assert_close(out, ref, rtol=rtol, atol=1e-6)
        torch.testing.assert_close(a.grad, b.grad, rtol=rtol, atol=rtol * float(b.grad.abs().max()))


@pytest.mark.parametrize("kind", [*KIND_NAMES, "ce"])
def test_cuda_deterministic_run_to_run(kind):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(512, 32000, generator=g).cuda()
    t = torch.randn(512, 32000, generator=g).cuda()
    y = torch.randint(0, 32000, (512,), generator=g).cuda()

    def once():
        a = s.clone().requires_grad_(True)
        if kind == "ce":
            out = O.cross_entropy(a, y)
        else:
            out = O.distill_loss(a, t, y, kind=kind, alpha=0.7, temperature=2.0)
        out.backward()
        return out.detach().clone(), a.grad.clone()

    first = once()
    for _ in range(3):
        again = once()
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_cuda_no_grad_path_gives_same_values():
    s, t = torch.randn(8, 3000).cuda(), torch.randn(8, 3000).cuda()
    with torch.no_grad():
        a = O.kl_div(s, t, temperature=2.0, reduction="none")
    b = O.kl_div(s.clone().requires_grad_(True), t, temperature=2.0, reduction="none")
    torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


def test_cuda_empty_batch():
    s = torch.randn(0, 10, device="cuda", requires_grad=True)
    out = O.kl_div(s, torch.randn(0, 10, device="cuda"), reduction="sum")
    out.backward()
    assert out.item() == 0 and s.grad.shape == (0, 10)


def test_cuda_label_out_of_range_is_a_clear_error():
    s = torch.randn(3, 10, device="cuda")
    with pytest.raises(ValueError, match="out of range"):
        O.cross_entropy(s, torch.tensor([1, 10, 2], device="cuda"))
    with pytest.raises((ValueError, RuntimeError), match="out of range"):
        torch.ops.pylaundering.fused_distill(s, None, torch.tensor([1, -3, 2], device="cuda"), 0, 0.0, 1.0, 0.5,
                                             -100, False)


def test_cuda_device_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="device"):
        O.kl_div(torch.randn(2, 5, device="cuda"), torch.randn(2, 5))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_cuda_gradcheck_fp64(kind):
    s = torch.randn(3, 7, dtype=torch.float64, device="cuda", requires_grad=True)
    t = torch.randn(3, 7, dtype=torch.float64, device="cuda")
    y = torch.tensor([0, 3, -100], device="cuda")
    assert torch.autograd.gradcheck(
        lambda x: O.distill_loss(x, t, y, kind=kind, alpha=0.6, temperature=1.5, reduction="none"), (s,),
        eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
def test_cuda_torch_compile_fullgraph(backend):
    torch._dynamo.reset()

    def f(s, t, y):
        return O.distill_loss(s.float() * 1.5, t, y, kind="kl", alpha=0.5, temperature=2.0)

    cf = torch.compile(f, backend=backend, fullgraph=True)
    s, t = torch.randn(16, 2000, device="cuda"), torch.randn(16, 2000, device="cuda")
    y = torch.randint(0, 2000, (16,), device="cuda")
    a, b = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    ref, got = f(a, t, y), cf(b, t, y)
    ref.backward()
    got.backward()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-6, atol=1e-7)


def test_cuda_rows_beyond_one_grid_wave():
    """Many short rows (warp mode walks rows grid-stride); every row's value is right."""
    s, t = torch.randn(70000, 4), torch.randn(70000, 4)
    got = O.kl_div(s.cuda(), t.cuda(), temperature=2.0, reduction="none").cpu().double()
    exp = oracle(CASE_BY_ID["kl_div"], s, t, None, "none")
    torch.testing.assert_close(got, exp, rtol=2e-5, atol=1e-6)
