"""Independent oracle for the fused loss tests: plain torch formulas, written here, in float64.

The formulas here use nothing from pylaundering: the expected values come from ``F.kl_div``,
``F.log_softmax``, ``F.cross_entropy`` and ``F.mse_loss`` only, so a mistake shared by the
kernels and ``pylaundering.ops.reference`` cannot hide. (``call_fused`` is the one place that
calls the library under test.) Gradients come from autograd through
these formulas.

The formulas below assume finite logits. Masked logits (-inf) are handled by the tests by
evaluating the oracle on the live columns only (a masked class has probability 0 on both sides,
so it contributes nothing and its gradient is exactly zero).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

REDUCTIONS = ("none", "sum", "mean", "batchmean")


def _compiled_cpu() -> bool:
    from pylaundering.ops import _ext

    return _ext.compiled_available("cpu")


# for tests of the compiled extension itself (skipped on a checkout without a build, or with
# PYLAUNDERING_BACKEND=reference set for the whole run)
requires_compiled = pytest.mark.skipif(not _compiled_cpu(), reason="compiled CPU kernels not in use")
# the kernel kinds, from the library's one table (names only: the formulas below are this file's own)
from pylaundering.loss_kinds import KERNEL_KINDS as KIND_NAMES  # noqa: E402,F401 - re-exported: the test modules import it
from pylaundering.loss_kinds import SOFT_KINDS as SOFT_KIND_NAMES  # noqa: E402,F401


# --------------------------------------------------------------------------- per-row formulas
def kl_rows(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton forward KL per row: T^2 * KL(softmax(t/T) || softmax(s/T))."""
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    return F.kl_div(ls, lt, log_target=True, reduction="none").sum(-1) * (T * T)


