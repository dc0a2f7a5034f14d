"""The CUDA sparse-teacher kernel (torch.ops.pylaundering.fused_sparse_distill) on a GPU.

Skipped where torch sees no CUDA device. Where it does, each result is compared with
  (a) the same op on the CPU (the C++ kernel), and
  (b) an independent float64 reference: the rows of pylaundering.ops.sparse.sparse_distill_rows
      (+ (1 - alpha) * cross-entropy, ignored rows 0) on float64 copies of the very inputs the GPU
      saw, and their gradient from torch.autograd.grad of the summed rows;
and, at k = V, with the dense op (torch.ops.pylaundering.fused_distill) on the full teacher logits.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
import torch.nn.functional as F
from ops_oracle import TOL, assert_close_scaled

import pylaundering.ops  # noqa: F401  (loads the extension, which registers torch.ops.pylaundering)
from pylaundering.ops.reference import FORWARD_KL, JSD, MSE, REVERSE_KL
from pylaundering.ops.sparse import SparseTeacher, sparse_distill_rows, topk_teacher

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
KINDS = {"kl": FORWARD_KL, "reverse_kl": REVERSE_KL, "jsd": JSD, "mse": MSE}
SOFT = ("kl", "reverse_kl", "jsd")
IGNORE = -100
BETA = 0.3
K_ALL = -1  # k = V


def _dt(x):
    return str(x).replace("torch.", "")


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def _op(s, teacher, y, kind, alpha, T, compute_grad=True, beta=BETA, ignore_index=IGNORE):
    return torch.ops.pylaundering.fused_sparse_distill(s, teacher.values, teacher.indices, teacher.log_normalizer, y,
                                                       KINDS[kind], alpha, T, beta, ignore_index, compute_grad)


def _to(teacher: SparseTeacher, device) -> SparseTeacher:
    ln = teacher.log_normalizer
    return SparseTeacher(teacher.values.to(device), teacher.indices.to(device),
                         ln.to(device) if ln is not None else None, teacher.temperature)


def _reference(s, teacher: SparseTeacher, y, kind, alpha, T, beta=BETA, ignore_index=IGNORE):
    """Float64 rows and d(sum of rows) / d student, from the plain-PyTorch formulas and autograd."""
    x = s.detach().cpu().double().requires_grad_(True)
    values = teacher.values.detach().cpu().double()
    ln = teacher.log_normalizer
    if ln is not None:
        ln = ln.detach().cpu().double()
    t64 = SparseTeacher(values, teacher.indices.detach().cpu(), ln, T)
    rows = torch.zeros(x.shape[0], dtype=torch.float64)
    if alpha > 0:
        rows = rows + alpha * sparse_distill_rows(x, t64, KINDS[kind], T, beta)
    if y is not None:
        y = y.cpu()
        if alpha < 1:
            rows = rows + (1 - alpha) * F.cross_entropy(x, y, ignore_index=ignore_index, reduction="none")
        rows = torch.where(y == ignore_index, torch.zeros_like(rows), rows)
    (grad,) = torch.autograd.grad(rows.sum(), x)
    return rows.detach(), grad


def _inputs(N, V, k, dtype, T, seed, lognorm=True, scale=2.0, ignore=True):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(N, V, generator=g, dtype=torch.float64) * scale).to(dtype)
    t = (torch.randn(N, V, generator=g, dtype=torch.float64) * scale).to(dtype)
    teacher = topk_teacher(t, V if k == K_ALL else k, T)
    if not lognorm:
        teacher = teacher._replace(log_normalizer=None)
    y = torch.randint(0, V, (N,), generator=g)
    if ignore:
        y[1::3] = IGNORE
    return s, t, teacher, y


def _assert_grad_close(got, exp, dtype, what, scale=None):
    gtol = TOL[dtype][2]
    exp = exp.detach().cpu().double()
    scale = float(exp.abs().max()) if scale is None else scale
    torch.testing.assert_close(got.detach().cpu().double(), exp, rtol=gtol, atol=gtol * scale + 1e-12,
                               msg=lambda m: f"{what}: {m}")


def _check(s, teacher, y, kind, alpha, T, what, cpu=True):
    """CUDA against the float64 reference and (optionally) the CPU kernel; returns the CUDA outputs."""
    dtype = s.dtype
    loss, grad = _op(s.cuda(), _to(teacher, "cuda"), y.cuda() if y is not None else None, kind, alpha, T)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert loss.shape == (s.shape[0],) and grad.dtype == dtype and grad.shape == s.shape
    loss, grad = loss.cpu(), grad.cpu()
    rtol, atol, _ = TOL[dtype]
    exp, exp_grad = _reference(s, teacher, y, kind, alpha, T)
    assert_close_scaled(loss, exp, rtol, atol, f"{what} loss vs reference")
    _assert_grad_close(grad, exp_grad, dtype, f"{what} grad vs reference")
    if cpu:
        loss_cpu, grad_cpu = _op(s, teacher, y, kind, alpha, T)
        assert_close_scaled(loss, loss_cpu, rtol, atol, f"{what} loss vs CPU")
        _assert_grad_close(grad, grad_cpu, dtype, f"{what} grad vs CPU", scale=float(exp_grad.abs().max()))
    return loss, grad


def test_cuda_kernel_is_registered():
    assert torch._C._dispatch_has_kernel_for_dispatch_key("pylaundering::fused_sparse_distill", "CUDA")


# --------------------------------------------------------------------------- values and gradients


@pytest.mark.parametrize("dtype", DTYPES, ids=_dt)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha, T", [(1.0, 1.0), (0.5, 2.0)], ids=["a1-T1", "a0.5-T2"])
@pytest.mark.parametrize("lognorm", [True, False], ids=["lognorm", "no_lognorm"])
@pytest.mark.parametrize("k", [1, 7, K_ALL], ids=["k1", "k7", "kV"])
@pytest.mark.parametrize("V", [5, 1000, 50257])
def test_sparse_cuda_matches_reference_and_cpu(V, k, lognorm, alpha, T, kind, dtype):
    if k > V:
        pytest.skip("k > V")
    N = 6 if V <= 1000 else 3
    s, _, teacher, y = _inputs(N, V, k, dtype, T, _seed("main", V, k, lognorm, alpha, T, kind, str(dtype)), lognorm)
    loss, grad = _check(s, teacher, y, kind, alpha, T, f"{kind} V={V} k={k}")
    ignored = y == IGNORE
    assert (loss[ignored] == 0).all() and (grad[ignored] == 0).all()
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha, T", [(0.5, 1.0), (1.0, 2.0), (0.0, 2.0)], ids=["a0.5-T1", "a1-T2", "a0-T2"])
@pytest.mark.parametrize("lognorm", [True, False], ids=["lognorm", "no_lognorm"])
@pytest.mark.parametrize("k", [7, K_ALL], ids=["k7", "kV"])
def test_sparse_cuda_other_alpha_and_temperature(k, lognorm, alpha, T, kind):
    s, _, teacher, y = _inputs(5, 1000, k, torch.float32, T, _seed("aT", k, lognorm, alpha, T, kind), lognorm)
    _check(s, teacher, y, kind, alpha, T, f"{kind} alpha={alpha} T={T}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("V", [5, 3000])
def test_sparse_cuda_without_labels(kind, V):
    s, _, teacher, _ = _inputs(4, V, 3, torch.float32, 2.0, _seed("nolabels", kind, V))
    _check(s, teacher, None, kind, 1.0, 2.0, f"{kind} no labels")


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_cuda_random_indices_and_values(kind):
    """Kept entries that are not the teacher's top k (any distinct indices and values are valid)."""
    g = torch.Generator().manual_seed(_seed("random", kind))
    N, V, k = 6, 2000, 50
    s = torch.randn(N, V, generator=g) * 3
    idx = torch.stack([torch.randperm(V, generator=g)[:k] for _ in range(N)])
    values = torch.randn(N, k, generator=g) * 3
    ln = torch.logsumexp(values / 2.0, -1) + torch.rand(N, generator=g) * 2  # leaves a teacher rest
    y = torch.randint(0, V, (N,), generator=g)
    for lognorm in (ln, None):
        _check(s, SparseTeacher(values, idx, lognorm, 2.0), y, kind, 0.5, 2.0, f"{kind} random kept set")


