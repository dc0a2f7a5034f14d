"""The toolkit's error types: the bottom layer, imported by every other (no torch, no other module of ours).

How the CLI maps them to exit codes (``cli/app.py``):
  ConfigError     a parameter value that is wrong in itself or with the others (wrong type, out of
                  range, unknown choice, inconsistent combination): a usage error, exit 2, whichever
                  command or config file it came from.
  ResumeMismatch  ``--resume`` asked for a phase whose recorded parameters or data differ: exit 1.
  DataError       bad input data, located by source, row and field: exit 1.
  ModelError      a model that cannot be found, loaded or truncated as asked: exit 1.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "ModelError", "ResumeMismatch"]


class ConfigError(ValueError):
    """A parameter value that cannot be used; names the key (and the file it came from)."""

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key, self.message, self.source = key, message, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}")


class ResumeMismatch(ValueError):
    """--resume of a phase whose recorded parameters or data differ from the request."""


class ModelError(ValueError):
    """A model that cannot be found, loaded or truncated as asked."""


class DataError(ValueError):
    """Bad input data, located as precisely as we know: source, row and field.

    Validation code deep down (e.g. `MCExample.__post_init__`) only knows the field;
    the reader that owns the file adds the rest with `located`, so the user sees
    ``data/x.csv, row 17, field 'answer': expected one of A-D, got 'E'``.
    Rows are 1-based record numbers (the CSV header is not a row; in JSONL the row is
    the line number).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def located(self, *, source: str | None = None, row: int | None = None) -> DataError:
        """A copy with source and row filled in where they were unknown."""
        return DataError(
            self.message,
            source=self.source if self.source is not None else source,
            row=self.row if self.row is not None else row,
            field=self.field,
        )
