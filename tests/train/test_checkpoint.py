"""Training checkpoints load under ``torch.load(..., weights_only=True)``: plain containers, tensors and
numbers only (no pickled classes), and ``load_torch`` gives back what was saved."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pylaundering.train.checkpoint import load_torch, save_torch
from pylaundering.train.loop import TrainConfig, TrainResult, train


class _Batcher:
    """Six rows of a 2-class problem in batches of two (what train() asks of a batcher)."""

    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return 3

    def order(self, epoch):
        return [[0, 1], [2, 3], [4, 5]]

    def collate(self, rows):
        return SimpleNamespace(x=self.x[rows], labels=torch.tensor(rows) % 2)


def _loss(model, batch):
    logits = model(batch.x)
    return torch.nn.functional.cross_entropy(logits, batch.labels), logits


def test_a_real_checkpoint_loads_weights_only(tmp_path):
    ck = tmp_path / "ck.pt"
    model = torch.nn.Linear(3, 2)
    result = train(model, _Batcher(), _loss, TrainConfig(epochs=1, batch_size=2, seed=0), checkpoint=ck, quiet=True)
    raw = torch.load(ck, map_location="cpu", weights_only=True)  # raised UnpicklingError: TrainResult
    assert set(raw) >= {"model", "optimizer", "scheduler", "torch_rng", "py_rng", "result"}
    assert isinstance(raw["torch_rng"], torch.Tensor)
    state = load_torch(ck)
    assert isinstance(state["result"], TrainResult) and state["result"] == result
    assert state["py_rng"] == raw["py_rng"] and isinstance(state["py_rng"], tuple)
    for k, v in model.state_dict().items():
        assert torch.equal(state["model"][k], v)


def test_save_load_round_trip_and_foreign_classes_refused(tmp_path):
    obj = {"result": TrainResult(history=[{"epoch": 1, "loss": 0.5}], steps=3, stop_reason="epochs"),
           "nested": [TrainResult(), (1, 2.0, None, "s")], "t": torch.arange(3)}
    back = load_torch(save_torch(obj, tmp_path / "a.pt"))
    assert back["result"] == obj["result"] and back["nested"][0] == TrainResult()
    assert back["nested"][1] == (1, 2.0, None, "s") and torch.equal(back["t"], obj["t"])
    # an arbitrary pickled object (the reason for weights_only) is refused, not run
    torch.save({"x": SimpleNamespace(a=1)}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_torch(tmp_path / "evil.pt")
