"""Parameter checks shared by the phases, the run config and the CLI: one rule, one message, one exit
code (each raises ``ConfigError``, a usage error). Torch-free, so the config layer and the CLI can check
values before anything heavy is imported."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

__all__ = ["check_choice", "check_float", "check_int", "check_max_length", "normalize_target"]


def check_int(key: str, value: Any, *, minimum: int | None = None, source: str | None = None,
              optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {value!r}", source)
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {value}", source)


def check_float(key: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, source: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected a number, got {value!r}", source)
    # NaN fails every comparison below, so it would pass any range: refuse it (and +-inf) first
    if not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value}", source)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ConfigError(key, f"must lie in {interval}, got {value}", source)


def check_choice(key: str, value: Any, choices: Sequence[str], source: str | None = None) -> None:
    if value not in choices:
        raise ConfigError(key, f"unknown {key.replace('_', ' ')} {value!r}; expected one of {', '.join(choices)}",
                          source)


def normalize_target(value: Any, key: str = "target_accuracy", source: str | None = None) -> float | None:
    """``target_accuracy`` as a finite float in (0, 1], or None for "no stop": 0, None, false, "none", "off"."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("none", "off", "no", "0"):
            return None
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(key, f"expected a number in (0, 1] or 'none', got {value!r}", source) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected a number in (0, 1] or 'none', got {value!r}", source)
    if value == 0:
        return None
    check_float(key, value, low=0, high=1, low_open=True, source=source)
    return float(value)


def check_max_length(value: Any, key: str = "max_length", source: str | None = None) -> None:
    check_int(key, value, minimum=8, source=source, optional=True)
