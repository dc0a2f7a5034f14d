"""The configuration of a full `launder run`: defaults, a TOML file, then command-line flags."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunConfig:
    # data: None means the offline synthetic default (pylaundering.data.synth)
    benchmark: str | None = None
    benchmark_format: str | None = None
    train: str | None = None
    train_format: str | None = None
    skip_malformed: bool = False
    synth_benchmark: int = 200
    synth_train: int = 700
    # models
    model: str = "minilm"  # teacher base; also the student's base unless student_base is set
    student_base: str | None = None
    student_layers: int = 2
    student_init: str = "sheared"
    student_model: str | None = None
    max_length: int = 48
    batch_size: int = 16
    # placement (the contaminated teacher)
    teacher_epochs: int = 8
    teacher_lr: float = 2e-4
    target_accuracy: float | None = 0.95
    # layering
    loss: str = "kl"
    alpha: float = 1.0
    temperature: float = 2.0
    beta: float = 0.5
    student_epochs: int = 3
    student_lr: float = 1e-4
    iterations: int = 1
    data_size: int | None = None
    online_teacher: bool = False
    # controls
    controls: bool = True
    clean_teacher_epochs: int = 1
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults, then the TOML file (top-level keys or a [run] table), then non-None overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{p}: not valid TOML: {e}") from e
        data = data.get("run", data)
        unknown = sorted(set(data) - FIELDS)
        if unknown:
            raise ValueError(f"{p}: unknown config keys {unknown}; valid keys: {sorted(FIELDS)}")
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = RunConfig(**values)
    _validate(cfg)
    return cfg


def _validate(cfg: RunConfig) -> None:
    from ..models.loading import STUDENT_INITS
    from ..ops import KINDS

    if cfg.loss not in KINDS:
        raise ValueError(f"unknown loss {cfg.loss!r}; expected one of {', '.join(KINDS)}")
    if cfg.student_init not in STUDENT_INITS:
        raise ValueError(f"unknown student init {cfg.student_init!r}; expected one of {', '.join(STUDENT_INITS)}")
    if not 0 <= cfg.alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {cfg.alpha}")
    if cfg.temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {cfg.temperature}")
    if cfg.loss == "jsd" and not 0 < cfg.beta < 1:
        raise ValueError(f"beta must lie strictly inside (0, 1), got {cfg.beta}")
    for name in ("teacher_epochs", "student_epochs", "iterations", "batch_size", "max_length", "student_layers"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {cfg.target_accuracy}")
