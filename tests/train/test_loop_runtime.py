"""The training loop's GPU behaviour, observed on the CPU: the loss read every few steps (same weights, the
non-finite check still before any checkpoint), the fp16 gradient scaler in checkpoints and resume, the CUDA
generator's state in a checkpoint, and deterministic mode around training only."""

from __future__ import annotations

import math
import signal

import pytest
import torch

import pylaundering.train.loop as loop
from pylaundering.data.batching import MCBatcher
from pylaundering.data.synth import make_synthetic
from pylaundering.device import Runtime
from pylaundering.errors import NonFiniteLoss
from pylaundering.models import load_model
from pylaundering.models.tiny import build_tiny_model
from pylaundering.ops import cross_entropy
from pylaundering.phases.common import encode, example_texts
from pylaundering.train.checkpoint import load_torch, restore_rng, rng_state, save_torch
from pylaundering.train.evaluate import choice_logits
from pylaundering.train.loop import Interrupted, TrainConfig, train

BATCH = 4


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    bench, _ = make_synthetic(seed=0, n_benchmark=16, n_train=8)
    return build_tiny_model(example_texts(bench), tmp_path_factory.mktemp("runtime") / "base"), bench


def _setup(base):
    path, bench = base
    data = encode(str(path), bench, 32)
    return load_model(str(path), seed=0), MCBatcher(data.encoded, BATCH, shuffle=True, seed=3,
                                                   pad_token_id=data.pad_token_id)


def _loss(model, batch):
    logits = choice_logits(model, batch)
    return cross_entropy(logits, batch.labels), logits


def test_reading_the_loss_every_few_steps_trains_the_same_weights_with_fewer_reads(base, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs=3, lr=1e-3, batch_size=BATCH, seed=1)
    reads = {"n": 0}
    real = loop._Unread.read

    def counted(self, running):
        reads["n"] += 1
        return real(self, running)

    monkeypatch.setattr(loop._Unread, "read", counted)
    every_step, batcher = _setup(base)
    a = train(every_step, batcher, _loss, cfg, checkpoint=tmp_path / "a.pt", quiet=True)
    per_step = reads["n"]
    reads["n"] = 0
    every_3, batcher = _setup(base)
    b = train(every_3, batcher, _loss, cfg, checkpoint=tmp_path / "b.pt", quiet=True, read_every=3)
    steps = len(batcher)  # 4 per epoch: reads at steps 3 and 4 (the epoch's end), 6 and 8, 9 and 12
    assert per_step == a.steps == 3 * steps and reads["n"] == 6
    for (name, x), (_, y) in zip(every_step.state_dict().items(), every_3.state_dict().items()):
        assert torch.equal(x, y), name
    for ha, hb in zip(a.history, b.history):  # the counts exactly; the loss's sum in another order
        assert ha["train_accuracy"] == hb["train_accuracy"] and ha["steps"] == hb["steps"]
        assert ha["loss"] == pytest.approx(hb["loss"], rel=1e-12)


def test_a_nan_between_reads_is_caught_at_the_next_read_before_any_checkpoint(base, tmp_path):
    model, batcher = _setup(base)
    ck = tmp_path / "ck.pt"
    calls = {"n": 0}
    seen = {}

    def loss_fn(m, batch):
        calls["n"] += 1
        if "ck" not in seen and ck.exists():
            seen["ck"] = ck.read_bytes()
        value, logits = _loss(m, batch)
        return (value * math.nan if calls["n"] == len(batcher) + 1 else value), logits

    with pytest.raises(NonFiniteLoss) as exc:  # NaN at step 5; reads at 4, then 8 (the epoch's end)
        train(model, batcher, loss_fn, TrainConfig(epochs=3, lr=1e-3, batch_size=BATCH, seed=1), checkpoint=ck,
              quiet=True, read_every=4)
    assert "step 8" in str(exc.value) and "epoch 2" in str(exc.value)
    assert ck.read_bytes() == seen["ck"]  # epoch 1's checkpoint, never one of the NaN weights
    assert load_torch(ck)["epoch"] == 1


def test_fp16_trains_through_a_gradient_scaler_whose_state_resumes(base, tmp_path):
    """fp16 is refused on the CPU by --precision (resolve_precision); a Runtime built directly runs the scaler's
    code path here (CPU autocast and GradScaler take fp16), as a GPU's fp16 run does."""
    rt = Runtime("cpu", "fp16")
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=BATCH, seed=1)
    ref_model, batcher = _setup(base)
    ref = train(ref_model, batcher, _loss, cfg, checkpoint=tmp_path / "ref.pt", quiet=True, runtime=rt)
    assert all(math.isfinite(h["loss"]) for h in ref.history)
    scaler = load_torch(tmp_path / "ref.pt")["scaler"]
    assert scaler["scale"] > 0 and "_growth_tracker" in scaler

    model, batcher = _setup(base)
    steps = {"n": 0}

    def interrupting(m, batch):
        steps["n"] += 1
        if steps["n"] == len(batcher) + 2:
            signal.raise_signal(signal.SIGINT)
        return _loss(m, batch)

    with pytest.raises(Interrupted):
        train(model, batcher, interrupting, cfg, checkpoint=tmp_path / "ck.pt", quiet=True, runtime=rt)
    resumed_model, batcher = _setup(base)
    resumed = train(resumed_model, batcher, _loss, cfg, checkpoint=tmp_path / "ck.pt", resume=True, quiet=True,
                    runtime=rt)
    assert resumed.history == ref.history
    for (name, a), (_, b) in zip(ref_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_gpu_checkpoint_carries_its_cuda_generator_and_a_cpu_one_does_not(monkeypatch, tmp_path):
    state = torch.arange(16, dtype=torch.uint8)
    got, set_to = [], []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: got.append(device) or state.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: set_to.append((s, device)))
    assert rng_state("cpu") == {} and got == []
    fields = rng_state("cuda:1")
    assert got == [torch.device("cuda:1")] and fields["cuda_device"] == "cuda:1"
    save_torch({"torch_rng": torch.get_rng_state(), **fields}, tmp_path / "ck.pt")
    loaded = load_torch(tmp_path / "ck.pt")  # weights_only: the state is a tensor and a string
    assert restore_rng(loaded, "cuda:1")
    assert torch.equal(set_to[0][0], state) and set_to[0][1] == torch.device("cuda:1")
    assert not restore_rng(loaded, "cpu") and not restore_rng({"torch_rng": None}, "cuda:0") and len(set_to) == 1


def test_deterministic_mode_is_on_while_training_and_off_after(base, tmp_path):
    seen = []

    def loss_fn(m, batch):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return _loss(m, batch)

    model, batcher = _setup(base)
    train(model, batcher, loss_fn, TrainConfig(epochs=1, batch_size=BATCH), checkpoint=tmp_path / "d.pt",
          quiet=True, runtime=Runtime("cpu", "fp32", deterministic=True))
    assert seen and all(seen) and not torch.are_deterministic_algorithms_enabled()
