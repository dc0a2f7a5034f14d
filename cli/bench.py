"""`launder bench`: the fused losses against eager PyTorch and torch.compile, on this machine.

`register` adds the command group to the app; it takes the app's shared helpers as arguments, so
this module never imports cli/app.py (which also runs as `python -m pylaundering.cli.app`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer, *, handle_errors, emit, out_console, err_console) -> typer.Typer:
    bench_app = typer.Typer(help="Measure the fused loss ops against eager PyTorch, torch.compile and Liger-Kernel "
                            "(where it runs): time, bandwidth against this machine's copy bandwidth, peak memory.",
                            no_args_is_help=True)
    app.add_typer(bench_app, name="bench")

    @bench_app.command("ops")
    @handle_errors
    def ops(
        device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda:N)."),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="Comma-separated: float32, bfloat16, float16, float64. "
                                            "Default: float32 on CPU, bfloat16 (and one float32 case) on CUDA."),
        shapes: Optional[str] = typer.Option(None, "--shapes", help="Comma-separated ROWSxV, e.g. 4096x32000,16384x4. "
                                             "Default: an LLM-vocabulary shape and the multiple-choice shape 16384x4."),
        alpha: float = typer.Option(1.0, "--alpha", min=0.0, max=1.0, help="1: Hinton KD alone; < 1 mixes in hard-label "
                                    "CE (alpha * KD + (1 - alpha) * CE). Only with --shapes."),
        forward_only: bool = typer.Option(False, "--forward-only", help="Time inference (no gradient) instead of "
                                          "forward + backward."),
        repeats: int = typer.Option(10, "--repeats", min=2, help="Timed calls per implementation (after warm-up)."),
        warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed calls first (torch.compile compiles here)."),
        no_compile: bool = typer.Option(False, "--no-compile", help="Skip the torch.compile baseline (it compiles for "
                                        "tens of seconds per shape on a small CPU)."),
        json_out: Optional[Path] = typer.Option(None, "--json-out", help="Write the full report (every number, the "
                                                "machine, torch, backend) as JSON here."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: median time per case and baseline."),
        compare: Optional[Path] = typer.Option(None, "--compare", help="An earlier --json-out report: flag the fused op's "
                                               "cases whose median grew beyond the two runs' measured noise (exit 1)."),
        profile: Optional[Path] = typer.Option(None, "--profile", help="Write a torch.profiler Chrome trace per case into "
                                               "this folder (NVTX ranges on CUDA)."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of the table."),
    ):
        """Time the fused distillation loss against eager PyTorch and torch.compile of the same formula.

        Per case: median, min and spread (interquartile range / median) of the timed calls; each baseline's time over the fused op's; effective bandwidth (minimal bytes: read student and teacher, write the gradient) and its fraction of a copy of one input measured in the same run; peak memory above the inputs on CUDA (torch.cuda.max_memory_allocated; on the CPU see benchmarks/peak_memory.py). A baseline that cannot run is listed as missing, with the reason.
        """
        import torch

        from pylaundering.bench.compare import compare as compare_reports
        from pylaundering.bench.compare import format_comparison
        from pylaundering.bench.ops import default_cases, format_table, make_cases, parse_dtype, parse_shapes, run
        from pylaundering.bench.plot import plot_report
        from pylaundering.phases.common import ConfigError

        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device", "cuda was asked for but torch sees no CUDA device here")
        if dev.type not in ("cpu", "cuda"):
            raise ConfigError("device", f"expected cpu or cuda, got {device!r}")
        old = None
        if compare is not None:  # read it first: a bad file should fail before minutes of timing
            try:
                old = json.loads(compare.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"{compare}: cannot read a benchmark report ({e})") from None
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
            cases = make_cases(shape_list, dtypes or default_dt, alphas=(alpha,), modes=mode)
        err_console.print(f"[cyan]timing {len(cases)} case(s) on {device}, {repeats} calls each "
                          f"(eager and torch.compile of the reference{'' if not no_compile else ' skipped'})...")
        report = run(device, cases=cases, repeats=repeats, warmup=warmup, compile_ok=not no_compile)
        if profile is not None:
            from pylaundering.bench.ops import profile_case

            report["profiles"] = [profile_case(c, dev, profile) for c in cases]
        comparison = None
        if old is not None:
            comparison = compare_reports(report, old)
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
                              f"{compare} beyond the measured noise")
            raise typer.Exit(1)

    return bench_app
