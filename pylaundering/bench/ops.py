"""Fused distillation loss vs the eager reference vs torch.compile of the reference, per shape.

Each case is a training step's loss part (forward + backward, student gradient materialised) or
inference (forward only). Reported per implementation: median, min and spread (IQR / median) of
``repeats`` timed samples after warm-up (a sample of a call faster than 2 ms averages back-to-back
calls, as timeit's autorange does); effective bandwidth = minimal bytes moved / median time
(forward: read student and teacher, 2 elements' bytes per logit; forward+backward: also write the
gradient, 3); its fraction of the copy bandwidth (``y.copy_(x)`` of one input, 2 elements' bytes)
measured in the same run, before and after the implementations (pooled); and peak extra memory: on
CUDA ``torch.cuda.max_memory_allocated`` above the inputs; on the CPU not measured here (see
benchmarks/peak_memory.py, which counts allocations in a fresh process). A baseline that cannot run is
reported with its reason, never dropped.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import pylaundering.ops as O

T = 2.0


@dataclass(frozen=True)
class Case:
    rows: int
    cols: int
    dtype: torch.dtype
    alpha: float = 1.0  # 1: Hinton KD; < 1 mixes in hard-label CE
    backward: bool = True

    @property
    def name(self) -> str:
        kind = "kd" if self.alpha == 1.0 else f"kd+ce(a={self.alpha})"
        mode = "fwd+bwd" if self.backward else "fwd"
        return f"{self.rows}x{self.cols} {str(self.dtype).replace('torch.', '')} {kind} {mode}"


def eager_loss(s, t, y, alpha):
    """What a user writes in plain PyTorch (computed in fp32 like the fused op)."""
    sf, tf = s.float(), t.float()
    kd = F.kl_div(F.log_softmax(sf / T, -1), F.log_softmax(tf / T, -1), log_target=True, reduction="batchmean") * T * T
    if alpha < 1.0:
        kd = alpha * kd + (1.0 - alpha) * F.cross_entropy(sf, y)
    return kd


def fused_loss(s, t, y, alpha):
    return O.distill_loss(s, t, y if alpha < 1.0 else None, kind="kl", alpha=alpha, temperature=T)


def _liger_loss():
    """Liger-Kernel's KL (takes log-probabilities), on CUDA only; None and the reason otherwise."""
    try:
        from liger_kernel.transformers import LigerKLDIVLoss  # type: ignore
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return None, f"liger-kernel not importable ({type(e).__name__}: {e})"
    kl = LigerKLDIVLoss(reduction="batchmean", log_target=True)

    def f(s, t, y, alpha):
        if alpha < 1.0:
            raise NotImplementedError("no fused KD+CE in Liger's KL loss")
        return kl(F.log_softmax(s.float() / T, -1), F.log_softmax(t.float() / T, -1)) * T * T

    return f, None


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: A timed sample of a fast call averages enough back-to-back calls to span at least this long (as
#: timeit's autorange does): one sub-millisecond call is at the mercy of the clock and the scheduler
#: (the 16384 x 4 step's median moved by 25% between runs of 10 single calls).
MIN_SAMPLE_S = 2e-3
#: After the requested warm-up calls, untimed calls go on until this much time has passed (allocator,
#: caches and clocks settle); a slow call (over this long) gets no extra ones.
MIN_WARMUP_S = 0.05


def _time(fn, device, repeats: int, warmup: int) -> list[float]:
    """``repeats`` samples of one call's time (seconds). With warm-up: fast calls are averaged over a
    batch per sample (see MIN_SAMPLE_S); warmup=0 times single cold calls, as asked."""
    for _ in range(warmup):
        fn()
    _sync(device)
    inner = 1
    if warmup > 0:
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            fn()
            _sync(device)
            one = time.perf_counter() - t0
            if time.perf_counter() - start >= MIN_WARMUP_S:
                break
        inner = max(1, math.ceil(MIN_SAMPLE_S / max(one, 1e-9)))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        out.append((time.perf_counter() - t0) / inner)
    return out


def time_impl(
    step, device: torch.device, repeats: int, warmup: int, *, keep_loss: bool = False
) -> tuple[dict, float | None]:
    """(median/min/spread of ``step()``'s timed calls, plus peak memory above the start on CUDA; the loss of
    one more call when ``keep_loss``). Raises what the step raises: callers report a failing baseline."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    r = _summary(_time(step, device, repeats, warmup))
    loss = float(step().detach()) if keep_loss else None
    if device.type == "cuda":
        r["peak_extra_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return r, loss


def failure(e: Exception) -> str:
    """How a failing baseline is reported (never dropped silently)."""
    return f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _summary(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), statistics.median(times), max(times)]
    med = statistics.median(times)
    return {"median_ms": med * 1e3, "min_ms": min(times) * 1e3, "spread": (q[2] - q[0]) / med if med else 0.0,
            "repeats": len(times)}


def copy_times(x: torch.Tensor, device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Timed ``y.copy_(x)`` calls: the bandwidth an implementation's is a fraction of."""
    dst = torch.empty_like(x)
    return _time(lambda: dst.copy_(x), device, repeats, warmup)


def pooled_copy(before: list[float], after: list[float], nbytes: int) -> dict:
    """The copy's summary over the calls timed before and after the implementations. A shared machine's
    memory bandwidth drifts within a run (a copy measured at 32 and at 45 GB/s minutes apart on the
    reference machine); pooling both ends keeps the fraction from resting on one moment."""
    copy = _summary(before + after)
    copy["median_ms_before"] = statistics.median(before) * 1e3
    copy["median_ms_after"] = statistics.median(after) * 1e3
    copy["GBps"] = nbytes / (copy["median_ms"] / 1e3) / 1e9
    return copy


def bench_case(case: Case, device: torch.device, repeats: int = 10, warmup: int = 3, compile_ok: bool = True) -> dict:
    g = torch.Generator(device="cpu").manual_seed(0)
    s = (torch.randn(case.rows, case.cols, generator=g) * 3).to(device=device, dtype=case.dtype)
    t = (torch.randn(case.rows, case.cols, generator=g) * 3).to(device=device, dtype=case.dtype)
    y = torch.randint(0, case.cols, (case.rows,), generator=g).to(device)
    esize = s.element_size()
    n = case.rows * case.cols
    bytes_min = n * esize * (3 if case.backward else 2)

    copy_before = copy_times(s, device, repeats, warmup)

    impls: dict = {"fused": fused_loss, "eager": eager_loss}
    missing: dict[str, str] = {}
    if compile_ok:
        torch._dynamo.reset()
        impls["compile"] = torch.compile(eager_loss, dynamic=False)
    else:
        missing["compile"] = "disabled (--no-compile)"
    if device.type == "cuda":
        liger, why = _liger_loss()
        if liger is None:
            missing["liger"] = why
        elif case.alpha < 1.0:
            missing["liger"] = "Liger's KL loss has no fused CE term"
        else:
            impls["liger"] = liger
    else:
        missing["liger"] = "Liger-Kernel runs on CUDA (Triton) only"

    results = {}
    # inductor's note that it split the reduction is about its own code, not ours: noise in the table
    warnings.filterwarnings("ignore", message=".*Online softmax is disabled.*")
    for name, fn in impls.items():
        def step(fn=fn):
            if case.backward:
                a = s.detach().requires_grad_(True)
                fn(a, t, y, case.alpha).backward()
                return a.grad
            with torch.no_grad():
                return fn(s, t, y, case.alpha)
        try:
            r, _ = time_impl(step, device, repeats, warmup)
        except Exception as e:  # noqa: BLE001 - a failing baseline is reported, not fatal
            missing[name] = failure(e)
            continue
        r["GBps"] = bytes_min / (r["median_ms"] / 1e3) / 1e9
        results[name] = r
    copy = pooled_copy(copy_before, copy_times(s, device, repeats, warmup), 2 * n * esize)
    for r in results.values():
        r["fraction_of_copy"] = r["GBps"] / copy["GBps"]
    if "fused" in results:
        for _name, r in results.items():
            r["fused_speedup"] = r["median_ms"] / results["fused"]["median_ms"]
    return {"case": case.name, "rows": case.rows, "cols": case.cols, "dtype": str(case.dtype).replace("torch.", ""),
            "alpha": case.alpha, "backward": case.backward, "bytes_min": bytes_min,
            "copy": copy, "results": results, "missing": missing}


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16, "float64": torch.float64, "fp64": torch.float64}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(sorted(DTYPES))}") from None


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """'4096x32000,16384x4' -> [(4096, 32000), (16384, 4)]: rows x vocabulary."""
    shapes = []
    for part in text.split(","):
        dims = part.strip().lower().split("x")
        try:
            rows, cols = (int(d) for d in dims)
        except ValueError:
            raise ValueError(f"bad shape {part.strip()!r}: expected ROWSxV, e.g. 4096x32000") from None
        if rows < 1 or cols < 1:
            raise ValueError(f"bad shape {part.strip()!r}: rows and V must be >= 1")
        shapes.append((rows, cols))
    return shapes


