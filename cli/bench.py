"""`launder bench`: the fused losses against eager PyTorch and torch.compile, on this machine.

`register` adds the command group to the app; the shared options and helpers come from cli/common.py,
so this module never imports cli/app.py (which also runs as `python -m pylaundering.cli.app`).

torch and the modules that import it (bench, train) are imported inside the commands: `launder --help`
must not load them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from pylaundering.cli.common import (
    BatchSize,
    Device,
    Precision,
    check_output_file,
    emit,
    err_console,
    handle_errors,
    json_option,
    out_console,
)
from pylaundering.errors import ConfigError

ReportJson = json_option("the report")
Threads = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's).")


def register(app: typer.Typer) -> typer.Typer:
    bench_app = typer.Typer(help="Measure the fused loss ops against eager PyTorch, torch.compile and Liger-Kernel "
                            "(where it runs): time, bandwidth against this machine's copy bandwidth, peak memory.",
                            no_args_is_help=True)
    app.add_typer(bench_app, name="bench")

    @bench_app.command("ops")
    @handle_errors
    def ops(
        device: str = Device,
        dtype: Optional[str] = typer.Option(None, "--dtype", help="Comma-separated: float32, bfloat16, float16, "
                                            "float64. Default: float32 on CPU, bfloat16 (and one float32 case) "
                                            "on CUDA."),
        shapes: Optional[str] = typer.Option(None, "--shapes", help="Comma-separated ROWSxV, e.g. 4096x32000,16384x4. "
                                             "Default: an LLM-vocabulary shape and the multiple-choice shape 16384x4."),
        alpha: Optional[float] = typer.Option(None, "--alpha", min=0.0, max=1.0, help="1 (the default): Hinton KD "
                                              "alone; < 1 mixes in hard-label CE (alpha * KD + (1 - alpha) * CE). "
                                              "Only with --shapes (the default cases fix their own)."),
        forward_only: bool = typer.Option(False, "--forward-only", help="Time inference (no gradient) instead of "
                                          "forward + backward."),
        repeats: int = typer.Option(10, "--repeats", min=2, help="Timed samples per implementation, after "
                                     "warm-up (a sample of a call under 2 ms averages back-to-back calls)."),
        warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed calls first (torch.compile compiles here)."),
        no_compile: bool = typer.Option(False, "--no-compile", help="Skip the torch.compile baseline (it compiles for "
                                        "tens of seconds per shape on a small CPU)."),
        json_out: Optional[Path] = typer.Option(None, "--json-out", help="Write the full report (every number, the "
                                                "machine, torch, backend) as JSON here."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: median time per case and baseline."),
        compare: Optional[Path] = typer.Option(None, "--compare", help="An earlier --json-out report: flag the "
                                               "fused op's cases whose median grew beyond the two runs' measured "
                                               "noise (exit 1)."),
        profile: Optional[Path] = typer.Option(None, "--profile", help="Write a torch.profiler Chrome trace per case "
                                               "into this folder (NVTX ranges on CUDA)."),
        threads: Optional[int] = Threads,
        as_json: bool = ReportJson,
    ):
        """Time the fused distillation loss against eager PyTorch and torch.compile of the same formula.

        Per case: median, min and spread (interquartile range / median) of the timed calls; each baseline's time over the fused op's; effective bandwidth (minimal bytes: read student and teacher, write the gradient) and its fraction of a copy of one input measured in the same run; peak memory above the inputs on CUDA (torch.cuda.max_memory_allocated; on the CPU see benchmarks/peak_memory.py). A baseline that cannot run is listed as missing, with the reason.
        """  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        import torch

        from pylaundering.bench.ops import default_cases, format_table, make_cases, parse_dtype, parse_shapes, run

        dev = _device(device)
        if alpha is not None and shapes is None:
            raise ConfigError("--alpha", "only with --shapes (the default cases fix their own alpha)")
        _check_outputs(json_out, plot)
        old = _read_old(compare)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            dtypes = [parse_dtype(d) for d in dtype.split(",")] if dtype else None
            shape_list = parse_shapes(shapes) if shapes else None
        except ValueError as e:
            raise ConfigError("--dtype/--shapes", str(e)) from None
        mode = ("fwd",) if forward_only else ("fwd+bwd",)
        if shape_list is None:
            cases = default_cases(dev, dtypes[0] if dtypes else None)
            if forward_only:
                cases = list(dict.fromkeys(dataclasses.replace(c, backward=False) for c in cases))
        else:
            default_dt = [torch.bfloat16] if dev.type == "cuda" else [torch.float32]
            cases = make_cases(shape_list, dtypes or default_dt, alphas=(1.0 if alpha is None else alpha,),
                               modes=mode)
        skipped = "; torch.compile baseline skipped (--no-compile)" if no_compile else ""
        err_console.print(f"[cyan]timing {len(cases)} case(s) on {dev}, {repeats} samples per "
                          f"implementation{skipped}...")
        report = run(str(dev), cases=cases, repeats=repeats, warmup=warmup, compile_ok=not no_compile)
        if profile is not None:
            from pylaundering.bench.ops import profile_case

            report["profiles"] = [profile_case(c, dev, profile) for c in cases]
        _finish(report, format_table, old=old, compare_path=compare, json_out=json_out, plot=plot, as_json=as_json)

    def _check_outputs(json_out: Optional[Path], plot: Optional[Path]) -> None:
        """Before any timing: a path that cannot be written would lose the whole run's results."""
        check_output_file("--json-out", json_out)
        check_output_file("--plot", plot)

    def _read_old(compare: Optional[Path]):
        if compare is None:
            return None
        try:  # read it first: a bad file should fail before minutes of timing
            return json.loads(compare.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{compare}: cannot read a benchmark report ({e})") from None

    def _finish(report, format_table, *, old, compare_path, json_out, plot, as_json):
        """The report's outputs, shared by every bench command: JSON, plot, comparison, table, exit 1 on a
        regression beyond the measured noise."""
        from pylaundering.bench.compare import compare as compare_reports
        from pylaundering.bench.compare import format_comparison
        from pylaundering.bench.plot import plot_report

        comparison = None
        if old is not None:
            # the phases report names no "fused" implementation: every measurement is compared
            comparison = compare_reports(report, old, impls=report.get("compare_impls", ("fused",)))
            report["comparison"] = comparison
        if json_out is not None:
            from pylaundering.train.checkpoint import write_json

            write_json(report, json_out)
        if plot is not None:
            plot_report(report, plot)
        if as_json:
            emit(report, True)
        else:
            out_console.print(format_table(report), highlight=False, soft_wrap=True)
            if comparison is not None:
                out_console.print(format_comparison(comparison), highlight=False, soft_wrap=True)
            for p in report.get("profiles", []):
                out_console.print(f"trace: {p}  (open in chrome://tracing or ui.perfetto.dev)")
        if comparison is not None and comparison["regressions"]:
            err_console.print(f"[red]regression:[/red] {len(comparison['regressions'])} case(s) slower than "
                              f"{compare_path} beyond the measured noise")
            raise typer.Exit(1)

    @bench_app.command("linear")
    @handle_errors
    def linear(
        device: str = Device,
        dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, bfloat16, float16 or float64. Default: "
                                            "float32 on CPU, bfloat16 on CUDA."),
        shapes: Optional[str] = typer.Option(None, "--shapes", help="Comma-separated NxHxV (tokens x hidden size x "
                                             "vocabulary), e.g. 4096x2048x128256. Default: 1024x1024x32000 on CPU, "
                                             "8192x4096x128256 on CUDA."),
        repeats: int = typer.Option(5, "--repeats", min=2, help="Timed samples per implementation, after "
                                     "warm-up (a sample of a call under 2 ms averages back-to-back calls)."),
        warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed calls first (torch.compile compiles here)."),
        no_compile: bool = typer.Option(False, "--no-compile", help="Skip the torch.compile baselines (of the "
                                        "linear and the top-k cases); the others still run."),
        k: int = typer.Option(128, "--k", min=0, help="Kept entries per row of the top-k case timed beside each "
                              "shape (on its [N, V] logits); 0: no top-k case."),
        json_out: Optional[Path] = typer.Option(None, "--json-out", help="Write the full report as JSON here."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: median time per case and "
                                            "implementation."),
        compare: Optional[Path] = typer.Option(None, "--compare", help="An earlier --json-out report of this command: "
                                               "flag the fused op's cases slower beyond the measured noise (exit 1)."),
        threads: Optional[int] = Threads,
        as_json: bool = ReportJson,
    ):
        """Time the fused linear distillation loss (LM head + loss, never the [N, V] logits) against the naive computation.

        One training step's loss part through an LM head (generalized JSD, beta 0.5, T 1; teacher as hidden states + head; gradients of the student's hidden states and head). Implementations: fused (pylaundering.ops.fused_linear_distill_loss), naive (full logits, then the dense fused op), eager (full logits, plain PyTorch loss), compile (torch.compile of eager), liger (Liger-Kernel's chunked JSD, on CPU too, when `pip install --no-deps liger-kernel` was run). Per case: median, min, spread, time over the fused op's, GFLOP/s of the 4 matmuls, peak memory on CUDA (CPU: python benchmarks/peak_memory.py --op linear). Every implementation's loss is checked against the others.

        Beside each shape, a top-k case on its [N, V] logits (forward KL against k kept teacher entries per row; --k): fused (pylaundering.ops.topk_distill_loss), sampled (the same kernel on a sampled_teacher), eager and compile (the plain-PyTorch formulas), dense (the dense fused op on the full teacher logits) and ce (cross-entropy alone, the floor), with effective bandwidth.
        """  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        import torch

        from pylaundering.bench.linear import cases_for, default_cases, format_table, parse_linear_shapes, run
        from pylaundering.bench.ops import parse_dtype

        dev = _device(device)
        _check_outputs(json_out, plot)
        old = _read_old(compare)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            dt = parse_dtype(dtype) if dtype else None
            shape_list = parse_linear_shapes(shapes) if shapes else None
        except ValueError as e:
            raise ConfigError("--dtype/--shapes", str(e)) from None
        if shape_list is None:
            cases = default_cases(dev, dt, k)
        else:
            cases = cases_for(shape_list, dt or (torch.bfloat16 if dev.type == "cuda" else torch.float32), k)
        skipped = "; torch.compile baseline skipped (--no-compile)" if no_compile else ""
        err_console.print(f"[cyan]timing {len(cases)} case(s) on {dev}, {repeats} samples per "
                          f"implementation{skipped}...")
        report = run(str(dev), cases=cases, repeats=repeats, warmup=warmup, compile_ok=not no_compile)
        _finish(report, format_table, old=old, compare_path=compare, json_out=json_out, plot=plot, as_json=as_json)

    @bench_app.command("phases")
    @handle_errors
    def phases(
        model: str = typer.Option("tiny", "--model", help="Base model: tiny (built from the data, no download), "
                                  "minilm (the offline default of launder run), or a model folder / hub name."),
        device: str = Device,
        precision: str = Precision,
        n_train: int = typer.Option(256, "--n-train", min=16, help="Synthetic training items (the batches cycle)."),
        n_benchmark: int = typer.Option(128, "--n-benchmark", min=8, help="Synthetic benchmark items (integration)."),
        batch_size: int = BatchSize,
        repeats: int = typer.Option(8, "--repeats", min=2, help="Timed steps per measurement (after warm-up)."),
        warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed steps first."),
        json_out: Optional[Path] = typer.Option(None, "--json-out", help="Write the full report as JSON here."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: median time per step and measurement."),
        compare: Optional[Path] = typer.Option(None, "--compare", help="An earlier --json-out report of this command: "
                                               "flag measurements slower beyond the measured noise (exit 1)."),
        profile: Optional[Path] = typer.Option(None, "--profile", help="Write a torch.profiler Chrome trace of one "
                                               "step of each measurement into this folder."),
        threads: Optional[int] = Threads,
        as_json: bool = ReportJson,
    ):
        """Examples per second of placement, layering and integration, to size runs and catch regressions.

        On the synthetic default (in a temporary folder; nothing is kept): placement (the teacher fine-tuned with cross-entropy), layering of a 2-layer sheared student with the teacher's logits cached (computed once, also timed), online (a teacher pass every step) and pad-L (the paper's recipe: every sequence padded to 512 tokens, or the model's limit L when smaller, e.g. pad-128 on tiny; a teacher pass every step), and integration (scoring). Each is timed over optimiser steps built from the phases' own parts after warm-up steps; the table gives median, min and spread per step, examples per second, and each layering variant's time per example over the cached one's. With CUDA, each measurement is an NVTX range.
        """  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        import torch

        from pylaundering.bench.phases import PhaseSetup, format_table, run
        from pylaundering.device import resolve_precision

        dev = _device(device)
        prec = resolve_precision(precision, str(dev))
        _check_outputs(json_out, plot)
        old = _read_old(compare)
        if threads is not None:
            torch.set_num_threads(threads)
        setup = PhaseSetup(model=model, n_train=n_train, n_benchmark=n_benchmark, batch_size=batch_size)
        err_console.print(f"[cyan]timing the phases on {dev} at {prec} ({model}, batch {batch_size}, {repeats} steps "
                          "each)...")
        report = run(setup, device=str(dev), repeats=repeats, warmup=warmup, profile_dir=profile, precision=prec)
        _finish(report, format_table, old=old, compare_path=compare, json_out=json_out, plot=plot, as_json=as_json)

    def _device(device: str):
        """--device resolved (pylaundering.device.resolve_device: auto, cpu, cuda, cuda:N) as a torch.device."""
        import torch

        from pylaundering.device import resolve_device

        return torch.device(resolve_device(device))

    return bench_app
