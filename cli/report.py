"""`launder report`: the report of a study, from run folders and sweep folders.

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

from pylaundering.cli.common import emit, handle_errors, json_option, out_console, quiet_option

DEFAULT_OUT_NAME = "study-report"


def default_out(paths: list[Path]) -> Path:
    """One folder given: ``<folder>/study-report``; a file or several paths: ``./study-report``."""
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0] / DEFAULT_OUT_NAME
    return Path(DEFAULT_OUT_NAME)


def register(app: typer.Typer):
    @app.command("report")
    @handle_errors
    def report(
        paths: list[Path] = typer.Argument(..., metavar="RUN_OR_SWEEP_DIR...", help="Run folders (config.json + "
                                           "metrics.json, from `launder run`), sweep folders (sweep.json, from "
                                           "`launder sweep`) or folders holding them (searched recursively)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the report (created; its earlier "
                                           "report files are replaced). Default: RUN_OR_SWEEP_DIR/study-report "
                                           "when one folder is given, else ./study-report."),
        as_json: bool = json_option("what was written (files, groups, skipped figures, failed points)"),
        quiet: bool = quiet_option("Print only the paths written."),
    ):
        """Report a study for a paper: Table 1, accuracy against alpha, data size, iterations, temperature and
        student init (means over seeds with 95% intervals), the laundering effect against train-benchmark
        distance, aggregated warnings and failed points.

        Writes points.csv (one row per finished point), summary.csv (grouped over seeds: n, mean, std, t-based 95% interval of the mean per arm), report.md, table1.png and a fig_<field>.png for every field that takes at least 2 values. Failed or pending sweep points are listed, not plotted. Runs with the same configuration and seed count once (the others are listed as duplicates).
        """  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        # start-up time: these import matplotlib and numpy
        from pylaundering.experiments.collect import collect
        from pylaundering.experiments.groups import fmt_value, mean_ci, mean_std
        from pylaundering.experiments.study_report import write_study_report

        study = collect(paths)
        target = out if out is not None else default_out(paths)
        result = write_study_report(paths, target, study=study)
        if as_json:
            emit(result, True)
            return
        if not quiet:
            fields = [f for f in result["group_fields"] if f in result["varying"]]
            table = Table(title=f"{result['points']} point(s) in {len(result['groups'])} group(s)"
                          + (f", {len(result['failed'])} failed or pending" if result["failed"] else ""))
            for f in fields:
                table.add_column(f)
            for h in ("n", "student %", "control %", "excess pp"):
                table.add_column(h, justify="right", no_wrap=True)
            table.caption = "mean ± std over seeds; excess: student − control student [95% interval of the mean]"
            groups = result["groups"]
            for g in groups[:25]:
                def stat(prefix, fmt=mean_std, g=g):
                    return fmt({k: g[f"{prefix}_{k}"] for k in ("mean", "std", "ci_low", "ci_high")})

                table.add_row(*(fmt_value(g[f]) for f in fields), str(g["n"]), stat("student_acc"),
                              stat("control_student_acc"), stat("excess", mean_ci).replace(", ", ","))
            if len(groups) > 25:
                table.add_row(*(["..."] * (len(fields) + 4)))
            out_console.print(table)
            for d in result["duplicates"]:
                out_console.print(f"dropped as a duplicate (same configuration and seed as {d['same_as']}): "
                                  f"{d['source']}", highlight=False, soft_wrap=True)
            for name, why in result["skipped_figures"].items():
                out_console.print(f"not drawn: {name}: {why}", highlight=False, soft_wrap=True)
            for w in result["warnings"]:
                out_console.print(f"warning: {w['kind']} in {w['points']} of {result['points']} points",
                                  highlight=False, soft_wrap=True)
            for f in result["failed"][:10]:
                out_console.print(f"{f['status']}: {f['name']}" + (f": {f['error']}" if f["error"] else ""),
                                  highlight=False, soft_wrap=True)
        for path in result["files"].values():
            out_console.print(str(path), highlight=False, soft_wrap=True)

    return report
