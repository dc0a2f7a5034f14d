"""Field helpers for converters: required and optional text cells, choice lists, labels and ids; each
raises `DataError` naming only the field (`load_examples` adds the source and row)."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DataError
from .registry import RowContext


def present(record: Mapping[str, Any], name: str) -> bool:
    value = record.get(name)
    return value is not None and not (isinstance(value, str) and not value.strip())


def required_text(record: Mapping[str, Any], name: str) -> str:
    """A required text cell, stripped; numbers are accepted (choices are often numeric)."""
    if not present(record, name):
        raise DataError("missing or empty", field=name)
    return as_text(record[name], name)


def as_text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"expected text, got {type(value).__name__}", field=name)


def optional_text(record: Mapping[str, Any], name: str) -> str | None:
    return as_text(record[name], name) if present(record, name) else None


def required_list(record: Mapping[str, Any], name: str) -> list[str]:
    """A required list-of-texts cell."""
    if not present(record, name):
        raise DataError("missing or empty", field=name)
    return as_text_list(record[name], name)


def as_text_list(value: Any, name: str) -> list[str]:
    """A list of choice texts, given as a list or as the text of a list literal.

    CSV files can only hold text, so lists arrive as `['a', 'b']` (Python) or
    `["a", "b"]` (JSON); both parse with `ast.literal_eval`.
    """
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataError(f"expected a list literal, got {preview(value)}", field=name) from None
    if not isinstance(value, (list, tuple)):
        raise DataError(f"expected a list of choices, got {type(value).__name__}", field=name)
    return [as_text(item, name) for item in value]


def preview(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _letters(n: int) -> str:
    return f"A-{chr(ord('A') + n - 1)}"


def choice_index(value: Any, choices: Sequence[str], name: str, *, allow_text: bool = False) -> int:
    """The 0-based index of the correct choice from an index, a letter or (optionally) text.

    Text matching is only offered where the schema allows it (generic formats): a
    label `"2"` with choices `["1", "2", "3"]` would otherwise be ambiguous, and such
    a row is rejected rather than silently labelled one way.
    """
    n = len(choices)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError("missing or empty", field=name)
    if isinstance(value, bool):
        raise DataError(f"expected an index or a letter, got {value!r}", field=name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < n:
            raise DataError(f"expected an index in 0..{n - 1}, got {value}", field=name)
        return value
    if not isinstance(value, str):
        raise DataError(f"expected an index or a letter, got {preview(value)}", field=name)

    text = value.strip()
    positional: int | None = None
    if text.isascii() and text.isdigit():
        positional = int(text)
        kind = f"an index in 0..{n - 1}"
    elif len(text) == 1 and text.isascii() and text.isalpha():
        positional = ord(text.upper()) - ord("A")
        kind = f"one of {_letters(n)}"
    textual = choices.index(text) if allow_text and text in choices else None
    if positional is not None and not 0 <= positional < n:
        positional = None
        if textual is None:
            raise DataError(f"expected {kind}, got {value!r}", field=name)
    if positional is not None and textual is not None and positional != textual:
        raise DataError(
            f"ambiguous: {value!r} is both position {positional} and the text of choice {textual};"
            " use a 0-based integer index",
            field=name,
        )
    if positional is None and textual is None:
        also = ", or the text of a choice" if allow_text else ""
        raise DataError(
            f"expected an index in 0..{n - 1} or one of {_letters(n)}{also}, got {preview(value)}",
            field=name,
        )
    return positional if positional is not None else textual  # type: ignore[return-value]


def id_or_default(record: Mapping[str, Any], name: str, ctx: RowContext) -> str:
    return as_text(record[name], name) if present(record, name) else ctx.default_id
