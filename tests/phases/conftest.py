"""Small generated data and the tiny model: every pipeline test runs in seconds, offline."""

from __future__ import annotations

import pytest

from pylaundering.data.synth import make_synthetic

SMALL = dict(n_benchmark=24, n_train=48)


@pytest.fixture(scope="session")
def small_data():
    return make_synthetic(seed=0, **SMALL)


@pytest.fixture(scope="session")
def tiny_teacher(small_data, tmp_path_factory):
    """A tiny teacher placed on the small benchmark (shared, read-only)."""
    from pylaundering.phases import place

    bench, _ = small_data
    out = tmp_path_factory.mktemp("teacher")
    place(bench + small_data[1], out, model="tiny", epochs=1, quiet=True)  # tokenizer sees all texts
    return out / "model"