# --------------------------------------------------------------------------- masks and poison


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=_dt)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("V", [40, 3000])
def test_sparse_cuda_minus_inf_student_entries(V, kind, dtype):
    """-inf student logits are masked: probability 0, gradient exactly 0. Outside the kept set, and (soft
    kinds) at one kept entry per row, where the teacher's value is -inf too (kl, reverse kl: an entry
    of zero probability on both sides) or live (jsd: still a finite loss)."""
    N, k, T = 5, 7, 2.0
    s, _, teacher, y = _inputs(N, V, k, dtype, T, _seed("masked", V, kind, str(dtype)), ignore=False)
    mask = torch.zeros(N, V, dtype=torch.bool)
    mask[:, ::3] = True
    mask.scatter_(1, teacher.indices, False)
    mask[torch.arange(N), y] = False
    values = teacher.values.clone()
    if kind in SOFT:
        mask.scatter_(1, teacher.indices[:, 2:3], True)
        y = torch.where(y == teacher.indices[:, 2], teacher.indices[:, 0], y)  # never a masked label
        mask[torch.arange(N), y] = False
        if kind != "jsd":
            values[:, 2] = -math.inf
    s = s.masked_fill(mask, -math.inf)
    for ln in (teacher.log_normalizer, None):
        tch = SparseTeacher(values, teacher.indices, ln, T)
        loss, grad = _check(s, tch, y, kind, 0.5, T, f"{kind} masked")
        assert torch.isfinite(loss).all()
        assert (grad[mask] == 0).all(), "masked logits must get gradient exactly 0"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=_dt)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("V", [50, 5000])
