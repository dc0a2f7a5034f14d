"""`launder sweep`: runs over a grid of RunConfig fields and seeds, sharing teachers between points.

`register` adds the command to the app; the shared options and helpers come from cli/common.py, so
this module never imports cli/app.py (which also runs as `python -m pylaundering.cli.app`).
The command imports pylaundering's modules inside its body: `launder --help` must not load torch,
datasets or matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pylaundering.cli.common import (
    Deterministic,
    Overwrite,
    Quiet,
    device_option,
    emit,
    err_console,
    handle_errors,
    json_option,
    out_console,
    precision_option,
)
from pylaundering.errors import ConfigError


def register(app: typer.Typer):
    @app.command("sweep")
    @handle_errors
    def sweep(
        param: list[str] = typer.Option([], "--param", "-p", metavar="FIELD=V1,V2,...", help="A run setting and "
                                        "its values, e.g. alpha=0,0.5,1 or loss=kl,mse or iterations=1..4 (an "
                                        "inclusive integer range); repeat for a grid. Any `launder run` setting "
                                        "(as in a --config file: alpha, loss, data_size, iterations, student_init, "
                                        "temperature, ...)."),
        seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Run every point with N seeds (the base "
                                            "seed, +1, ...). Default 1."),
        seed_list: Optional[str] = typer.Option(None, "--seed-list", help="Explicit seeds, e.g. 0,3,7 (instead of "
                                                "--seeds)."),
        zip_: bool = typer.Option(False, "--zip", help="Pair the --param lists element by element instead of "
                                  "taking their grid product (lists of one length)."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file: a \\[run] table (the base "
                                              "settings, as for `launder run --config`) and a \\[sweep] table "
                                              "(params = {alpha = [0, 1]}, seeds = 3, zip = false). Flags win."),
        set_: list[str] = typer.Option([], "--set", metavar="FIELD=VALUE", help="A base setting for every point, "
                                       "e.g. --set student_epochs=2 (repeatable)."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Teacher (and student) base: minilm "
                                            "(default), tiny, a folder or a hub name."),
        benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Benchmark SOURCE (default: the "
                                                "offline synthetic benchmark)."),
        train: Optional[str] = typer.Option(None, "--train", help="Legitimate training SOURCE (default: "
                                            "synthetic)."),
        out: Path = typer.Option(Path("sweeps/latest"), "--out", "-o", help="Sweep folder: sweep.json, points/ (a "
                                 "run folder per point), shared/ (teachers shared by points). Running the same "
                                 "sweep again resumes it."),
        jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Points run at once by the local executor (process "
                                 "pool); each gets cores / jobs threads unless --threads is given."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch threads per point (default: "
                                              "cores / jobs)."),
        executor: str = typer.Option("local", "--executor", help="local (this machine) or ray (a Ray cluster: "
                                     "pip install 'pylaundering[ray]'; the sweep folder must be on storage every "
                                     "node sees)."),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start a local "
                                              "Ray runtime, or RAY_ADDRESS)."),
        gpus_per_point: float = typer.Option(0.0, "--gpus-per-point", min=0.0, help="GPUs each Ray task requests "
                                             "(--executor ray): its point trains on the GPU Ray gives it; a fraction "
                                             "(e.g. 0.25) lets small students share one GPU."),
        device: Optional[str] = device_option(None), precision: Optional[str] = precision_option(None),
        deterministic: bool = Deterministic,
        overwrite: bool = Overwrite,
        quiet: bool = Quiet,
        as_json: bool = json_option("the sweep's index (sweep.json)"),
    ):
        """[bold]Many runs[/bold]: every combination of --param values x seeds, each a run folder with its
        metrics.json, in one sweep folder. Each seed's teachers, CE-only student and teacher logits are
        computed once and shared by the points that need the same ones; finished points are skipped when the
        sweep is run again (resume); a failing point is recorded and the sweep goes on (exit 1 at the end).
        Then: `launder report SWEEP_DIR`."""
        # start-up time: the experiments package imports torch
        from pylaundering.experiments.config import COMMAND_LINE, load_config
        from pylaundering.experiments.sweep import check_field, parse_param, parse_value, read_sweep_toml, run_sweep
        from pylaundering.experiments.sweep import seed_list as seeds_from

        spec_params: dict = {}
        spec_seeds = None
        spec_zip = False
        base_values: dict = {}
        if config is not None:
            base_values, spec = read_sweep_toml(config)
            spec_params, spec_seeds, spec_zip = spec["params"], spec["seeds"], spec["zip"]
        for text in param:
            key, values = parse_param(text)
            spec_params[key] = values
        for text in set_:
            key, sep, value = text.partition("=")
            key = key.strip().replace("-", "_")
            if not sep:
                raise ConfigError("set", f"expected FIELD=VALUE, got {text!r}", COMMAND_LINE)
            check_field(key, COMMAND_LINE)
            base_values[key] = parse_value(key, value)
        base_values.update({k: v for k, v in dict(model=model, benchmark=benchmark, train=train, device=device,
                                                  precision=precision, deterministic=deterministic or None).items()
                            if v is not None})
        base = load_config(None, base_values)
        if seed_list is not None:
            try:
                seeds_ = [int(s) for s in seed_list.split(",")]
            except ValueError:
                raise ConfigError("seed_list", f"expected integers separated by commas, got {seed_list!r}",
                                  COMMAND_LINE) from None
        else:
            seeds_ = seeds if seeds is not None else spec_seeds
        seeds_ = seeds_from(seeds_, base.seed)
        index = run_sweep(base, spec_params, seeds_, out, zip_=zip_ or spec_zip, jobs=jobs, threads=threads,
                          executor=executor, address=address, gpus_per_point=gpus_per_point, quiet=quiet,
                          overwrite=overwrite)
        failed = [p for p in index["points"] if p["status"] != "done"]
        if as_json:
            emit(index, True)
        else:
            table = Table(title=f"launder sweep -> {out} ({index['seconds']} s)")
            for h in ("point", "teacher", "student", "control", "CE-only", "status"):
                table.add_column(h)

            def pct(r, arm):
                return "" if not r or r.get(arm) is None else f"{100 * r[arm]:.1f}%"

            for p in index["points"]:
                r = p.get("result")
                table.add_row(p["name"], pct(r, "teacher"), pct(r, "student"), pct(r, "control_student"),
                              pct(r, "ce_student"), p["status"] if p["status"] == "done" else f"[red]{p['status']}")
            out_console.print(table)
            for phase, s in (index.get("sharing") or {}).items():
                out_console.print(f"shared {phase}: trained {s['trained']}x for {s['used_by_points']} points "
                                  f"(~{s['seconds_saved_estimate']} s saved)", highlight=False)
            out_console.print(f"index: {out / 'sweep.json'}   next: launder report {out}", highlight=False)
        if failed:
            for p in failed:
                err_console.print(f"[red]failed:[/red] {p['name']}: {p['error']}", highlight=False)
            raise ValueError(f"{len(failed)} of {len(index['points'])} sweep points failed (recorded in "
                             f"{out / 'sweep.json'}; run the same command again to retry them)")

    return sweep
