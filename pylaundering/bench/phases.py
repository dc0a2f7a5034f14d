"""Examples per second of the three phases, on the synthetic default, to size runs and catch regressions.

Each measurement times optimiser steps (or scoring batches) built from the phases' own parts (the
batcher, ``choice_logits``, ``distill_loss``, fused AdamW), after warm-up steps:

* ``placement``: the teacher (the full base model) fine-tuned with cross-entropy;
* ``layering``: a 2-layer sheared student distilled (KL, T = 2, alpha = 0.5) with the teacher's logits
  ``cached`` (computed once, the pipeline's default; that one-off pass is timed as ``teacher-logits``),
  ``online`` (a teacher forward every step, dynamic padding), and ``pad-L``, the paper's recipe: every
  sequence padded to L = 512 tokens (the model's limit when smaller: ``pad-128`` on tiny; the name says
  what ran) and a teacher pass every step;
* ``integration``: scoring the benchmark (forward only).

Dynamic padding pads a batch to its own longest sequence, so the synthetic questions cost ~20 tokens
a row; real benchmarks are longer, so their gap to pad-L is smaller. ``x cached`` is a time per
example over the cached layering step's.

On a GPU the steps run as the pipeline's do (pylaundering/device.py): batches moved there once,
forward passes under autocast at the given precision (bf16 by default where the GPU has it), fp16
through a gradient scaler; the one-off teacher pass at fp32, as the layering cache computes it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

import pylaundering.ops as O
from pylaundering.data.batching import MCBatcher
from pylaundering.data.synth import make_synthetic
from pylaundering.device import Runtime, resolve_precision
from pylaundering.models import load_model, load_student
from pylaundering.phases.common import encode, model_max_length, resolve_base
from pylaundering.train.evaluate import choice_logits, predict_logits

from .ops import _summary

PAD_RECIPE = 512


@dataclass(frozen=True)
class PhaseSetup:
    model: str = "tiny"
    n_train: int = 256
    n_benchmark: int = 128
    batch_size: int = 16
    student_layers: int = 2


def _pad_to(batch, length: int, pad_id: int):
    """The batch padded to ``length`` tokens per sequence (the paper's fixed-length recipe)."""
    extra = length - batch.input_ids.shape[-1]
    if extra <= 0:
        return batch
    return replace(batch, input_ids=F.pad(batch.input_ids, (0, extra), value=pad_id),
                   attention_mask=F.pad(batch.attention_mask, (0, extra), value=0),
                   token_type_ids=None if batch.token_type_ids is None else F.pad(batch.token_type_ids, (0, extra),
                                                                                  value=0))


def _time_steps(step, batches, warmup: int, repeats: int, device: torch.device) -> list[float]:
    """Seconds per call of ``step(batch)`` over ``repeats`` batches after ``warmup`` untimed ones."""
    out = []
    for i in range(warmup + repeats):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return out


def _result(times: list[float], examples_per_call: int) -> dict:
    r = _summary(times)
    r["examples_per_s"] = examples_per_call / (r["median_ms"] / 1e3)
    r["ms_per_example"] = r["median_ms"] / examples_per_call
    return r


def run(setup: PhaseSetup = PhaseSetup(), device: str = "cpu", repeats: int = 8, warmup: int = 2,
        profile_dir: Path | None = None, precision: str = "auto") -> dict:
    dev = torch.device(device)
    name = "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}"
    rt = Runtime(name, resolve_precision(precision, name))
    benchmark, train_set = make_synthetic(seed=0, n_benchmark=setup.n_benchmark, n_train=setup.n_train)
    results: dict[str, dict] = {}
    profiles: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pyl-bench-phases-") as tmp:
        base = resolve_base(setup.model, [*benchmark, *train_set], Path(tmp), 0)
        data = encode(base, train_set, None)
        pad_id = data.pad_token_id
        pad_len = min(PAD_RECIPE, model_max_length(base, data.tokenizer) or PAD_RECIPE)
        batcher = MCBatcher(data.encoded, setup.batch_size, shuffle=True, seed=0, pad_token_id=pad_id)
        batches = [rt.to_device(b) for b in batcher.batches(0)]
        n_batches = warmup + repeats
        batches = (batches * (n_batches // max(1, len(batches)) + 1))[:n_batches]
        teacher = load_model(base).to(dev)

        def trainer(model, loss_of):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
            scaler = rt.grad_scaler()  # fp16 only, as the training loop

            def step(batch):
                model.train()  # (the teacher is trained by placement and run in eval mode by layering)
                with rt.autocast():
                    loss = loss_of(model, batch)
                if scaler is None:
                    loss.backward()
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                opt.zero_grad(set_to_none=True)
            return step

        ce = lambda m, b: O.cross_entropy(choice_logits(m, b), b.labels)  # noqa: E731
        measurements = {("placement", "dynamic"): trainer(teacher, ce)}

        t0 = time.perf_counter()  # at fp32 on the device, in batches sized from its free memory, as layering's cache
        cached = predict_logits(teacher, data.encoded, pad_token_id=pad_id, quiet=True,
                                device=Runtime(rt.device)).to(dev)
        logits_s = time.perf_counter() - t0
        teacher.eval()

        def kd(teacher_logits_of):
            def loss_of(m, b):
                s = choice_logits(m, b)
                return O.distill_loss(s, teacher_logits_of(b)[:, : s.shape[1]], b.labels, alpha=0.5, temperature=2.0)
            return loss_of

        def online(b):
            teacher.eval()
            with torch.no_grad():
                return choice_logits(teacher, b)

        for name, teacher_of, pad in (("cached", lambda b: cached[b.index], False), ("online", online, False),
                                      (f"pad-{pad_len}", online, True)):
            student = load_student(base, init="sheared", num_layers=setup.student_layers, seed=0).to(dev)
            step = trainer(student, kd(teacher_of))
            measurements[("layering", name)] = (lambda b, step=step: step(_pad_to(b, pad_len, pad_id))) if pad else step

        score_batches = [rt.to_device(b) for b in MCBatcher(encode(base, benchmark, None).encoded, 64,
                                                            shuffle=False, pad_token_id=pad_id).batches(0)]

        @torch.no_grad()
        def score(batch):
            teacher.eval()
            with rt.autocast():
                choice_logits(teacher, batch)

        for (phase, impl), step in measurements.items():
            with _nvtx(f"{phase} {impl}", dev):
                times = _time_steps(step, batches, warmup, repeats, dev)
            results.setdefault(phase, {})[impl] = _result(times, setup.batch_size)
            if profile_dir is not None:
                profiles.append(_profile(step, batches[0], Path(profile_dir) / f"{phase}-{impl}.json"))
        n_score = max(1, len(score_batches))
        with _nvtx("integration", dev):
            times = _time_steps(score, score_batches, min(warmup, n_score), max(repeats, n_score), dev)
        results["integration"] = {"dynamic": _result(times, sum(len(b.labels) for b in score_batches) / n_score)}
        results["layering"]["teacher-logits"] = {"median_ms": logits_s * 1e3, "min_ms": logits_s * 1e3,
                                                 "spread": 0.0, "repeats": 1,
                                                 "examples_per_s": len(train_set) / logits_s,
                                                 "ms_per_example": logits_s * 1e3 / len(train_set)}
    lay = results["layering"]
    for r in lay.values():
        r["vs_cached"] = r["ms_per_example"] / lay["cached"]["ms_per_example"]
    cases = [{"case": f"{phase} ({setup.model}, batch {setup.batch_size})", "phase": phase, "results": res,
              "missing": {}, "losses_disagree": {}} for phase, res in results.items()]
    return {"kind": "phases", "compare_impls": None, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else "cpu", "precision": rt.precision, "torch": torch.__version__, "backend": str(O.backend(dev)),
            "threads": torch.get_num_threads(),
            "model": setup.model, "n_train": setup.n_train,
            "n_benchmark": setup.n_benchmark, "batch_size": setup.batch_size, "pad_length": pad_len,
            "max_length": data.max_length, "cases": cases, "profiles": profiles}


class _nvtx:
    """An NVTX range around a measurement when CUDA is in use (visible in Nsight Systems)."""

    def __init__(self, name: str, dev: torch.device):
        self.name, self.on = name, dev.type == "cuda"

    def __enter__(self):
        if self.on:
            torch.cuda.nvtx.range_push(self.name)

    def __exit__(self, *exc):
        if self.on:
            torch.cuda.nvtx.range_pop()


def _profile(step, batch, path: Path) -> str:
    from torch.profiler import ProfilerActivity, profile

    path.parent.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        step(batch)
    prof.export_chrome_trace(str(path))
    return str(path)


def format_table(report: dict) -> str:
    lines = [f"device: {report['device']} ({report.get('precision', 'fp32')})  torch {report['torch']}  backend: "
             f"{report['backend']}  threads: "
             f"{report['threads']}  model: {report['model']}  train {report['n_train']} / benchmark "
             f"{report['n_benchmark']} synthetic items, dynamic max_length {report['max_length']}"]
    hdr = f"{'phase':<14}{'how':<16}{'median ms':>11}{'min ms':>10}{'spread':>8}{'examples/s':>12}{'x cached':>10}"
    lines += [hdr, "-" * len(hdr)]
    for c in report["cases"]:
        for impl, r in c["results"].items():
            vs = f"{r['vs_cached']:.2f}" if "vs_cached" in r else "-"
            lines.append(f"{c['phase']:<14}{impl:<16}{r['median_ms']:>11.1f}{r['min_ms']:>10.1f}{r['spread']:>8.2f}"
                         f"{r['examples_per_s']:>12.1f}{vs:>10}")
    lines.append(f"median ms: one optimiser step of {report['batch_size']} examples (integration: one scoring batch; "
                 f"teacher-logits: the one-off pass over the training set); pad-{report['pad_length']} pads every "
                 f"sequence to {report['pad_length']} tokens (the paper's 512, or the model's limit) and runs the "
                 "teacher every step; x cached: time per example over the cached layering step's")
    return "\n".join(lines)
