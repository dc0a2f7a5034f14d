"""An interrupted training run leaves a checkpoint; resuming reaches the same final weights."""

from __future__ import annotations

import signal

import pytest
import torch

from pylaundering.data.batching import MCBatcher
from pylaundering.models import load_model
from pylaundering.ops import cross_entropy
from pylaundering.phases.common import encode
from pylaundering.train.evaluate import choice_logits
from pylaundering.train.loop import Interrupted, TrainConfig, train


def _setup(teacher_dir, examples):
    data = encode(str(teacher_dir), examples, 32)
    model = load_model(str(teacher_dir), seed=0)
    batcher = MCBatcher(data.encoded, 4, shuffle=True, seed=3, pad_token_id=data.pad_token_id)
    return model, batcher


def _loss(model, batch):
    logits = choice_logits(model, batch)
    return cross_entropy(logits, batch.labels), logits


def test_interrupt_mid_epoch_then_resume_matches_uninterrupted(tiny_teacher, small_data, tmp_path):
    _, train_set = small_data
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=4, seed=1)

    ref_model, batcher = _setup(tiny_teacher, train_set)
    ref = train(ref_model, batcher, _loss, cfg, checkpoint=tmp_path / "ref.pt", quiet=True)

    model, batcher = _setup(tiny_teacher, train_set)
    steps = {"n": 0}

    def interrupting_loss(m, batch):
        steps["n"] += 1
        if steps["n"] == len(batcher) + 3:  # inside the second epoch
            signal.raise_signal(signal.SIGINT)
        return _loss(m, batch)

    with pytest.raises(Interrupted) as exc:
        train(model, batcher, interrupting_loss, cfg, checkpoint=tmp_path / "ck.pt", quiet=True)
    assert exc.value.checkpoint.exists()

    resumed_model, batcher = _setup(tiny_teacher, train_set)
    resumed = train(resumed_model, batcher, _loss, cfg, checkpoint=tmp_path / "ck.pt", resume=True, quiet=True)
    assert resumed.history == ref.history
    for (name, a), (_, b) in zip(ref_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name


def test_sigint_handler_is_restored(tiny_teacher, small_data, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    model, batcher = _setup(tiny_teacher, small_data[1][:8])
    train(model, batcher, _loss, TrainConfig(epochs=1, batch_size=4), checkpoint=tmp_path / "c.pt", quiet=True)
    assert signal.getsignal(signal.SIGINT) is before


def test_target_accuracy_stops_early(tiny_teacher, small_data, tmp_path):
    model, batcher = _setup(tiny_teacher, small_data[1][:8])
    result = train(model, batcher, _loss, TrainConfig(epochs=5, batch_size=4, target_accuracy=0.0),
                   checkpoint=tmp_path / "c.pt", quiet=True)
    assert len(result.history) == 1 and result.stopped_early


def test_max_steps_is_a_step_budget_inside_an_epoch(tiny_teacher, small_data, tmp_path):
    model, batcher = _setup(tiny_teacher, small_data[1][:16])  # 4 batches per epoch
    result = train(model, batcher, _loss, TrainConfig(epochs=10, batch_size=4, max_steps=6),
                   checkpoint=tmp_path / "c.pt", quiet=True)
    assert result.steps == 6 and result.stop_reason == "max_steps" and len(result.history) == 2
    assert result.history[-1]["steps"] == 6
    again = train(model, batcher, _loss, TrainConfig(epochs=10, batch_size=4, max_steps=6),
                  checkpoint=tmp_path / "c.pt", resume=True, quiet=True)
    assert again.steps == 6, "a finished budget is not trained again on resume"
    full = train(*_setup(tiny_teacher, small_data[1][:16]), _loss, TrainConfig(epochs=2, batch_size=4),
                 checkpoint=tmp_path / "d.pt", quiet=True)
    assert full.steps == 8 and full.stop_reason == "epochs"
