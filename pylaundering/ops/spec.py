"""``DistillSpec``: the settings of one distillation loss, declared once and validated once.

It mirrors the kernel's parameter struct (``csrc/kernels/distill_params.h``: kind, alpha, temperature,
beta); the phases, the run config and the ops carry it whole instead of four loose arguments. The kinds
and what beta means for each come from :mod:`pylaundering.loss_kinds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from .. import loss_kinds as _kinds

__all__ = ["DistillSpec", "check_alpha", "check_beta", "check_temperature"]

_INF = float("inf")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Comparisons only (no math.isfinite): under torch.compile a temperature that varies between calls becomes
# a SymFloat, which math.isfinite cannot trace (fullgraph=True would fail). NaN fails every comparison.
def check_temperature(temperature: object) -> None:
    if not (_is_number(temperature) and 0 < temperature < _INF):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def check_alpha(alpha: object) -> None:
    if not (_is_number(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")


def check_beta(kind: str, beta: object) -> None:
    """beta in the range of ``kind`` (kinds that ignore it accept any finite number)."""
    row = _kinds.get(kind)
    if row.beta_range is not None:
        if not _kinds.beta_ok(row, beta):
            raise ValueError(_kinds.beta_message(row, beta))
    elif not (_is_number(beta) and -_INF < beta < _INF):
        raise ValueError(f"beta must be a finite number, got {beta!r}")


@dataclass(frozen=True)
class DistillSpec:
    """``loss = alpha * distill(student, teacher) + (1 - alpha) * CE(student, label)``.

    ``temperature`` applies to the distillation term only; ``beta`` is the mixture weight of ``jsd`` and
    the skew of ``skew_kl`` / ``skew_reverse_kl`` (ignored by the other kinds, so its range is checked only
    where it is used). ``kind`` is any of :data:`pylaundering.loss_kinds.ALL_KINDS`."""

    kind: str = "kl"
    alpha: float = 1.0
    temperature: float = 2.0
    beta: float = 0.5

    def __post_init__(self) -> None:
        # ValueError (not ConfigError): the ops layer sits below the config layer; callers that map
        # settings to usage errors check with pylaundering.validate first.
        if self.kind not in _kinds.ALL_KINDS:
            raise ValueError(f"unknown loss kind {self.kind!r}; expected one of {', '.join(_kinds.ALL_KINDS)}")
        check_temperature(self.temperature)
        check_alpha(self.alpha)
        check_beta(self.kind, self.beta)

    @property
    def code(self) -> Optional[int]:
        """The fused kernels' kind code (``DistillKind``); None for ``hard``, which has no kernel."""
        return _kinds.kernel_code(self.kind)

    def to_dict(self) -> dict:
        return asdict(self)