def test_sparse_cuda_nan_and_inf_student_rows(V, kind, dtype):
    """NaN or +inf in a student logit (kept or not) gives that row a NaN loss and an all-NaN gradient;
    an ignored row stays 0; the other rows are untouched."""
    N, k = 6, 5
    s, _, teacher, y = _inputs(N, V, k, dtype, 2.0, _seed("nan", V, kind, str(dtype)), ignore=False)
    y[5] = IGNORE
    s[1, 3] = math.nan
    s[2, 7] = math.inf
    s[3, int(teacher.indices[3, 1])] = math.nan  # at a kept entry
    s[5, 0] = math.nan  # ignored row
    loss, grad = _op(s.cuda(), _to(teacher, "cuda"), y.cuda(), kind, 0.5, 2.0)
    loss, grad = loss.cpu(), grad.cpu()
    for r in (1, 2, 3):
        assert math.isnan(loss[r]) and grad[r].isnan().all(), f"row {r}"
    assert loss[5] == 0 and (grad[5] == 0).all()
    good = [0, 4]
    exp, exp_grad = _reference(s[good], teacher._replace(values=teacher.values[good], indices=teacher.indices[good],
                                                         log_normalizer=teacher.log_normalizer[good]),
                               y[good], kind, 0.5, 2.0)
    rtol, atol, _ = TOL[dtype]
    assert_close_scaled(loss[good], exp, rtol, atol, "finite rows")
    _assert_grad_close(grad[good], exp_grad, dtype, "finite rows")


# --------------------------------------------------------------------------- k = V is the dense op


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=_dt)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha, T", [(1.0, 1.0), (0.5, 2.0)], ids=["a1-T1", "a0.5-T2"])
@pytest.mark.parametrize("V, scale", [(5, 2.0), (1000, 2.0), (1000, 10.0), (50257, 2.0), (50257, 10.0)])
def test_sparse_cuda_k_equal_v_is_the_dense_op(V, scale, alpha, T, kind, dtype):
    """Teacher values = the full logits permuted by indices, log_normalizer = logsumexp(t / T): the dense
    loss and gradient. scale=10: the float32 normaliser's rounding is far above 8 eps (a rest that is
    not there must not appear: forward KL would be +inf)."""
    g = torch.Generator().manual_seed(_seed("dense", V, scale, alpha, T, kind, str(dtype)))
    N = 4 if V <= 1000 else 2
    s = (torch.randn(N, V, generator=g, dtype=torch.float64) * scale).to(dtype).cuda()
    t = (torch.randn(N, V, generator=g, dtype=torch.float64) * scale).to(dtype).cuda()
    y = torch.randint(0, V, (N,), generator=g).cuda()
    y[1] = IGNORE
    idx = torch.stack([torch.randperm(V, generator=g) for _ in range(N)]).cuda()
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    teacher = SparseTeacher(t.gather(1, idx), idx, torch.logsumexp(t.to(acc) / T, -1), T)
    loss, grad = _op(s, teacher, y, kind, alpha, T)
    d_loss, d_grad = torch.ops.pylaundering.fused_distill(s, t, y, KINDS[kind], alpha, T, BETA, IGNORE, True)
    assert torch.isfinite(loss).all()
    rtol, atol, _ = TOL[dtype]
    assert_close_scaled(loss.cpu(), d_loss.cpu(), rtol, atol, f"{kind} k=V loss vs dense")
    # peaked rows (scale 10) have gradients far smaller than the terms that cancel into them (about
    # alpha T for the soft term, 1 - alpha for CE): the rounding is relative to those
    scale = max(float(d_grad.abs().max()), alpha * T, 1 - alpha)
    _assert_grad_close(grad, d_grad, dtype, f"{kind} k=V grad vs dense", scale=scale)


