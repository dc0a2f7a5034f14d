"""Fused linear distillation vs the naive computation (and Liger-Kernel's chunked loss), per shape.

A case is one training step's loss part through an LM head: hidden states ``[N, H]`` and a head
``[V, H]`` for student and teacher, the generalized JSD (beta = 0.5, T = 1: the loss Liger's chunked
family shares with ours), forward + backward with the gradients of the student's hidden states and
head. Implementations:

* ``fused``: ``pylaundering.ops.fused_linear_distill_loss`` (never holds the ``[N, V]`` logits);
* ``naive``: the full logits of student and teacher by matmul, then the dense fused op;
* ``eager``: the full logits, then the loss in plain PyTorch; ``compile``: torch.compile of ``eager``;
* ``liger``: ``liger_kernel.chunked_loss.LigerFusedLinearJSDLoss`` where importable (its chunked
  losses are PyTorch + torch.compile, so they run on the CPU too).

Beside each shape, a top-k case on the ``[N, V]`` logits (``pylaundering/bench/topk.py``: the fused sparse-teacher
kernel, sampled teachers, the dense loss they replace, cross-entropy).

Reported per implementation as in ``bench ops``: median, min and spread of the timed calls, time over
the fused op's, GFLOP/s (4 matmuls of N*H*V: both logits and the two gradients; the minimum any of
them does), and on CUDA the peak memory above the inputs (``torch.cuda.max_memory_allocated``). On
the CPU peak memory needs a fresh process: ``python benchmarks/peak_memory.py --op linear``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

import pylaundering.ops as O

from . import topk
from .ops import failure, run_cases, time_impl
from .topk import TopkCase

BETA = 0.5


@dataclass(frozen=True)
class LinearCase:
    rows: int
    hidden: int
    vocab: int
    dtype: torch.dtype

    @property
    def name(self) -> str:
        return f"{self.rows}x{self.hidden}x{self.vocab} {str(self.dtype).replace('torch.', '')} jsd fwd+bwd"


def eager_jsd(s: torch.Tensor, t: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    """Generalized JSD in plain PyTorch, batchmean, computed in fp32."""
    ls, lt = torch.log_softmax(s.float(), -1), torch.log_softmax(t.float(), -1)
    lm = torch.logsumexp(torch.stack([lt + math.log(beta), ls + math.log(1 - beta)]), dim=0)
    return (beta * (lt.exp() * (lt - lm)).sum(-1) + (1 - beta) * (ls.exp() * (ls - lm)).sum(-1)).mean()


def make_step(impl: str, teacher_hidden: torch.Tensor, teacher_weight: torch.Tensor):
    """``step(h, w, labels) -> loss`` for one implementation; raises ImportError for a missing Liger."""
    th, tw = teacher_hidden, teacher_weight
    if impl == "fused":
        return lambda h, w, y: O.fused_linear_distill_loss(h, w, (th, tw), kind="jsd", beta=BETA)
    if impl == "naive":
        return lambda h, w, y: O.jsd(h @ w.T, (th @ tw.T).detach(), beta=BETA)
    if impl == "eager":
        return lambda h, w, y: eager_jsd(h @ w.T, (th @ tw.T).detach())
    if impl == "compile":
        torch._dynamo.reset()
        compiled = torch.compile(lambda h, w: eager_jsd(h @ w.T, (th @ tw.T).detach()), dynamic=False)
        return lambda h, w, y: compiled(h, w)
    if impl == "liger":
        from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss  # type: ignore

        # Liger's beta weighs the other side of the mixture; at 0.5 the two definitions agree.
        loss = LigerFusedLinearJSDLoss(weight_hard_loss=0.0, weight_soft_loss=1.0, beta=BETA, temperature=1.0)
        return lambda h, w, y: loss(h, w, th, tw, y)
    raise ValueError(f"unknown implementation {impl!r}")


IMPLS = ("fused", "naive", "eager", "compile", "liger")


def case_inputs(case: LinearCase, device: torch.device):
    g = torch.Generator(device="cpu").manual_seed(0)
    scale = case.hidden ** -0.5

    def r(*shape, s=1.0):
        return (torch.randn(*shape, generator=g) * s).to(device=device, dtype=case.dtype)

    return (r(case.rows, case.hidden), r(case.vocab, case.hidden, s=scale), r(case.rows, case.hidden),
            r(case.vocab, case.hidden, s=scale), torch.randint(0, case.vocab, (case.rows,), generator=g).to(device))


def bench_case(case: LinearCase, device: torch.device, repeats: int = 5, warmup: int = 1,
               compile_ok: bool = True) -> dict:
    h0, w0, th, tw, y = case_inputs(case, device)
    flops = 8 * case.rows * case.hidden * case.vocab
    results, missing, losses = {}, {}, {}
    warnings.filterwarnings("ignore", message=".*Online softmax is disabled.*")
    for impl in IMPLS:
        if impl == "compile" and not compile_ok:
            missing[impl] = "disabled (--no-compile)"
            continue
        try:
            step = make_step(impl, th, tw)
        except ImportError as e:
            missing[impl] = (f"liger-kernel not importable ({type(e).__name__}: {e}); "
                             "`pip install --no-deps liger-kernel`")
            continue
        h, w = h0.detach().clone().requires_grad_(True), w0.detach().clone().requires_grad_(True)

        def run(step=step, h=h, w=w):
            h.grad = w.grad = None
            loss = step(h, w, y)
            loss.backward()
            return loss

        try:
            r, losses[impl] = time_impl(run, device, repeats, warmup, keep_loss=True)
        except Exception as e:  # noqa: BLE001 - a failing baseline is reported, not fatal
            missing[impl] = failure(e)
            continue
        r["GFLOPs"] = flops / (r["median_ms"] / 1e3) / 1e9
        results[impl] = r
    if "fused" in results:
        for r in results.values():
            r["fused_speedup"] = r["median_ms"] / results["fused"]["median_ms"]
    ref = losses.get("naive", losses.get("fused"))
    # a benchmark of a wrong answer is worthless: every implementation must agree on the loss
    disagree = {k: v for k, v in losses.items() if ref is not None and abs(v - ref) > 1e-2 * abs(ref) + 1e-4}
    return {"case": case.name, "rows": case.rows, "hidden": case.hidden, "vocab": case.vocab,
            "dtype": str(case.dtype).replace("torch.", ""), "flops": flops, "losses": losses,
            "losses_disagree": disagree, "results": results, "missing": missing}


def default_cases(device: torch.device, dtype: torch.dtype | None = None, k: int = 128) -> list:
    if device.type == "cuda":
        shapes, dt = [(8192, 4096, 128256)], dtype or torch.bfloat16
    else:
        shapes, dt = [(1024, 1024, 32000)], dtype or torch.float32
    return cases_for(shapes, dt, k)


def cases_for(shapes: list[tuple[int, int, int]], dtype: torch.dtype, k: int = 128) -> list:
    """A linear case per NxHxV shape and, when k > 0, a top-k case on its [N, V] logits (k <= V)."""
    cases: list = [LinearCase(n, h, v, dtype) for n, h, v in shapes]
    if k > 0:
        cases += [TopkCase(n, v, min(k, v), dtype) for n, _, v in shapes]
    return cases


def _bench_any(case, device, repeats, warmup, compile_ok):
    bench = topk.bench_case if isinstance(case, TopkCase) else bench_case
    return bench(case, device, repeats, warmup, compile_ok)


def parse_linear_shapes(text: str) -> list[tuple[int, int, int]]:
    """'4096x2048x128256,1024x1024x32000' -> [(4096, 2048, 128256), ...]: rows x hidden x vocabulary."""
    shapes = []
    for part in text.split(","):
        try:
            n, h, v = (int(d) for d in part.strip().lower().split("x"))
        except ValueError:
            raise ValueError(f"bad shape {part.strip()!r}: expected NxHxV, e.g. 4096x2048x128256") from None
        if min(n, h, v) < 1:
            raise ValueError(f"bad shape {part.strip()!r}: N, H and V must be >= 1")
        shapes.append((n, h, v))
    return shapes


def format_table(report: dict) -> str:
    lines = [f"device: {report['device']}  torch {report['torch']}  backend: {report['backend']}  "
             f"threads: {report['threads']}"]
    w = max([42] + [len(c["case"]) + 2 for c in report["cases"]])
    hdr = (f"{'case':<{w}}{'impl':<9}{'median ms':>11}{'min ms':>10}{'spread':>8}{'x fused':>8}"
           f"{'GFLOP/s':>11}{'peak MB':>9}")
    lines += [hdr, "-" * len(hdr)]
    for c in report["cases"]:
        if c.get("kind") == "topk":
            lines += topk.format_rows(c, w)
            continue
        for name, r in c["results"].items():
            peak = f"{r['peak_extra_mb']:.0f}" if "peak_extra_mb" in r else "-"
            lines.append(f"{c['case']:<{w}}{name:<9}{r['median_ms']:>11.1f}{r['min_ms']:>10.1f}{r['spread']:>8.2f}"
                         f"{r.get('fused_speedup', float('nan')):>8.2f}{r['GFLOPs']:>11.0f}{peak:>9}")
        for name, why in c["missing"].items():
            lines.append(f"{'':<{w}}{name:<9} missing: {why}")
        for name, value in c["losses_disagree"].items():
            lines.append(f"{'':<{w}}{name:<9} WARNING: loss {value:.6g} disagrees with the others")
    lines.append("x fused = impl time / fused time; GFLOP/s counts the 4 matmuls of N*H*V every implementation does; "
                 "CPU peak memory: python benchmarks/peak_memory.py --op linear --shape NxHxV")
    if any(c.get("kind") == "topk" for c in report["cases"]):
        lines.append("top-k rows: GB/s = the student logits read + their gradient written (2 N V elements) / time, "
                     "and its share of a copy's bandwidth in the same run; sampled, dense and ce are other losses "
                     "(their time, not their value, is the comparison)")
    return "\n".join(lines)


def run(device: str = "cpu", cases: list[LinearCase] | None = None, repeats: int = 5, warmup: int = 1,
        compile_ok: bool = True) -> dict:
    return run_cases(device, cases or default_cases(torch.device(device)), _bench_any, repeats, warmup, compile_ok,
                     kind="linear")
