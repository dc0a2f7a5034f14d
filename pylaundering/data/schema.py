"""The one internal schema every benchmark and corpus is converted to.

Everything downstream (tokenisation, teacher-logit caches, audits) keys on `MCExample`,
so validation happens once, here, instead of in every consumer. Serialisation is
canonical (sorted keys, compact separators, one example per line) so that the hash of
a list of examples equals the sha256 of the file `write_jsonl` writes for it: a run
directory can record data hashes that anyone can check with `sha256sum`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = [
    "DataError",
    "MCExample",
    "atomic_write_text",
    "canonical_line",
    "examples_hash",
    "write_jsonl",
]


def _check_text(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise DataError(f"expected text, got {type(value).__name__}", field=field)
    if not value.strip():
        raise DataError("must not be empty", field=field)


@dataclass(frozen=True)
class MCExample:
    """One multiple-choice item: `choices[label]` is the correct answer.

    `context` is an optional passage read before the question (RACE articles);
    `subject` groups items for per-subject reporting (MMLU subject, synthetic relation).
    """

    id: str
    question: str
    choices: tuple[str, ...]
    label: int
    context: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.id, "id")
        _check_text(self.question, "question")
        if not isinstance(self.choices, (list, tuple)):
            raise DataError(
                f"expected a list of texts, got {type(self.choices).__name__}", field="choices"
            )
        # Accept a list but store a tuple, so the frozen example is hashable.
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 2:
            raise DataError(f"need at least 2 choices, got {len(self.choices)}", field="choices")
        for i, choice in enumerate(self.choices):
            try:
                _check_text(choice, "choices")
            except DataError as err:
                raise DataError(f"choice {i}: {err.message}", field="choices") from None
        if isinstance(self.label, bool) or not isinstance(self.label, int):
            raise DataError(
                f"expected an integer index, got {type(self.label).__name__}", field="label"
            )
        if not 0 <= self.label < len(self.choices):
            raise DataError(
                f"expected 0 <= label < {len(self.choices)}, got {self.label}", field="label"
            )
        for name in ("context", "subject"):
            value = getattr(self, name)
            if value is not None:
                _check_text(value, name)

    @property
    def answer(self) -> str:
        """The text of the correct choice."""
        return self.choices[self.label]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every field present (None included), so output is canonical."""
        return {
            "id": self.id,
            "question": self.question,
            "choices": list(self.choices),
            "label": self.label,
            "context": self.context,
            "subject": self.subject,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MCExample:
        """Build from a dict; unknown keys are ignored, missing required keys raise DataError."""
        if not isinstance(data, Mapping):
            raise DataError(f"expected a JSON object, got {type(data).__name__}")
        for key in ("id", "question", "choices", "label"):
            if key not in data:
                raise DataError("missing", field=key)
        return cls(
            id=data["id"],
            question=data["question"],
            choices=data["choices"],
            label=data["label"],
            context=data.get("context"),
            subject=data.get("subject"),
        )


def canonical_line(example: MCExample) -> str:
    """The canonical JSON text of one example (no newline), shared by writer and hash."""
    return json.dumps(example.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def examples_hash(examples: Iterable[MCExample]) -> str:
    """sha256 hex digest of the examples, order-sensitive.

    Equal to the sha256 of the file `write_jsonl(examples, path)` produces.
    """
    digest = hashlib.sha256()
    for example in examples:
        digest.update(canonical_line(example).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` so readers see either the old file or the new one, never half.

    The temporary file lives in the destination directory because `os.replace` is only
    atomic within one filesystem.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_jsonl(examples: Iterable[MCExample], path: str | os.PathLike[str]) -> Path:
    """Write examples as canonical JSONL (the `pylaundering` format), atomically."""
    return atomic_write_text(path, "".join(canonical_line(e) + "\n" for e in examples))