def reverse_kl_rows(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(softmax(s/T) || softmax(t/T)): F.kl_div with the roles swapped."""
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    return F.kl_div(lt, ls, log_target=True, reduction="none").sum(-1) * (T * T)


def jsd_rows(s: torch.Tensor, t: torch.Tensor, T: float, beta: float) -> torch.Tensor:
    """TRL's generalized JSD: beta KL(pt||m) + (1-beta) KL(ps||m), m = beta pt + (1-beta) ps, times T^2.

    log m is formed with logsumexp (not log of a sum of probabilities) so that this differs in
    construction from both the kernel and pylaundering.ops.reference.
    """
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    lm = torch.logsumexp(torch.stack([lt + math.log(beta), ls + math.log(1.0 - beta)]), dim=0)
    kl_t = F.kl_div(lm, lt, log_target=True, reduction="none").sum(-1)
    kl_s = F.kl_div(lm, ls, log_target=True, reduction="none").sum(-1)
    return (beta * kl_t + (1.0 - beta) * kl_s) * (T * T)


def mse_rows(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(s, t, reduction="none").mean(-1)


def tvd_rows(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    """0.5 * sum |softmax(t/T) - softmax(s/T)| (not times T^2); F.l1_loss's gradient at a tie is 0."""
    return 0.5 * F.l1_loss(torch.softmax(s / T, -1), torch.softmax(t / T, -1), reduction="none").sum(-1)


def _log_mixture(la: torch.Tensor, lb: torch.Tensor, a: float) -> torch.Tensor:
    """log(a exp(la) + (1 - a) exp(lb)) by logsumexp (the library forms the mixture of probabilities)."""
    log_a = math.log(a) if a > 0 else float("-inf")
    return torch.logsumexp(torch.stack([la + log_a, lb + math.log(1.0 - a)]), dim=0)


def skew_kl_rows(s: torch.Tensor, t: torch.Tensor, T: float, a: float) -> torch.Tensor:
    """DistiLLM's skewed KL: T^2 * KL(pt || a pt + (1 - a) ps)."""
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    return F.kl_div(_log_mixture(lt, ls, a), lt, log_target=True, reduction="none").sum(-1) * (T * T)


def skew_reverse_kl_rows(s: torch.Tensor, t: torch.Tensor, T: float, a: float) -> torch.Tensor:
    """T^2 * KL(ps || a ps + (1 - a) pt)."""
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    return F.kl_div(_log_mixture(ls, lt, a), ls, log_target=True, reduction="none").sum(-1) * (T * T)


def distill_rows(s, t, kind: str, T: float, beta: float) -> torch.Tensor:
    if kind == "kl":
        return kl_rows(s, t, T)
    if kind == "reverse_kl":
        return reverse_kl_rows(s, t, T)
    if kind == "jsd":
        return jsd_rows(s, t, T, beta)
    if kind == "mse":
        return mse_rows(s, t)
    if kind == "tvd":
        return tvd_rows(s, t, T)
    if kind == "skew_kl":
        return skew_kl_rows(s, t, T, beta)
    if kind == "skew_reverse_kl":
        return skew_reverse_kl_rows(s, t, T, beta)
    raise ValueError(kind)


def jsd_written_out(s: torch.Tensor, t: torch.Tensor, T: float, beta: float) -> torch.Tensor:
    """The JSD once more, as sums of p * log(p / m) over probabilities (a second, literal form)."""
    ps, pt = torch.softmax(s / T, -1), torch.softmax(t / T, -1)
    m = beta * pt + (1 - beta) * ps
    return (beta * (pt * (pt / m).log()).sum(-1) + (1 - beta) * (ps * (ps / m).log()).sum(-1)) * T * T


def masked_oracle_rows(kind, s, t, y, live, alpha, T, beta=0.5, ignore_index=-100):
    """Per-row oracle evaluated on each row's live columns; gradient is 0 elsewhere.

    MSE is a mean over all V classes (masked pairs contribute 0 but are counted), as
    F.mse_loss over the row would with the masked pair equal.
    """
    s64 = s.detach().double()
    V = s.shape[-1]
    rows, grads = [], torch.zeros_like(s64)
    for i in range(s.shape[0]):
        cols = live[i].nonzero().squeeze(1)
        si = s64[i, cols].clone().requires_grad_(True)
        ti = t[i, cols].double()
        r = alpha * distill_rows(si[None], ti[None], kind, T, beta)[0]
        if kind == "mse":
            r = r * (len(cols) / V)
        if y is not None:
            if int(y[i]) == ignore_index:
                rows.append(torch.zeros((), dtype=torch.float64))
                continue
            if alpha < 1:
                yi = (cols == y[i]).nonzero().squeeze()
                r = r + (1 - alpha) * F.cross_entropy(si[None], yi[None], reduction="none")[0]
        r.backward()
        grads[i, cols] = si.grad
        rows.append(r.detach())
    return torch.stack(rows), grads


# --------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One public entry point with its fixed arguments (reduction and data come from the test)."""

    id: str
    op: str  # kl_div | jsd | logit_mse | cross_entropy | distill_loss
    kind: str | None = None  # distill_loss kind, or kl_div direction marker
    kw: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def needs_teacher(self) -> bool:
        return self.op != "cross_entropy" and not (self.op == "distill_loss" and self.kw.get("alpha", 1.0) == 0.0)

    @property
    def needs_labels(self) -> bool:
        return self.op == "cross_entropy" or (self.op == "distill_loss" and self.kw.get("alpha", 1.0) < 1.0)

    def __repr__(self) -> str:  # pytest ids
        return self.id


# Parameters are exactly representable in float32, so fp64 results can be held to fp64 accuracy
# (the kernels' scalar parameters are float32; see test_edge_cases.test_fp64_parameters_*).
CASES = [
    Case("kl_div", "kl_div", "forward", {"temperature": 2.0}),
    Case("kl_div_reverse", "kl_div", "reverse", {"temperature": 2.0}),
    Case("jsd", "jsd", None, {"beta": 0.25, "temperature": 2.0}),
    Case("logit_mse", "logit_mse"),
    Case("cross_entropy", "cross_entropy"),
    Case("distill_kl_ce", "distill_loss", "kl", {"alpha": 0.5, "temperature": 2.0}),
    Case("distill_rkl_ce", "distill_loss", "reverse_kl", {"alpha": 0.75, "temperature": 0.5}),
    Case("distill_jsd_ce", "distill_loss", "jsd", {"alpha": 0.25, "temperature": 1.0, "beta": 0.5}),
    Case("distill_mse_ce", "distill_loss", "mse", {"alpha": 0.5}),
]
CASE_BY_ID = {c.id: c for c in CASES}


def call_fused(case: Case, s, t, y, reduction: str, ignore_index: int = -100):
    """Calls the pylaundering public API for ``case``."""
    import pylaundering.ops as O

    kw = dict(case.kw)
    if case.op == "kl_div":
        return O.kl_div(s, t, kw.get("temperature", 1.0), reduction, direction=case.kind)
    if case.op == "jsd":
        return O.jsd(s, t, beta=kw.get("beta", 0.5), temperature=kw.get("temperature", 1.0), reduction=reduction)
    if case.op == "logit_mse":
        return O.logit_mse(s, t, reduction=reduction)
    if case.op == "cross_entropy":
        return O.cross_entropy(s, y, ignore_index=ignore_index, reduction=reduction)
    return O.distill_loss(s, t, y, kind=case.kind, reduction=reduction, ignore_index=ignore_index, **kw)


def oracle(case: Case, s, t, y, reduction: str, ignore_index: int = -100, part: str | None = None,
           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Expected loss for ``case`` from plain torch formulas; differentiable w.r.t. ``s``.

    ``s``/``t`` are ``[..., V]`` (any float dtype; computed in float64), ``y`` is ``[...]``.
    Rows are all leading dims flattened, as the pylaundering docs specify. ``part`` ("distill" or
    "ce") keeps only that term of a distill_loss mix (for gradient-scale estimates). ``dtype`` is
    the arithmetic (float64 for the oracle; float32 gives eager PyTorch's own rounding error).
    """
    lead, V = s.shape[:-1], s.shape[-1]
    s2 = s.reshape(-1, V).to(dtype)
    t2 = t.reshape(-1, V).to(dtype).detach() if t is not None else None
    y1 = y.reshape(-1).long() if y is not None else None
    N = s2.shape[0]
    kw = case.kw
    T = kw.get("temperature", 1.0)

    if case.op == "kl_div":
        ls, lt = F.log_softmax(s2 / T, -1), F.log_softmax(t2 / T, -1)
        inp, tgt = (ls, lt) if case.kind == "forward" else (lt, ls)
        if reduction == "none":
            return (F.kl_div(inp, tgt, log_target=True, reduction="none").sum(-1) * T * T).reshape(lead)
        # F.kl_div's own reductions: sum, mean (over elements), batchmean (over rows of the 2-D view)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
            return F.kl_div(inp, tgt, log_target=True, reduction=reduction) * T * T

    if case.op == "jsd":
        rows = jsd_rows(s2, t2, T, kw.get("beta", 0.5))
        return {"none": lambda: rows.reshape(lead), "sum": rows.sum, "batchmean": lambda: rows.sum() / N,
                "mean": lambda: rows.sum() / (N * V)}[reduction]()

    if case.op == "logit_mse":
        # per row: mean over V; none -> per row; sum -> sum of row means; mean/batchmean = F.mse_loss mean
        if reduction == "none":
            return F.mse_loss(s2, t2, reduction="none").mean(-1).reshape(lead)
        if reduction == "sum":
            return F.mse_loss(s2, t2, reduction="sum") / V
        return F.mse_loss(s2, t2, reduction="mean")

    if case.op == "cross_entropy":
        r = "mean" if reduction == "batchmean" else reduction
        out = F.cross_entropy(s2, y1, ignore_index=ignore_index, reduction=r)
        return out.reshape(lead) if reduction == "none" else out

    # distill_loss: alpha * distill + (1 - alpha) * CE per row, ignored rows 0 and not counted
    alpha = kw.get("alpha", 1.0)
    rows = torch.zeros(N, dtype=dtype)
    if alpha > 0 and part != "ce":
        rows = rows + alpha * distill_rows(s2, t2, case.kind, T, kw.get("beta", 0.5))
    if alpha < 1 and part != "distill":
        rows = rows + (1 - alpha) * F.cross_entropy(s2, y1, ignore_index=ignore_index, reduction="none")
    count = N
    if y1 is not None:
        keep = y1 != ignore_index
        rows = torch.where(keep, rows, torch.zeros_like(rows))
        count = int(keep.sum())
    if reduction == "none":
        return rows.reshape(lead)
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / max(count, 1)


# --------------------------------------------------------------------------- data and checks
def make_inputs(case: Case, lead: tuple, V: int, dtype, seed: int, scale: float = 2.0, ignore_some: bool = True):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(*lead, V, generator=g, dtype=torch.float64) * scale).to(dtype)
    t = (torch.randn(*lead, V, generator=g, dtype=torch.float64) * scale).to(dtype) if case.needs_teacher else None
    y = None
    if case.needs_labels:
        y = torch.randint(0, V, lead, generator=g)
        if ignore_some and y.numel() > 1:
            y.view(-1)[1] = -100  # one ignored row: not counted by mean/batchmean
    return s, t, y


# (value rtol, value atol, grad tol relative to max |grad|)
TOL = {
    torch.float64: (1e-10, 1e-12, 1e-10),
    torch.float32: (2e-5, 1e-6, 2e-5),
    torch.float16: (2e-3, 1e-4, 2e-3),  # fp16 grads below 6e-5 are subnormal: see GRAD_ATOL
    torch.bfloat16: (1.6e-2, 1e-3, 1.6e-2),
}


# absolute floor for gradients: fp16 gradients of 'mean' reductions are often subnormal (spacing 2^-24)
GRAD_ATOL = {torch.float64: 1e-14, torch.float32: 1e-12, torch.float16: 2.0**-23, torch.bfloat16: 1e-12}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, what: str = "",
                        scale: float | None = None):
    """assert_close in float64 with the absolute tolerance scaled by the expected magnitude (or ``scale``)."""
    expected = expected.detach().double()
    actual = actual.detach().double()
    if scale is None:
        scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol + rtol * scale, msg=lambda m: f"{what}: {m}")


def fused_and_oracle(case: Case, s, t, y, reduction: str, seed: int = 0, device: str = "cpu"):
    """(fused loss, fused grad, oracle loss, oracle grad) for one input set.

    The fused op runs on ``device`` (its results come back on the CPU); the oracle always runs
    on the CPU copies of the very same inputs. For reduction='none' the backward uses random
    per-row weights, so the per-row scaling in the op's backward is exercised too.
    """
    def dev(x):
        return x.to(device) if x is not None else None

    a = dev(s.detach().clone()).requires_grad_(True)
    out = call_fused(case, a, dev(t), dev(y), reduction)
    b = s.detach().clone().double().requires_grad_(True)
    exp = oracle(case, b, t, y, reduction)
    if reduction == "none":
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        (out.double() * w.to(device)).sum().backward()
        (exp * w).sum().backward()
    else:
        out.backward()
        exp.backward()
    if device == "cpu":
        return out, a.grad, exp, b.grad
    return out.detach().cpu(), a.grad.cpu(), exp, b.grad


def _oracle_grad(case, s, t, y, reduction, seed, **kw):
    b = s.detach().clone().to(kw.get("dtype", torch.float64)).requires_grad_(True)
    exp = oracle(case, b, t, y, reduction, **kw)
    if reduction == "none":
        w = torch.randn(exp.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        (exp * w.to(exp.dtype)).sum().backward()
    else:
        exp.backward()
    return b.grad.double()


def _row_weights(case: Case, s, y, reduction: str, seed: int) -> torch.Tensor:
    """|d loss / d row| for each row of the 2-D view (the reduction's weight of each row)."""
    V = s.shape[-1]
    N = s.numel() // V if V else 0
    if reduction == "none":
        shape = s.shape[:-1]
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1),
                           dtype=torch.float64).abs().reshape(-1)
    if reduction == "sum":
        return torch.ones(N, dtype=torch.float64)
    count = N
    if y is not None and case.op in ("cross_entropy", "distill_loss"):
        count = max(int((y != -100).sum()), 1)
    if reduction == "mean" and case.op in ("kl_div", "jsd"):
        count = N * V
    return torch.full((N,), 1.0 / max(count, 1), dtype=torch.float64)


def grad_atol(case: Case, s, t, y, reduction: str, exp_grad: torch.Tensor = None, seed: int = 0) -> float:
    """Absolute gradient tolerance: rounding relative to the magnitude of the terms that are summed.

    A row's gradient is a sum of terms that can nearly cancel (reverse KL: T ps (d - f) with d, f
    log-ratios; an alpha-mix of a distillation and a CE gradient), so the error a correct float32
    kernel makes is relative to the terms, not to the result. Per row the terms are bounded by
        alpha * T * max(ps, pt) * (1 + max |log ps - log pt|)  (+ 2 |s - t| / V for MSE)
        + (1 - alpha) * 2                                       (CE: p - onehot)
    times the row's weight in the reduction; the tolerance is TOL * the largest such bound.
    """
    gtol = TOL[s.dtype][2]
    V = s.shape[-1]
    s2 = s.detach().reshape(-1, V).double()
    if s2.shape[0] == 0:
        return GRAD_ATOL[s.dtype]
    kw = case.kw
    alpha = {"kl_div": 1.0, "jsd": 1.0, "logit_mse": 1.0, "cross_entropy": 0.0}.get(case.op, kw.get("alpha", 1.0))
    kind = {"kl_div": "kl", "jsd": "jsd", "logit_mse": "mse"}.get(case.op, case.kind)
    T = kw.get("temperature", 1.0)
    mag = torch.zeros(s2.shape[0], dtype=torch.float64)
    if alpha > 0 and kind == "mse":
        mag += alpha * 2 * (s2 - t.reshape(-1, V).double()).abs().max(-1).values / V
    elif alpha > 0:
        ls, lt = F.log_softmax(s2 / T, -1), F.log_softmax(t.reshape(-1, V).double() / T, -1)
        pmax = torch.maximum(ls.exp(), lt.exp()).max(-1).values
        mag += alpha * T * pmax * (1 + (ls - lt).abs().max(-1).values)
    if alpha < 1:
        mag += (1 - alpha) * 2
    tol = GRAD_ATOL[s.dtype] + gtol * float((mag * _row_weights(case, s, y, reduction, seed)).max())
    if s.dtype in (torch.bfloat16, torch.float16) and kind == "jsd":
        # known: the JSD kernel rounds an intermediate gradient to the output dtype before its
        # last pass subtracts from it (test_edge_cases.test_low_precision_gradient_is_rounded_once)
        tol *= 2
    return tol


# --------------------------------------------------------------------------- allocations
class BigAllocations(TorchDispatchMode):
    """Records the storages of op results of at least ``nbytes`` that are not ``known`` (forward and
    backward alike): how the memory tests see an [N, V] allocation."""

    def __init__(self, nbytes: int, known: list[torch.Tensor]):
        super().__init__()
        self.nbytes = nbytes
        self.known = {x.untyped_storage().data_ptr() for x in known}
        self.storages: dict[int, str] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in tree_leaves(out):
            if isinstance(o, torch.Tensor) and o.numel() * o.element_size() >= self.nbytes:
                ptr = o.untyped_storage().data_ptr()
                if ptr not in self.known:
                    self.storages.setdefault(ptr, str(func))
        return out
