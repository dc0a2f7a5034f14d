"""The fused op allocates one [N, V] tensor per training step (the gradient) and none for inference.

A TorchDispatchMode sees every tensor produced by every op, forward and backward; the test counts
the distinct storages of [N, V]-sized results that are not the inputs' own. This caught autograd
materialising a zero-filled [N, V] gradient for the op's (unused) saved-gradient output in every
backward (fixed by ctx.set_materialize_grads(False) in _registry.py).
"""

from __future__ import annotations

import pytest
import torch
from ops_oracle import BigAllocations as _BigAllocations
from ops_oracle import requires_compiled

import pylaundering.ops as O

CALLS = {
    "kl_div": lambda s, t, y: O.kl_div(s, t, 2.0),
    "reverse_kl": lambda s, t, y: O.kl_div(s, t, 2.0, direction="reverse"),
    "jsd": lambda s, t, y: O.jsd(s, t, 0.25),
    "logit_mse": lambda s, t, y: O.logit_mse(s, t),
    "cross_entropy": lambda s, t, y: O.cross_entropy(s, y),
    "distill_kl_ce": lambda s, t, y: O.distill_loss(s, t, y, alpha=0.5, temperature=2.0),
    "none_weighted": lambda s, t, y: (O.distill_loss(s, t, y, kind="jsd", reduction="none") * torch.arange(64.0)).sum(),
}


@requires_compiled
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(CALLS))
def test_training_step_allocates_only_the_gradient(name, dtype):
    s = torch.randn(64, 1000, dtype=dtype, requires_grad=True)
    t, y = torch.randn(64, 1000, dtype=dtype), torch.randint(0, 1000, (64,))
    with _BigAllocations(s.numel() * s.element_size() // 2, [s, t]) as mode:
        CALLS[name](s, t, y).backward()
    assert s.grad is not None
    assert len(mode.storages) == 1, f"[N, V] allocations: {list(mode.storages.values())}"
    assert s.grad.untyped_storage().data_ptr() in mode.storages, "the gradient should be the kernel's own output"


@requires_compiled
@pytest.mark.parametrize("name", list(CALLS))
def test_inference_allocates_no_row_sized_tensor(name):
    s = torch.randn(64, 1000, requires_grad=True)
    t, y = torch.randn(64, 1000), torch.randint(0, 1000, (64,))
    with torch.no_grad(), _BigAllocations(s.numel() * 4 // 2, [s, t]) as mode:
        CALLS[name](s, t, y)
    assert not mode.storages, f"[N, V] allocations without grad: {list(mode.storages.values())}"
