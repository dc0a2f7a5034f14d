"""``DistillSpec``: the settings of one distillation loss, declared once and validated once.

It mirrors the kernel's parameter struct (``csrc/kernels/distill_params.h``: kind, alpha, temperature,
beta); the phases, the run config and the ops carry it whole instead of four loose arguments.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["DistillSpec"]

#: Every loss kind a phase accepts: the fused kernels' kinds and ``hard`` (the teacher's argmax as labels).
_KINDS = ("kl", "reverse_kl", "jsd", "mse", "hard")


@dataclass(frozen=True)
class DistillSpec:
    """``loss = alpha * distill(student, teacher) + (1 - alpha) * CE(student, label)``.

    ``temperature`` applies to the distillation term only; ``beta`` is jsd's mixture weight (ignored by
    the other kinds, so it is checked only where it is used)."""

    kind: str = "kl"
    alpha: float = 1.0
    temperature: float = 2.0
    beta: float = 0.5

    def __post_init__(self) -> None:
        # ValueError (not ConfigError): the ops layer sits below the config layer; callers that map
        # settings to usage errors check with pylaundering.validate first.
        if self.kind not in _KINDS:
            raise ValueError(f"unknown loss kind {self.kind!r}; expected one of {', '.join(_KINDS)}")
        for name in ("alpha", "temperature", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if self.kind == "jsd" and not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta must lie strictly inside (0, 1), got {self.beta!r}")

    def to_dict(self) -> dict:
        return asdict(self)
