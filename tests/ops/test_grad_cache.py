"""The CPU ops' one-entry gradient cache (csrc/cpu/grad_buffer.cpp): a freed large gradient's pages
are reused by the next call of the same size, whose values are its own (nothing left over from the
last call), and empty_cache / PYLAUNDERING_GRAD_CACHE=0 give the memory back."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from ops_oracle import kl_rows, requires_compiled

import pylaundering.ops as O

pytestmark = requires_compiled

ROWS, V = 512, 32768  # 64 MiB of fp32: the smallest size the cache takes


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(ROWS, V, generator=g) * 3
    t = torch.randn(ROWS, V, generator=g) * 3
    return s, t


def _grad(s, t, **kw):
    a = s.clone().requires_grad_(True)
    O.distill_loss(a, t, temperature=2.0, **kw).backward()
    return a.grad


def test_a_freed_gradient_is_reused_and_fully_rewritten():
    O.empty_cache()
    s, t = _inputs(0)
    first = _grad(s, t)
    ptr = first.data_ptr()
    del first
    assert O.cached_bytes() == ROWS * V * 4
    s2, t2 = _inputs(1)
    y = torch.randint(0, V, (ROWS,))
    y[::7] = -100  # ignored rows: their zeros must be written, not left from the last call
    second = _grad(s2, t2, labels=y, alpha=0.5)
    assert second.data_ptr() == ptr and O.cached_bytes() == 0
    a = s2.double().requires_grad_(True)
    keep = (y != -100)
    rows = 0.5 * kl_rows(a, t2.double(), 2.0) + 0.5 * torch.nn.functional.cross_entropy(
        a, y, ignore_index=-100, reduction="none")
    ((rows * keep).sum() / keep.sum()).backward()
    torch.testing.assert_close(second, a.grad.float(), rtol=1e-4, atol=1e-9)
    assert second[::7].abs().max() == 0


def test_sparse_op_uses_the_same_cache_and_gets_its_own_values():
    O.empty_cache()
    s, t = _inputs(2)
    _grad(s, t)  # freed at once: leaves a cached buffer of the same size
    top = O.topk_teacher(t, 8, temperature=2.0)
    a = s.clone().requires_grad_(True)
    O.topk_distill_loss(a, top, temperature=2.0).backward()
    b = s.clone().requires_grad_(True)
    O.empty_cache()
    O.topk_distill_loss(b, top, temperature=2.0).backward()  # a fresh buffer
    assert torch.equal(a.grad, b.grad)


def test_empty_cache_releases_and_small_gradients_are_not_cached():
    s, t = _inputs(3)
    _grad(s, t)
    assert O.cached_bytes() > 0
    assert O.empty_cache() == ROWS * V * 4 and O.cached_bytes() == 0
    _grad(s[:8], t[:8])
    assert O.cached_bytes() == 0


def test_the_cache_can_be_turned_off():
    code = ("import torch, pylaundering.ops as O\n"
            "s = torch.randn(512, 32768, requires_grad=True)\n"
            "O.kl_div(s, torch.randn(512, 32768)).backward()\n"
            "s.grad = None\n"
            "print(O.cached_bytes())\n")
    env = {**os.environ, "PYLAUNDERING_GRAD_CACHE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
