"""The CUDA kernel's opt-in row-cluster mode (PYLAUNDERING_CUDA_ROW_CLUSTER=2|4|8, sm_90+).

A cluster of blocks shares each long row and all-reduces through distributed shared memory, so
that few enough rows are in flight for the gradient pass to find its row in L2. Every test first
asserts that the mode is really the one running (``cuda_row_cluster_plan``): a silent fallback to
the default kernel would pass everything while testing nothing. Values and gradients are held
to the same float64 oracle as the default kernel (tests/ops/test_cuda.py); the special rows
(ignored, NaN, -inf masks) and misaligned inputs are compared with the default CUDA kernel,
which that file holds to the oracle. ``make gpu-check`` runs this file.

Skipped without a CUDA device of compute capability 9.0 or more.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from ops_oracle import CASES, TOL, assert_close_scaled, fused_and_oracle, grad_atol, make_inputs

import pylaundering.ops as O
from pylaundering.ops import _ext
from pylaundering.ops.functional import KINDS

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
    reason="needs a CUDA device with thread-block clusters (sm_90+)",
)

CLUSTERS = [2, 4, 8]


def _dt(x):
    return str(x).replace("torch.", "")


@pytest.fixture
def cluster_env(monkeypatch):
    """Sets the mode for one test; the C++ side reads the environment at every launch."""
    if _ext.forced_reference():
        pytest.skip("PYLAUNDERING_BACKEND=reference set on purpose")

    def set_mode(size: int | None, rows: int | None = None):
        for name, value in (("PYLAUNDERING_CUDA_ROW_CLUSTER", size), ("PYLAUNDERING_CUDA_CLUSTER_ROWS", rows)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))

    return set_mode


def _assert_mode(cluster, rows, V, dtype, kind=KINDS["kl"], in_flight=None):
    plan = _ext.cuda_row_cluster_plan(rows, V, dtype, kind)
    assert plan[0] == cluster, f"row-cluster mode of size {cluster} is not the one running: plan {plan}"
    if in_flight is not None:
        assert plan[1] == min(in_flight, rows), plan


def test_plan_follows_the_environment(cluster_env):
    cluster_env(None)
    assert _ext.cuda_row_cluster_plan(64, 128256, torch.bfloat16) == (0, 0)
    for bad in ("3", "16", "x", "-4"):
        cluster_env(bad)
        assert _ext.cuda_row_cluster_plan(64, 128256, torch.bfloat16) == (0, 0), bad
    cluster_env(4)
    size, in_flight = _ext.cuda_row_cluster_plan(4096, 128256, torch.bfloat16)
    assert size == 4 and 1 <= in_flight <= 4096
    # default rows in flight: as many rows (inputs and gradient) as fit in half the L2
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    assert in_flight <= max(1, (l2 // 2) // (3 * 128256 * 2))
    assert _ext.cuda_row_cluster_plan(64, 1024, torch.float32) == (0, 0), "warp-sized rows keep the default"
    assert _ext.cuda_row_cluster_plan(3, 128256, torch.float32)[1] == 3, "never more clusters than rows"
    cluster_env(8, rows=5)
    assert _ext.cuda_row_cluster_plan(4096, 32000, torch.float32) == (8, 5)
    assert "ROW_CLUSTER=8" in O.backend("cuda").reason


def _kind_code(case) -> int:
    if case.op == "cross_entropy" or case.kw.get("alpha", 1.0) == 0.0:
        return 0
    if case.op == "distill_loss":
        return KINDS[case.kind]
    return {"kl_div": KINDS["reverse_kl"] if case.kind == "reverse" else KINDS["kl"], "jsd": KINDS["jsd"],
            "logit_mse": KINDS["mse"]}[case.op]


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("V", [1025, 4099, 50257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=_dt)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_value_and_grad_match_oracle(cluster_env, case, reduction, dtype, V, cluster):
    # 2 clusters for 7 rows: each walks rows grid-stride, reusing its shared-memory slots
    cluster_env(cluster, rows=2)
    lead = (7,)
    _assert_mode(cluster, 7, V, dtype, _kind_code(case), in_flight=2)
    seed = zlib.crc32(repr(("cluster", case.id, reduction, str(dtype), V, cluster)).encode())
    s, t, y = make_inputs(case, lead, V, dtype, seed)
    out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, reduction, seed, device="cuda")
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    rtol, atol, gtol = TOL[dtype]
    assert_close_scaled(out, exp, rtol, atol, f"{case.id} value")
    atol = grad_atol(case, s, t, y, reduction, exp_grad, seed)
    torch.testing.assert_close(grad.double(), exp_grad, rtol=gtol, atol=atol, msg=lambda m: f"{case.id} grad: {m}")


def _loss_and_grad(s, t, y, kind):
    a = s.detach().clone().requires_grad_(True)
    alpha = 0.5 if y is not None else 1.0
    out = O.distill_loss(a, t, y, kind=kind, alpha=alpha, temperature=2.0, reduction="none")
    out.backward(torch.ones_like(out))
    return out.detach(), a.grad


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("kind", ["kl", "reverse_kl", "jsd", "mse"])
def test_special_rows_match_default_kernel(cluster_env, kind, cluster):
    """Ignored rows, NaN rows and -inf masks: the same as the default kernel, row for row."""
    g = torch.Generator().manual_seed(cluster)
    N, V = 12, 5000
    s = torch.randn(N, V, generator=g) * 3
    t = torch.randn(N, V, generator=g) * 3
    live = torch.rand(N, V, generator=g) < 0.7
    live[:, 0] = True
    y = torch.stack([live[i].nonzero()[0, 0] for i in range(N)])
    s, t = s.masked_fill(~live, -math.inf), t.masked_fill(~live, -math.inf)
    y[[1, 6]] = -100  # ignored rows
    s[3, 17] = math.nan  # a NaN row
    s, t, y = s.cuda(), t.cuda(), y.cuda()
    cluster_env(None)
    ref = _loss_and_grad(s, t, y, kind)
    cluster_env(cluster, rows=3)
    _assert_mode(cluster, N, V, torch.float32, KINDS[kind], in_flight=3)
    got = _loss_and_grad(s, t, y, kind)
    torch.testing.assert_close(got[0], ref[0], rtol=2e-5, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(got[1], ref[1], rtol=2e-5, atol=2e-5 * float(ref[1].nan_to_num().abs().max()),
                               equal_nan=True)
    for r in range(N):
        if r != 3:
            assert (got[1][r][~live[r].cuda()] == 0).all(), f"row {r}: masked logits must get gradient exactly 0"
    assert got[0][1] == 0 and got[0][6] == 0 and (got[1][[1, 6]] == 0).all()
    assert torch.isnan(got[0][3]) and torch.isnan(got[1][3]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=_dt)
@pytest.mark.parametrize("offset", [1, 3])
def test_misaligned_inputs_match_default_kernel(cluster_env, dtype, offset):
    N, V = 6, 5003
    buf = torch.empty(N * V + offset, dtype=dtype, device="cuda")
    s = buf[offset:].view(N, V)
    s.copy_(torch.randn(N, V, dtype=dtype).cuda())
    t = torch.randn(N, V, dtype=dtype).cuda()
    cluster_env(None)
    ref = _loss_and_grad(s, t, None, "kl")
    cluster_env(4, rows=2)
    _assert_mode(4, N, V, dtype, KINDS["kl"])
    assert _ext.cuda_row_cluster_plan(N, V, dtype, KINDS["kl"], aligned=False)[0] == 4
    got = _loss_and_grad(s, t, None, "kl")
    rtol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got[0], ref[0], rtol=rtol, atol=1e-6)
    torch.testing.assert_close(got[1], ref[1], rtol=rtol, atol=rtol * float(ref[1].abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=_dt)
def test_llm_rows_match_cpu_kernel(cluster_env, dtype):
    """The shape the mode is for, with the default rows in flight (fewer than the rows)."""
    cluster_env(4)
    N, V = 256, 128256
    size, in_flight = _ext.cuda_row_cluster_plan(N, V, dtype)
    assert size == 4 and in_flight < N
    g = torch.Generator().manual_seed(2)
    s = (torch.randn(N, V, generator=g) * 3).to(dtype)
    t = (torch.randn(N, V, generator=g) * 3).to(dtype)
    y = torch.randint(0, V, (N,), generator=g)
    cpu = _loss_and_grad(s, t, y, "kl")
    got = _loss_and_grad(s.cuda(), t.cuda(), y.cuda(), "kl")
    rtol = 2e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got[0].cpu().double(), cpu[0].double(), rtol=rtol, atol=1e-6)
    gmax = float(cpu[1].double().abs().max())
    torch.testing.assert_close(got[1].cpu().double(), cpu[1].double(), rtol=rtol, atol=rtol * gmax)


@pytest.mark.parametrize("kind", ["kl", "jsd"])
def test_deterministic_run_to_run(cluster_env, kind):
    cluster_env(4)
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(512, 32000, generator=g).cuda(), torch.randn(512, 32000, generator=g).cuda()
    y = torch.randint(0, 32000, (512,), generator=g).cuda()
    _assert_mode(4, 512, 32000, torch.float32, KINDS[kind])
    first = _loss_and_grad(s, t, y, kind)
    for _ in range(3):
        again = _loss_and_grad(s, t, y, kind)
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
