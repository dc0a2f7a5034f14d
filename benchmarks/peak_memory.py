"""Peak extra memory of one forward+backward of the distillation loss: fused vs eager vs compiled.

    python benchmarks/peak_memory.py [--shape 4096x32000] [--alpha 1.0] [--out peak.json]
    python benchmarks/peak_memory.py --op linear --shape 4096x2048x128256   # fused linear vs naive (vs Liger)
    python benchmarks/peak_memory.py --op token --shape 8x128x32000         # token-level layering step

With ``--op linear`` the step is the loss of hidden states through an LM head (JSD, beta 0.5, teacher as
hidden states + head; the implementations of benchmarks/test_linear_bench.py) and "the gradient" is
the gradients of hidden states and head weight, which every implementation must produce.

With ``--op token`` the step is token-level layering's (phases/token_level.py): a GPT-2-style student
(2 blocks, width 256) and teacher (4 blocks) over B x L tokens of a V-token vocabulary, teacher forward
without gradients, KL at T = 2 per token, backward into the student: ``fused`` is what layering runs
(final hidden states, the LM heads applied inside ``fused_linear_distill_loss``), ``logits`` the same
step through both models' full ``[B*L, V]`` logits and ``distill_loss``. "The gradient" is the
student's parameter gradients. The table adds the median time of 5 further steps.

Each implementation runs in a fresh subprocess (a process's peak RSS only grows, so it must not
have run anything else): it allocates the inputs, warms up once (torch.compile compiles here; the
other two touch their lazy state), frees the warm-up's gradient, then

  * resets the kernel's peak-RSS counter (writing 5 to /proc/self/clear_refs, Linux >= 4.0) and
    reads the current RSS from /proc/self/statm as the baseline,
  * runs forward + backward once, keeping the student's gradient alive (a training step needs it),
  * reads the peak (VmHWM from /proc/self/status, which clear_refs reset; ru_maxrss agrees there).

extra = peak - baseline counts everything the step allocated, the gradient included, so an
implementation that allocates only the gradient scores 1.0 in units of the gradient's size.
Where clear_refs is not writable the worker skips the warm-up (compiled then includes compile-time
memory) and uses ru_maxrss, and says so in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

IMPLS = ("fused", "eager", "compiled")
LINEAR_IMPLS = ("fused", "naive", "eager", "compile", "liger")
TOKEN_IMPLS = ("fused", "logits")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _dense_step(impl: str, N: int, V: int, alpha: float, T: float):
    import torch
    import torch.nn.functional as F

    import pylaundering.ops as O

    def eager(s, t, y):
        kd = (
            F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean") * T * T
        )
        return kd if alpha >= 1 else alpha * kd + (1 - alpha) * F.cross_entropy(s, y)

    def fused(s, t, y):
        return O.distill_loss(s, t, y if alpha < 1 else None, kind="kl", alpha=alpha, temperature=T)

    fn = {"fused": fused, "eager": eager, "compiled": torch.compile(eager, dynamic=False)}[impl]
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(N, V, generator=g) * 3).requires_grad_(True)
    t = torch.randn(N, V, generator=g) * 3
    y = torch.randint(0, V, (N,), generator=g)
    return (lambda: fn(s, t, y)), [s]


def _linear_step(impl: str, N: int, H: int, V: int):
    import torch

    from pylaundering.bench.linear import LinearCase, case_inputs, make_step

    h, w, th, tw, y = case_inputs(LinearCase(N, H, V, torch.float32), torch.device("cpu"))
    h, w = h.requires_grad_(True), w.requires_grad_(True)
    try:
        step = make_step(impl, th, tw)
    except ImportError as e:
        raise SystemExit(f"liger-kernel not importable ({e})") from e
    return (lambda: step(h, w, y)), [h, w]


def _token_step(impl: str, B: int, L: int, V: int, T: float):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    import pylaundering.ops as O
    from pylaundering.phases.token_level import token_chunk

    def lm(layers: int, seed: int):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=256, n_head=4, n_layer=layers, n_positions=max(L, 8),
                                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))

    student, teacher = lm(2, 0), lm(4, 1).eval().requires_grad_(False)
    ids = torch.randint(0, V, (B, L), generator=torch.Generator().manual_seed(2))
    targets = ids[:, 1:].reshape(-1)

    def fused():
        h = student.base_model(input_ids=ids).last_hidden_state[:, :-1].reshape(-1, 256)
        with torch.no_grad():
            th = teacher.base_model(input_ids=ids).last_hidden_state[:, :-1].reshape(-1, 256)
        return O.fused_linear_distill_loss(h, student.lm_head.weight, (th, teacher.lm_head.weight, None), targets,
                                           kind="kl", temperature=T, chunk_size=token_chunk(h.shape[0]))

    def logits():
        s = student(input_ids=ids).logits[:, :-1].reshape(-1, V)
        with torch.no_grad():
            t = teacher(input_ids=ids).logits[:, :-1].reshape(-1, V)
        return O.distill_loss(s, t, targets, kind="kl", temperature=T)

    return {"fused": fused, "logits": logits}[impl], list(student.parameters())


def worker(impl: str, dims: list[int], alpha: float, T: float, op: str = "dense") -> dict:
    import gc

    import torch

    torch.set_num_threads(int(os.environ.get("PYLAUNDERING_BENCH_THREADS", "2")))
    import pylaundering.ops as O

    if op == "token":
        step, leaves = _token_step(impl, *dims, T)
    else:
        step, leaves = _dense_step(impl, *dims, alpha, T) if len(dims) == 2 else _linear_step(impl, *dims)

    can_reset = _reset_peak()
    if can_reset:  # warm-up (compiles), then forget its peak
        step().backward()
        for x in leaves:
            x.grad = None
        gc.collect()
        _reset_peak()
    base = _rss_bytes()
    start = time.perf_counter()
    loss = step()
    loss.backward()
    step_s = time.perf_counter() - start
    peak = _hwm_bytes() if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert all(x.grad is not None for x in leaves) and torch.isfinite(loss)
    grad_bytes = sum(x.grad.numel() * x.grad.element_size() for x in leaves)
    times = []
    if op == "token":  # the step's time: median of 5 more steps (the peak above is the first one's)
        for _ in range(5):
            for x in leaves:
                x.grad = None
            t0 = time.perf_counter()
            step().backward()
            times.append(time.perf_counter() - t0)
        step_s = sorted(times)[len(times) // 2]
    return {
        "impl": impl, "shape": dims, "alpha": alpha, "temperature": T, "baseline_bytes": base, "peak_bytes": peak,
        "extra_bytes": peak - base, "grad_bytes": grad_bytes, "step_s": step_s,
        "extra_over_grad": (peak - base) / grad_bytes,
        "method": "VmHWM after clear_refs reset, warm-up excluded" if can_reset else "ru_maxrss, no warm-up",
        "loss": float(loss), "backend": str(O.backend()),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", choices=("dense", "linear", "token"), default="dense",
                    help="dense: the loss on [N, V] logits; linear: hidden states through an LM head; token: "
                    "token-level layering's step (student + teacher GPT-2s, BxLxV)")
    ap.add_argument("--shape", default=None, help="NxV for dense (default 4096x32000), NxHxV for linear "
                    "(default 1024x1024x32000)")
    ap.add_argument("--alpha", type=float, default=1.0, help="distillation weight; < 1 mixes in CE")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--impl", choices=sorted(set(IMPLS) | set(LINEAR_IMPLS) | set(TOKEN_IMPLS)), action="append",
                    help="implementations to measure (default: all of the op's)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--worker", choices=sorted(set(IMPLS) | set(LINEAR_IMPLS) | set(TOKEN_IMPLS)),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = args.shape or {"dense": "4096x32000", "linear": "1024x1024x32000", "token": "8x128x32000"}[args.op]
    dims = [int(x) for x in shape.lower().split("x")]
    if len(dims) != (2 if args.op == "dense" else 3):
        ap.error(f"--shape {shape}: expected {dict(dense='NxV', linear='NxHxV', token='BxLxV')[args.op]}")

    if args.worker:
        print(json.dumps(worker(args.worker, dims, args.alpha, args.temperature, args.op)))
        return 0

    results = []
    for impl in args.impl or {"dense": IMPLS, "linear": LINEAR_IMPLS, "token": TOKEN_IMPLS}[args.op]:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--op", args.op, "--shape", shape,
               "--alpha", str(args.alpha), "--temperature", str(args.temperature)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{impl}: missing ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'})",
                  file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if not results:
        return 1

    mib = 1024 * 1024
    what = {"dense": "loss", "linear": "JSD through the LM head (args --alpha/--temperature unused)",
            "token": "token-level layering step (KL per token)"}[args.op]
    print(f"peak extra memory of one forward+backward, {shape} fp32, {what}, alpha={args.alpha}, T={args.temperature}")
    print(f"(gradient = {results[0]['grad_bytes'] / mib:.0f} MiB; {results[0]['method']})")
    print(f"{'impl':<12}{'baseline MiB':>14}{'peak MiB':>10}{'extra MiB':>11}{'extra/grad':>12}{'vs fused':>10}"
          f"{'step s':>9}")
    fused_extra = next((r["extra_bytes"] for r in results if r["impl"] == "fused"), None)
    for r in results:
        rel = f"{r['extra_bytes'] / fused_extra:.2f}" if fused_extra else "-"
        print(f"{r['impl']:<12}{r['baseline_bytes'] / mib:>14.0f}{r['peak_bytes'] / mib:>10.0f}"
              f"{r['extra_bytes'] / mib:>11.0f}{r['extra_over_grad']:>12.2f}{rel:>10}{r['step_s']:>9.2f}")
    print("step s: " + ("the median of 5 steps after the measured one" if args.op == "token" else
                        "the one measured step (after a warm-up), a single sample: use the pytest benchmarks for "
                        "timing"))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"op": args.op, "shape": dims, "alpha": args.alpha, "temperature": args.temperature,
                       "results": results}, f, indent=2)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