@pytest.mark.parametrize("kind", SOFT)
def test_sparse_cuda_k_equal_v_masked_is_the_dense_op(kind):
    """Entries masked (-inf) in both student and teacher, k = V: as the dense op's masks."""
    g = torch.Generator().manual_seed(_seed("dense-masked", kind))
    N, V, T = 4, 3000, 2.0
    s, t = torch.randn(N, V, generator=g).cuda() * 2, torch.randn(N, V, generator=g).cuda() * 2
    live = torch.rand(N, V, generator=g).cuda() < 0.6
    y = torch.stack([live[i].nonzero()[0, 0] for i in range(N)])
    s, t = s.masked_fill(~live, -math.inf), t.masked_fill(~live, -math.inf)
    idx = torch.stack([torch.randperm(V, generator=g) for _ in range(N)]).cuda()
    teacher = SparseTeacher(t.gather(1, idx), idx, torch.logsumexp(t / T, -1), T)
    loss, grad = _op(s, teacher, y, kind, 0.5, T)
    d_loss, d_grad = torch.ops.pylaundering.fused_distill(s, t, y, KINDS[kind], 0.5, T, BETA, IGNORE, True)
    assert torch.isfinite(loss).all()
    assert_close_scaled(loss.cpu(), d_loss.cpu(), 2e-5, 1e-6, "masked k=V loss vs dense")
    _assert_grad_close(grad, d_grad, torch.float32, "masked k=V grad vs dense")
    assert (grad[~live] == 0).all()


# --------------------------------------------------------------------------- errors


def _small():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(4, 10, generator=g).cuda()
    teacher = _to(topk_teacher(torch.randn(4, 10, generator=g), 3, 1.0), "cuda")
    y = torch.tensor([1, 2, IGNORE, 9]).cuda()
    return s, teacher, y


@pytest.mark.parametrize("bad", [10, -1, 1 << 40])
def test_sparse_cuda_index_out_of_range_is_a_value_error(bad):
    s, teacher, y = _small()
    idx = teacher.indices.clone()
    idx[2, 1] = bad
    with pytest.raises(ValueError, match=rf"index {bad} at row 2 is out of range"):
        _op(s, teacher._replace(indices=idx), y, "kl", 0.5, 1.0)
    # a later good call is not affected by the flag of the bad one
    loss, _ = _op(s, teacher, y, "kl", 0.5, 1.0)
    assert torch.isfinite(loss).all()


@pytest.mark.parametrize("row", [0, 2, 3])
def test_sparse_cuda_repeated_index_is_a_value_error(row):
    s, teacher, y = _small()
    idx = teacher.indices.clone()
    idx[row, 2] = idx[row, 0]
    with pytest.raises(ValueError, match=rf"repeats in row {row}"):
        _op(s, teacher._replace(indices=idx), y, "jsd", 1.0, 1.0)


def test_sparse_cuda_label_out_of_range_is_a_value_error():
    s, teacher, _ = _small()
    with pytest.raises(ValueError, match="label 10 at row 1 is out of range"):
        _op(s, teacher, torch.tensor([1, 10, IGNORE, 2]).cuda(), "kl", 0.5, 1.0)
    with pytest.raises(ValueError, match="label -3 at row 0 is out of range"):
        _op(s, teacher, torch.tensor([-3, 1, IGNORE, 2]).cuda(), "mse", 1.0, 1.0)


