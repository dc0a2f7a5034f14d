"""The shared options of cli/common.py: one help text per flag across every command."""

from __future__ import annotations

import typer

from pylaundering.cli.app import app


def _commands(cmd, path: str = ""):
    if hasattr(cmd, "commands"):  # a group (typer ships its own copy of click)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}".strip())
    else:
        yield path, cmd


def _helps(flag: str) -> dict[str, str]:
    root = typer.main.get_command(app)
    return {path: p.help for path, cmd in _commands(root) for p in cmd.params if flag in getattr(p, "opts", ())}


def test_a_shared_flag_reads_the_same_in_every_command():
    for flag in ("--benchmark-format", "--reference-format", "--device", "--resume", "--benchmark-subset",
                 "--train-split", "--skip-malformed"):
        helps = _helps(flag)
        assert helps, flag
        assert len(set(helps.values())) == 1, (flag, helps)


def test_benchmark_format_is_offered_where_a_benchmark_is_read():
    assert {"place", "integrate", "run", "scan", "audit teacher", "audit student"} <= set(_helps("--benchmark-format"))


def test_every_json_flag_promises_nothing_else_on_stdout():
    helps = _helps("--json")
    assert len(helps) >= 10
    for path, text in helps.items():
        assert "nothing else there" in text, (path, text)
