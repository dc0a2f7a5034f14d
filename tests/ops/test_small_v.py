"""The CPU kernel's small-V path (V <= 16: a vector lane per row, multiple-choice heads) on enough rows
for whole vector groups. A full group is read with one gather per column (from the input for
float32/float64, from the group converted with vector loads for bf16/fp16), the last partial group
lane by lane: both are compared with the float64 oracle, with ignored rows, NaN-poisoned rows and
masked (-inf) classes spread over full and partial groups, in every CPU variant the machine runs (a
group is 16 float32 lanes on AVX-512, 8 on AVX2)."""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from ops_oracle import (
    CASES,
    TOL,
    assert_close_scaled,
    fused_and_oracle,
    grad_atol,
    make_inputs,
    masked_oracle_rows,
    requires_compiled,
)

pytestmark = requires_compiled

ROWS = 16 * 3 + 5  # three full AVX-512 float32 groups (six AVX2 ones) and a partial one


@pytest.mark.parametrize("V", [1, 2, 4, 7, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_full_and_partial_groups_match_oracle(case, dtype, V):
    seed = zlib.crc32(repr((case.id, str(dtype), V)).encode())
    s, t, y = make_inputs(case, (ROWS,), V, dtype, seed)
    if y is not None:
        y[[0, 17, 33, ROWS - 1]] = -100  # in each full group and in the partial one
    out, grad, exp, exp_grad = fused_and_oracle(case, s, t, y, "none", seed)
    rtol, atol, gtol = TOL[dtype]
    assert_close_scaled(out, exp, rtol, atol, f"{case.id} V={V} value")
    atol = grad_atol(case, s, t, y, "none", exp_grad, seed)
    torch.testing.assert_close(grad.double(), exp_grad, rtol=gtol, atol=atol, msg=lambda m: f"{case.id} grad: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind,alpha", [("kl", 0.5), ("reverse_kl", 1.0), ("jsd", 0.25), ("mse", 0.5), ("tvd", 0.5),
                                        ("skew_kl", 0.75), ("skew_reverse_kl", 1.0)])
def test_nan_rows_and_masks_in_full_groups(kind, alpha, dtype):
    import pylaundering.ops as O

    V, T = 5, 2.0
    g = torch.Generator().manual_seed(V)
    s = torch.randn(ROWS, V, generator=g, dtype=dtype) * 2
    t = torch.randn(ROWS, V, generator=g, dtype=dtype) * 2
    y = torch.randint(0, V, (ROWS,), generator=g)
    live = torch.ones(ROWS, V, dtype=torch.bool)
    if kind != "mse":
        for r in (3, 20, 50):  # a class masked on both sides (never the label)
            c = (int(y[r]) + 1) % V
            s[r, c] = t[r, c] = -math.inf
            live[r, c] = False
    poisoned, ignored = [5, 38, ROWS - 2], [6, 39]
    s[poisoned, 1] = math.nan
    s[ignored, 2] = math.nan  # an ignored row stays 0 whatever it holds
    y[ignored] = -100
    a = s.clone().requires_grad_(True)
    out = O.distill_loss(a, t, y, kind=kind, alpha=alpha, temperature=T, reduction="none")
    out.sum().backward()
    assert torch.isnan(out[poisoned]).all() and torch.isnan(a.grad[poisoned]).all()
    assert (out[ignored] == 0).all() and (a.grad[ignored] == 0).all()
    rest = [r for r in range(ROWS) if r not in poisoned + ignored]
    exp, exp_grad = masked_oracle_rows(kind, s[rest], t[rest], y[rest], live[rest], alpha, T)
    rtol = TOL[dtype][0]
    assert_close_scaled(out[rest], exp, rtol, TOL[dtype][1], f"{kind} value")
    assert_close_scaled(a.grad[rest], exp_grad, rtol, TOL[dtype][1], f"{kind} grad")


@pytest.mark.parametrize("capability", ["DEFAULT", "AVX2", "AVX512"])
def test_every_cpu_variant_agrees_on_small_v(run_py, capability):
    """Each variant's small-V result against the float64 reference formulas (a group is a different
    number of rows in each)."""
    code = (
        "import json, torch, pylaundering.ops as O\n"
        "from pylaundering import _C\n"
        "g = torch.Generator().manual_seed(1)\n"
        f"s, t = torch.randn({ROWS}, 4, generator=g) * 3, torch.randn({ROWS}, 4, generator=g) * 3\n"
        f"y = torch.randint(0, 4, ({ROWS},), generator=g); y[[2, 40]] = -100\n"
        "a = s.clone().requires_grad_(True)\n"
        "out = O.distill_loss(a, t, y, kind='kl', alpha=0.5, temperature=2.0, reduction='sum')\n"
        "out.backward()\n"
        "b = s.double().requires_grad_(True)\n"
        "T = 2.0\n"
        "kl = torch.nn.functional.kl_div(torch.log_softmax(b / T, -1), torch.log_softmax(t.double() / T, -1),\n"
        "    log_target=True, reduction='none').sum(-1) * T * T\n"
        "ce = torch.nn.functional.cross_entropy(b, y, reduction='none')\n"
        "ref = torch.where(y != -100, 0.5 * kl + 0.5 * ce, torch.zeros_like(kl)).sum()\n"
        "ref.backward()\n"
        "print(json.dumps({'variant': _C.cpu_kernel_variant(), 'loss': abs(float(out) - float(ref)) / float(ref),\n"
        "                  'grad': float((a.grad.double() - b.grad).abs().max() / b.grad.abs().max())}))\n"
    )
    res = run_py(code, env={"PYLAUNDERING_CPU_CAPABILITY": capability})
    assert res["loss"] < 1e-5 and res["grad"] < 1e-5, res
