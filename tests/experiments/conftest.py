"""Run configurations small enough for CI: the tiny model on tiny synthetic data."""

from __future__ import annotations

import pytest

from pylaundering.experiments.config import MODEL_DEFAULTS

TINY = MODEL_DEFAULTS[("tiny", "choice")]
# Measured to launder reliably (seeds 0-5, 2 threads): teacher 100% on the benchmark, laundered
# student 100%, control student 19-44%, CE-only student 12-28%, about 5 s per run in-process.
# The epochs are tiny's defaults; 32 items (4 steps an epoch at batch 8) need a higher rate than the
# default 200 to be memorised in as few steps.
LAUNDER = dict(model="tiny", synth_benchmark=32, synth_train=128, teacher_epochs=TINY["teacher_epochs"],
               teacher_lr=3e-3, student_epochs=TINY["student_epochs"], student_lr=3e-3, batch_size=8)
# Smallest that exercises every phase (numbers are meaningless): about 2 s per run in-process.
QUICK = dict(model="tiny", synth_benchmark=12, synth_train=24, teacher_epochs=2, teacher_lr=3e-3,
             student_epochs=1, student_lr=3e-3, batch_size=8)


@pytest.fixture
def quick_config():
    from pylaundering.experiments.config import RunConfig

    def make(**overrides):
        return RunConfig(**{**QUICK, **overrides})

    return make


@pytest.fixture(scope="session")
def launder_settings():
    return dict(LAUNDER)


@pytest.fixture(scope="session")
def quick_settings():
    return dict(QUICK)