def make_cases(shapes: list[tuple[int, int]], dtypes: list[torch.dtype], *, alphas=(1.0,),
               modes=("fwd+bwd",)) -> list[Case]:
    return [Case(r, c, dt, alpha=a, backward=(m == "fwd+bwd")) for (r, c) in shapes for dt in dtypes
            for a in alphas for m in modes]


def profile_case(case: Case, device: torch.device, out_dir, steps: int = 3) -> str:
    """A torch.profiler Chrome trace of the fused op (and eager, for contrast) on one case; on
    CUDA each step is also an NVTX range, for Nsight Systems."""
    from pathlib import Path

    from torch.profiler import ProfilerActivity, profile, record_function

    g = torch.Generator(device="cpu").manual_seed(0)
    s = (torch.randn(case.rows, case.cols, generator=g) * 3).to(device=device, dtype=case.dtype)
    t = (torch.randn(case.rows, case.cols, generator=g) * 3).to(device=device, dtype=case.dtype)
    y = torch.randint(0, case.cols, (case.rows,), generator=g).to(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts, record_shapes=True) as prof:
        for name, fn in (("fused", fused_loss), ("eager", eager_loss)):
            for i in range(steps):
                label = f"{name} {case.name} step {i}"
                nvtx = torch.cuda.nvtx.range(label) if device.type == "cuda" else contextlib.nullcontext()
                with nvtx, record_function(label):
                    a = s.detach().requires_grad_(case.backward)
                    out = fn(a, t, y, case.alpha)
                    if case.backward:
                        out.backward()
                    _sync(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    safe = case.name.replace(" ", "_").replace("(", "").replace(")", "").replace("=", "").replace("+", "-")
    path = out / f"trace_{safe}.json"
    prof.export_chrome_trace(str(path))
    return str(path)


def default_cases(device: torch.device, dtype: torch.dtype | None = None) -> list[Case]:
    if device.type == "cuda":
        dt = dtype or torch.bfloat16
        return [Case(4096, 128256, dt), Case(4096, 128256, dt, backward=False), Case(4096, 32000, dt),
                Case(4096, 32000, torch.float32), Case(16384, 4, torch.float32, alpha=0.5)]
    dt = dtype or torch.float32
    return [Case(4096, 32000, dt), Case(16384, 4, dt, alpha=0.5)]


def format_table(report: dict) -> str:
    lines = [f"device: {report['device']}  torch {report['torch']}  backend: {report['backend']}"]
    hdr = (f"{'case':<40}{'impl':<9}{'median ms':>10}{'min ms':>9}{'spread':>8}{'x fused':>8}{'GB/s':>8}"
           f"{'% copy':>8}{'peak MB':>9}")
    lines += [hdr, "-" * len(hdr)]
    for c in report["cases"]:
        for name, r in c["results"].items():
            peak = f"{r['peak_extra_mb']:.0f}" if "peak_extra_mb" in r else "-"
            lines.append(f"{c['case']:<40}{name:<9}{r['median_ms']:>10.3f}{r['min_ms']:>9.3f}{r['spread']:>8.2f}"
                         f"{r.get('fused_speedup', float('nan')):>8.2f}{r['GBps']:>8.0f}"
                         f"{100 * r['fraction_of_copy']:>7.0f}%{peak:>9}")
        cp = c["copy"]
        lines.append(f"{'':<40}{'copy':<9}{cp['median_ms']:>10.3f}{cp['min_ms']:>9.3f}{cp['spread']:>8.2f}{'':>8}"
                     f"{cp['GBps']:>8.0f}   (median {cp['median_ms_before']:.3f} ms before, "
                     f"{cp['median_ms_after']:.3f} after)")
        for name, why in c["missing"].items():
            lines.append(f"{'':<40}{name:<9} missing: {why}")
    lines.append("x fused = impl time / fused time; GB/s = minimal bytes (read s, t; write grad) / median time.")
    return "\n".join(lines)


def run_cases(device: str, cases, bench, repeats: int, warmup: int, compile_ok: bool, **header) -> dict:
    """A report: the machine, torch and backend, and ``bench(case, ...)`` of every case (any bench command)."""
    dev = torch.device(device)
    report = {**header, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "torch": torch.__version__, "backend": str(O.backend(dev)), "threads": torch.get_num_threads(),
              "cases": []}
    for c in cases:
        report["cases"].append(bench(c, dev, repeats, warmup, compile_ok))
    return report


def run(device: str = "cpu", cases: list[Case] | None = None, repeats: int = 10, warmup: int = 3,
        compile_ok: bool = True) -> dict:
    return run_cases(device, cases or default_cases(torch.device(device)), bench_case, repeats, warmup, compile_ok)
