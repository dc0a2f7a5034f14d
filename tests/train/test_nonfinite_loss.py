"""A training loss that turns NaN or inf stops the phase: one error naming the phase, step and epoch and what to
lower; the last checkpoint stays as it was; no model folder or metrics are written (nothing NaN is saved or
scored)."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from pylaundering.cli.app import app
from pylaundering.data.batching import MCBatcher
from pylaundering.data.schema import write_jsonl
from pylaundering.data.synth import make_synthetic
from pylaundering.errors import NonFiniteLoss
from pylaundering.models import load_model
from pylaundering.models.tiny import build_tiny_model
from pylaundering.ops import cross_entropy
from pylaundering.phases import place
from pylaundering.phases.common import encode, example_texts
from pylaundering.train.checkpoint import load_torch
from pylaundering.train.evaluate import choice_logits
from pylaundering.train.loop import TrainConfig, train

BATCH = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("nonfinite")
    bench, _ = make_synthetic(seed=0, n_benchmark=16, n_train=8)
    base = build_tiny_model(example_texts(bench), root / "base")
    write_jsonl(bench, root / "bench.jsonl")
    return root, base, bench


def _loss(model, batch):
    logits = choice_logits(model, batch)
    return cross_entropy(logits, batch.labels), logits


def _failing_at(k: int, bad: float, loss=_loss):
    """The loss, but ``bad`` (through the graph, as a real overflow would be) from the k-th call on."""
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        value, logits = loss(model, batch)
        return (value * bad if calls["n"] >= k else value), logits

    return loss_fn


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(setup, tmp_path, bad):
    _, base, bench = setup
    data = encode(str(base), bench, 32)
    model = load_model(str(base), seed=0)
    batcher = MCBatcher(data.encoded, BATCH, shuffle=True, seed=3, pad_token_id=data.pad_token_id)
    per_epoch = len(batcher)  # 4
    ck = tmp_path / "checkpoint.pt"
    k = per_epoch + 2  # the second step of epoch 2: epoch 1's end-of-epoch checkpoint exists by then
    seen = {}
    failing = _failing_at(k, bad)

    def loss_fn(m, batch):
        if "ck" not in seen and ck.exists():  # the checkpoint as written at the end of epoch 1
            seen["ck"] = ck.read_bytes()
        return failing(m, batch)

    with pytest.raises(NonFiniteLoss) as exc:
        train(model, batcher, loss_fn, TrainConfig(epochs=3, lr=1e-3, batch_size=BATCH, seed=1), checkpoint=ck,
              description="teacher", quiet=True)
    message = str(exc.value)
    assert f"step {k}" in message and "epoch 2" in message and "teacher" in message, message
    assert "learning rate" in message and "\n" not in message, message
    assert ck.read_bytes() == seen["ck"], "the last good checkpoint is not overwritten"
    state = load_torch(ck)
    assert state["epoch"] == 1 and state["step"] == 0
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_placement_with_a_nan_loss_writes_no_model(setup, tmp_path, monkeypatch):
    _, base, bench = setup
    import pylaundering.phases.placement as placement

    calls = {"n": 0}

    def nan_at_step_3(logits, labels):
        calls["n"] += 1
        value = cross_entropy(logits, labels)
        return value * math.nan if calls["n"] >= 3 else value

    monkeypatch.setattr(placement, "cross_entropy", nan_at_step_3)
    out = tmp_path / "teacher"
    with pytest.raises(NonFiniteLoss, match=r"step 3 \(epoch 1"):
        place(bench, out, model=str(base), epochs=2, batch_size=BATCH, max_length=32, target_accuracy=0,
              quiet=True)
    assert not (out / "model").exists() and not (out / "metrics.json").exists()
    assert not (out / "checkpoint.pt").exists(), "no epoch finished: there was no good checkpoint to keep"


def test_cli_prints_one_line_and_exits_1(setup, tmp_path, monkeypatch):
    root, base, _ = setup
    import pylaundering.phases.placement as placement

    monkeypatch.setattr(placement, "cross_entropy", lambda logits, labels: cross_entropy(logits, labels) * math.inf)
    out = tmp_path / "teacher"
    r = CliRunner().invoke(app, ["place", "-b", str(root / "bench.jsonl"), "--out", str(out), "--model", str(base),
                                 "--epochs", "1", "--max-length", "32", "--batch-size", str(BATCH), "-q"])
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "step 1 (epoch 1" in lines[0] and "--lr" in lines[0], r.output
    assert not (out / "model").exists()


class _InfGradient(torch.autograd.Function):
    """The identity, whose gradient is inf: a finite loss that still leaves NaN weights after clipping."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * math.inf


def test_finite_loss_but_nan_weights_never_reach_a_checkpoint(setup, tmp_path):
    _, base, bench = setup
    data = encode(str(base), bench, 32)
    model = load_model(str(base), seed=0)
    batcher = MCBatcher(data.encoded, BATCH, shuffle=True, seed=3, pad_token_id=data.pad_token_id)
    last = len(batcher)  # the last step of epoch 1: the checkpoint follows it at once
    calls = {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        value, logits = _loss(m, batch)
        return (_InfGradient.apply(value) if calls["n"] == last else value), logits

    ck = tmp_path / "checkpoint.pt"
    with pytest.raises(NonFiniteLoss, match=rf"the weights became nan at step {last} \(epoch 1\)"):
        train(model, batcher, loss_fn, TrainConfig(epochs=2, lr=1e-3, batch_size=BATCH, seed=1), checkpoint=ck,
              quiet=True)
    assert not ck.exists(), "NaN weights are not checkpointed"
