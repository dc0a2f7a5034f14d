"""One CLI grammar for run, place and layer: one name and meaning per option, usage errors exit 2, a failed
start leaves nothing behind, help text renders its bracketed words, tables have no empty columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pylaundering.cli.app import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _items(path: Path, n: int = 6, bad: bool = False) -> Path:
    rows = [json.dumps({"question": f"what is item {i}", "choices": ["red", "blue"], "answer": i % 2})
            for i in range(n)]
    path.write_text("\n".join(rows + (["not json"] if bad else [])) + "\n")
    return path


def _help(*command: str) -> str:
    text = runner.invoke(app, [*command, "--help"], env=WIDE).output
    return " ".join(text.replace("│", " ").split())  # one line: the words of a wrapped help joined again


@pytest.mark.parametrize("command, key, flag", [("place", "teacher_lr", "--teacher-lr"),
                                                ("place", "teacher_epochs", "--teacher-epochs"),
                                                ("layer", "student_lr", "--student-lr"),
                                                ("layer", "student_epochs", "--student-epochs")])
def test_place_and_layer_help_name_the_run_setting(command, key, flag):
    text = _help(command)
    assert f"config key {key}" in text and flag in text


def test_layer_takes_model_with_base_as_alias(tmp_path):
    text = _help("layer")
    assert "--model" in text and "--base" in text
    train = _items(tmp_path / "train.jsonl")
    for name in ("--model", "--base"):
        res = runner.invoke(app, ["layer", "--train", str(train), "--out", str(tmp_path / name), name, "tiny",
                                  "--alpha", "0", "--student-layers", "99", "-q"])
        assert res.exit_code == 2 and "student_layers" in res.output, res.output  # the option was taken
        assert not (tmp_path / name).exists()  # refused before anything was written (base-tiny/ included)


def test_source_format_help_matches_benchmark_format():
    split, place = _help("data", "split"), _help("place")
    words = "when its columns do not name it"
    assert words in split and words in place
    # the same list of formats, in the same words
    tail = place.split("--benchmark-format")[1].split(words)[0].split("format", 1)[1]
    assert tail in split.split("--format")[1]


@pytest.mark.parametrize("args", [["integrate", "-m", "x", "--benchmark-format", "nope"],
                                  ["place", "--model", "tiny", "--benchmark-format", "nope"]])
def test_unknown_format_is_a_usage_error(tmp_path, args):
    bench = _items(tmp_path / "b.jsonl")
    res = runner.invoke(app, [*args, "-b", str(bench), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nope" in res.output, res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["run"], ["place", "--model", "tiny", "-b", "B"],
                                  ["layer", "--model", "tiny", "--alpha", "0", "--train", "B"],
                                  ["integrate", "-m", "x", "-b", "B"]])
def test_out_that_is_a_file_is_one_line(tmp_path, args):
    bench = _items(tmp_path / "b.jsonl")
    target = tmp_path / "afile"
    target.write_text("keep")
    args = [str(bench) if a == "B" else a for a in args]
    res = runner.invoke(app, [*args, "--out", str(target), "-q"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "is a file" in lines[0] and "--out" in lines[0], res.output
    assert target.read_text() == "keep"


def test_run_with_a_model_without_the_head_writes_nothing(tmp_path):
    model = tmp_path / "t5"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "t5", "num_layers": 2}))
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--model", str(model), "--out", str(out), "-q"])
    assert res.exit_code == 1 and "multiple-choice" in res.output, res.output
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_sweep_help_renders_bracketed_words():
    text = _help("sweep")
    assert "a [run] table" in text and "a [sweep] table" in text


def test_tables_have_no_empty_columns():
    from rich.console import Console

    from pylaundering.cli.common import accuracy_table

    table = accuracy_table("placement", [("teacher", "", "", "97.0%")])
    assert [c.header for c in table.columns] == ["Model", "Train acc"]
    console = Console(record=True, width=120)
    console.print(table)
    assert "95% CI" not in console.export_text()


def test_integrate_records_skipped_rows(tmp_path):
    from pylaundering.models.tiny import build_tiny_model

    bench = _items(tmp_path / "b.jsonl", bad=True)
    model = build_tiny_model(["what is item red blue"], tmp_path / "m")
    out = tmp_path / "score"
    res = runner.invoke(app, ["integrate", "-m", str(model), "-b", str(bench), "--skip-malformed", "--out",
                              str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "metrics.json").read_text())["benchmark_skipped"] == 1


def test_info_json():
    import torch

    res = runner.invoke(app, ["info", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["torch"] == torch.__version__ and set(info["ops_backend"]) == {"cpu", "cuda"}


def _commands(typer_app, prefix=()):
    for info in typer_app.registered_commands:
        yield (*prefix, info.name or info.callback.__name__), info
    for group in typer_app.registered_groups:
        yield from _commands(group.typer_instance, (*prefix, group.name))


def test_command_lists_show_each_help_as_filled_lines():
    """Typer's rich mode keeps a docstring's line breaks: wrapped at the code's width, the `launder --help` and
    `launder data --help` command lists showed ragged half-lines ("run folder with its" / "metrics.json, in
    one ...")."""
    for name, info in _commands(app):
        doc = info.help or info.callback.__doc__ or ""
        for paragraph in doc.split("\n\n"):
            lines = paragraph.split("\n")
            assert all(line.startswith("- ") for line in lines[1:]), (name, paragraph[:120])
    width = 100
    for group in ((), ("data",)):
        text = runner.invoke(app, [*group, "--help"], env={"COLUMNS": str(width)}).output
        rows = [line.strip("│ ") for line in text.splitlines() if line.startswith("│")]
        # a continuation row of the commands panel: blank command column; none may stop short of half the width
        # unless it ends its sentence
        cells = [row for row in rows if row and not row.startswith("-")]
        short = [c for c in cells if len(c) < width // 2 and not c.rstrip().endswith((".", ")", ":", "`"))]
        assert not short, short