# --------------------------------------------------------------------------- launch paths and properties


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_cuda_deterministic_run_to_run(kind):
    s, _, teacher, y = _inputs(64, 50257, 64, torch.float32, 2.0, _seed("determinism", kind))
    s, teacher, y = s.cuda(), _to(teacher, "cuda"), y.cuda()
    first = _op(s, teacher, y, kind, 0.5, 2.0)
    for _ in range(2):
        again = _op(s, teacher, y, kind, 0.5, 2.0)
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_cuda_no_grad_gives_the_same_loss(kind):
    s, _, teacher, y = _inputs(8, 3000, 16, torch.float32, 2.0, _seed("nograd", kind))
    s, teacher, y = s.cuda(), _to(teacher, "cuda"), y.cuda()
    loss, grad = _op(s, teacher, y, kind, 0.5, 2.0, compute_grad=True)
    loss2, grad2 = _op(s, teacher, y, kind, 0.5, 2.0, compute_grad=False)
    assert grad2.numel() == 0 and torch.equal(loss, loss2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=_dt)
@pytest.mark.parametrize("V", [9, 1000, 5003])
def test_sparse_cuda_misaligned_student(V, dtype):
    """Student storage not 16-byte aligned (scalar path), same results as an aligned copy."""
    s0, _, teacher, y = _inputs(5, V, 4, dtype, 2.0, _seed("misaligned", V, str(dtype)))
    buf = torch.empty(5 * V + 1, dtype=dtype, device="cuda")
    s = buf[1:].view(5, V)
    s.copy_(s0.cuda())
    teacher, y = _to(teacher, "cuda"), y.cuda()
    for kind in KINDS:
        a = _op(s, teacher, y, kind, 0.5, 2.0)
        b = _op(s0.cuda(), teacher, y, kind, 0.5, 2.0)
        rtol = 1e-5 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(a[0], b[0], rtol=rtol, atol=1e-6)
        torch.testing.assert_close(a[1], b[1], rtol=rtol, atol=rtol * float(b[1].abs().max()))


@pytest.mark.parametrize("V", [400_000, 2_500_000])
def test_sparse_cuda_huge_vocabulary(V):
    """V past the default 48 KB of shared memory (the bitmap opts in to more) and past the device's
    shared memory altogether (the bitmap lives in a global scratch buffer)."""
    s, _, teacher, y = _inputs(3, V, 32, torch.float32, 2.0, _seed("huge", V))
    for kind in ("kl", "reverse_kl"):
        for tch in (teacher, teacher._replace(log_normalizer=None)):
            loss, grad = _op(s.cuda(), _to(tch, "cuda"), y.cuda(), kind, 0.5, 2.0)
            loss_cpu, grad_cpu = _op(s, tch, y, kind, 0.5, 2.0)
            assert_close_scaled(loss.cpu(), loss_cpu, 2e-5, 1e-6, f"{kind} V={V} loss")
            _assert_grad_close(grad, grad_cpu, torch.float32, f"{kind} V={V} grad")


def test_sparse_cuda_many_short_rows():
    """Warp-per-row mode walking many rows: every row right."""
    s, _, teacher, y = _inputs(20000, 5, 2, torch.float32, 2.0, _seed("rows"))
    loss, grad = _op(s.cuda(), _to(teacher, "cuda"), y.cuda(), "jsd", 0.5, 2.0)
    loss_cpu, grad_cpu = _op(s, teacher, y, "jsd", 0.5, 2.0)
    assert_close_scaled(loss.cpu(), loss_cpu, 2e-5, 1e-6, "loss")
    _assert_grad_close(grad, grad_cpu, torch.float32, "grad")


def test_sparse_cuda_empty_batch():
    teacher = SparseTeacher(torch.zeros(0, 3, device="cuda"), torch.zeros(0, 3, dtype=torch.long, device="cuda"),
                            None, 1.0)
    loss, grad = _op(torch.zeros(0, 10, device="cuda"), teacher, None, "kl", 1.0, 1.0)
    assert loss.shape == (0,) and grad.shape == (0, 10)


def test_sparse_cuda_graph_capture():
    """No sync while a CUDA graph is captured (the input check is skipped); replay gives the eager values."""
    s, _, teacher, y = _inputs(8, 3000, 16, torch.float32, 2.0, _seed("graph"))
    s, teacher, y = s.cuda(), _to(teacher, "cuda"), y.cuda()
    eager = _op(s, teacher, y, "kl", 0.5, 2.0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graphs recommends
        _op(s, teacher, y, "kl", 0.5, 2.0)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _op(s, teacher, y, "kl", 0.5, 2.0)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured[0], eager[0]) and torch.equal(captured[1], eager[1])
