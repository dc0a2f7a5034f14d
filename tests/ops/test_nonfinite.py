"""NaN and +inf logits are never hidden: a diverging run must show up in its loss.

Contract (every backend: the CPU kernel variants, CUDA, the reference): a NaN or +inf in any live
logit of a row (student or, for soft kinds, teacher) makes that row's loss NaN and its gradient
NaN, as plain PyTorch's log_softmax-based formulas do. ``-inf`` stays a mask. MSE follows
F.mse_loss (a NaN gives NaN; an infinite difference gives inf). Ignored rows stay 0.

The position matters for a blocked online softmax (the first block, the first element, a
later block, the last element), so each is tried; the expected value comes from plain torch.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pylaundering.ops as O
from pylaundering.loss_kinds import SOFT_KINDS as SOFT  # noqa: F401
from pylaundering.ops import _ext

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _positions(V):
    return sorted({0, 5 % V, V // 2, V - 1})


def _call(kind, s, t, y, alpha):
    if kind == "ce":
        return O.cross_entropy(s, y, reduction="none")
    return O.distill_loss(s, t, y, kind=kind, alpha=alpha, temperature=2.0, reduction="none")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("V", [4, 100, 4096, 5000])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("side", ["student", "teacher"])
@pytest.mark.parametrize("kind,alpha", [("kl", 1.0), ("reverse_kl", 1.0), ("jsd", 1.0), ("ce", 0.0),
                                        ("kl", 0.5), ("jsd", 0.25), ("mse", 1.0), ("mse", 0.5)])
def test_nonfinite_logit_poisons_its_row(device, V, bad, side, kind, alpha):
    if side == "teacher" and kind == "ce":
        pytest.skip("cross-entropy reads no teacher")
    g = torch.Generator().manual_seed(V)
    for pos in _positions(V):
        s = torch.randn(3, V, generator=g).to(device)
        t = torch.randn(3, V, generator=g).to(device)
        y = torch.tensor([1 % V, 2 % V, 0], device=device)
        (s if side == "student" else t)[1, pos] = bad
        a = s.clone().requires_grad_(True)
        out = _call(kind, a, t, y, alpha)
        out.sum().backward()
        out, grad = out.cpu(), a.grad.cpu()
        where = f"{kind} alpha={alpha} {side}[1, {pos}] = {bad} V={V} on {device}"
        # the other rows are untouched
        assert torch.isfinite(out[[0, 2]]).all(), where
        assert torch.isfinite(grad[[0, 2]]).all(), where
        if kind == "mse":
            # MSE is elementwise: plain torch decides which entries are NaN or inf
            b = s.detach().cpu().double().requires_grad_(True)
            tt, yy = t.cpu().double(), y.cpu()
            exp = alpha * F.mse_loss(b, tt, reduction="none").mean(-1)
            if alpha < 1:
                exp = exp + (1 - alpha) * F.cross_entropy(b, yy, reduction="none")
            exp.sum().backward()
            for name, got, want in (("loss", out[1], exp[1]), ("grad", grad[1], b.grad[1])):
                assert torch.equal(torch.isnan(got), torch.isnan(want)), f"{where}: {name} NaN pattern"
                assert torch.equal(torch.isinf(got), torch.isinf(want)), f"{where}: {name} inf pattern"
            assert not torch.isfinite(out[1]), where
            continue
        assert torch.isnan(out[1]), f"{where}: loss {out[1].item()} should be NaN"
        assert torch.isnan(grad[1]).all(), f"{where}: gradient row should be NaN"


@pytest.mark.parametrize("device", DEVICES)
def test_issue_examples(device):
    """The cases from the issue, on every backend that runs here."""
    torch.manual_seed(0)
    s = torch.randn(1, 4096, device=device)
    s[0, 5] = math.nan
    assert torch.isnan(O.cross_entropy(s, torch.tensor([3], device=device)))
    s = torch.randn(1, 100, device=device)
    s[0, 5] = math.nan
    assert torch.isnan(O.cross_entropy(s, torch.tensor([3], device=device)))
    s, t = torch.randn(1, 4096, device=device), torch.randn(1, 4096, device=device)
    t[0, 5] = math.nan
    assert torch.isnan(O.kl_div(s, t, temperature=1.0))
    assert torch.isnan(O.kl_div(s, t, temperature=1.0, direction="reverse"))
    # plain PyTorch agrees
    assert torch.isnan(F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean"))


@pytest.mark.parametrize("device", DEVICES)
def test_nan_in_ignored_row_stays_ignored(device):
    s = torch.randn(2, 50, device=device)
    s[1, 3] = math.nan
    y = torch.tensor([2, -100], device=device)
    a = s.clone().requires_grad_(True)
    out = O.cross_entropy(a, y, reduction="none")
    out.sum().backward()
    assert out[1].item() == 0 and torch.isfinite(out[0])
    assert (a.grad[1] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_minus_inf_is_still_a_mask(device):
    s, t = torch.randn(2, 3000, device=device), torch.randn(2, 3000, device=device)
    s[:, :2500] = -math.inf
    t[:, :2500] = -math.inf
    out = O.kl_div(s, t, temperature=2.0, reduction="none")
    exp = O.kl_div(s[:, 2500:].contiguous(), t[:, 2500:].contiguous(), temperature=2.0, reduction="none")
    torch.testing.assert_close(out, exp)


@pytest.mark.parametrize("capability", ["DEFAULT", "AVX2", "AVX512"])
def test_every_cpu_variant_propagates_nan(run_py, capability):
    if not _ext.compiled_available("cpu"):
        pytest.skip("compiled CPU kernels not in use")
    code = (
        "import json, math, torch, pylaundering.ops as O\n"
        "from pylaundering import _C\n"
        "torch.manual_seed(0)\n"
        "res = {'variant': _C.cpu_kernel_variant(), 'nan': []}\n"
        "for V in (4, 100, 4096, 5000):\n"
        "    for pos in sorted({0, 5 % V, V // 2, V - 1}):\n"
        "        s, t = torch.randn(2, V), torch.randn(2, V)\n"
        "        s[0, pos] = math.nan\n"
        "        t[1, pos] = math.nan\n"
        "        y = torch.tensor([0, 1])\n"
        "        a = O.distill_loss(s, t, y, kind='kl', alpha=0.5, reduction='none')\n"
        "        b = O.kl_div(s, t, reduction='none', direction='reverse')\n"
        "        res['nan'].append(bool(torch.isnan(a).all() and torch.isnan(b).all()))\n"
        "print(json.dumps(res))\n"
    )
    res = run_py(code, env={"PYLAUNDERING_CPU_CAPABILITY": capability})
    assert all(res["nan"]), res
