"""Fused distillation loss vs the eager PyTorch formula vs torch.compile of that formula.

Run with `make bench` (pytest benchmarks --benchmark-only). fp32, 2 threads, Hinton KD at T=2
(and alpha=0.5 + hard-label CE at 4096x32000). Modes:
  fwd      inference: the student needs no gradient (the fused kernel then writes none)
  fwd+bwd  a training step's loss part: forward, backward, student gradient materialised
A copy of one input's size (x.copy_(y), and y.clone() into a fresh allocation) gives the
machine's memory bandwidth in the same run; the fused op's effective bandwidth counts 8 B/element
forward (read s, t) and 12 B/element forward+backward (read s, t, write the gradient).
"""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

import pylaundering.ops as O

torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)

SHAPES = [(4096, 32000), (1024, 128256), (16384, 4)]
T = 2.0
CASES = {"kd_T2": 1.0, "kd_T2_a0.5_ce": 0.5}  # name -> alpha


def eager_loss(s, t, y, alpha: float):
    """The plain-PyTorch formula a user would write (Hinton KD, optionally mixed with CE)."""
    kd = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean") * (T * T)
    if alpha < 1.0:
        kd = alpha * kd + (1.0 - alpha) * F.cross_entropy(s, y)
    return kd


def fused_loss(s, t, y, alpha: float):
    return O.distill_loss(s, t, y if alpha < 1.0 else None, kind="kl", alpha=alpha, temperature=T)


def _rounds(shape) -> tuple[int, int]:
    """(rounds, iterations): big shapes take 0.05-3 s per call."""
    n = shape[0] * shape[1]
    return (5, 1) if n > 10_000_000 else (20, 10)


_INPUTS: dict = {}


def inputs(shape):
    """One shape's inputs at a time (1024x128256 fp32 is 525 MB per tensor)."""
    if shape not in _INPUTS:
        _INPUTS.clear()
        torch._dynamo.reset()
        gc.collect()
        g = torch.Generator().manual_seed(0)
        s = torch.randn(shape, generator=g) * 3
        t = torch.randn(shape, generator=g) * 3
        y = torch.randint(0, shape[1], (shape[0],), generator=g)
        _INPUTS[shape] = (s, t, y)
    return _INPUTS[shape]


_COMPILED: dict = {}


def compiled_loss(shape, alpha, mode):
    key = (shape, alpha, mode)
    if key not in _COMPILED:
        # a fresh function object per key, static shapes: each case gets its own specialised graph
        def loss(s, t, y):
            return eager_loss(s, t, y, alpha)

        _COMPILED[key] = torch.compile(loss, dynamic=False)
    return _COMPILED[key]


def _params():
    out = []
    for shape in SHAPES:
        for case, alpha in CASES.items():
            if alpha < 1.0 and shape != (4096, 32000):
                continue
            for mode in ("fwd", "fwd+bwd"):
                for impl in ("fused", "compiled", "eager"):
                    sid = f"{shape[0]}x{shape[1]}"
                    out.append(pytest.param(shape, case, mode, impl, id=f"{sid}-{case}-{mode}-{impl}"))
    return out


@pytest.mark.parametrize(("shape", "case", "mode", "impl"), _params())
def test_loss(benchmark, record, shape, case, mode, impl):
    s0, t, y = inputs(shape)
    alpha = CASES[case]
    fn = {"fused": lambda s: fused_loss(s, t, y, alpha), "eager": lambda s: eager_loss(s, t, y, alpha)}.get(impl)
    if impl == "compiled":
        c = compiled_loss(shape, alpha, mode)
        fn = lambda s: c(s, t, y)  # noqa: E731

    if mode == "fwd":
        s = s0

        def run():
            with torch.no_grad():
                return fn(s)
    else:
        s = s0.detach().requires_grad_(True)

        def run():
            s.grad = None
            loss = fn(s)
            loss.backward()
            return loss

    rounds, iterations = _rounds(shape)
    benchmark.group = f"{shape[0]}x{shape[1]}|{case}|{mode}"
    result = benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=1)
    assert torch.isfinite(result)
    n = shape[0] * shape[1]
    record(benchmark, benchmark.group, impl, (8 if mode == "fwd" else 12) * n, shape=list(shape),
           case=case, mode=mode, loss=float(result), backend=str(O.backend()))
    if mode == "fwd+bwd":
        s.grad = None


@pytest.mark.parametrize("shape", SHAPES, ids=lambda sh: f"{sh[0]}x{sh[1]}")
@pytest.mark.parametrize("kind", ["copy_", "clone"])
def test_copy_bandwidth(benchmark, record, shape, kind):
    """Memory bandwidth reference: 8 B/element (read + write), into an existing or a fresh tensor."""
    s, t, _ = inputs(shape)
    if kind == "copy_":
        dst = torch.empty_like(s)

        def run():
            return dst.copy_(t)
    else:

        def run():
            return t.clone()

    rounds, iterations = _rounds(shape)
    benchmark.group = f"copy|{shape[0]}x{shape[1]}"
    benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=1)
    record(benchmark, benchmark.group, kind, 8 * shape[0] * shape[1], shape=list(shape))
