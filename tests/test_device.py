"""--device and --precision resolution (pylaundering/device.py): what resolves where, what is refused with one
line, what a Runtime does on the CPU, and the choices that only a GPU makes, observed with torch.cuda patched."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import pylaundering.device as D
from pylaundering.errors import ConfigError
from pylaundering.train import distributed


@pytest.fixture
def two_gpus(monkeypatch):
    """torch seeing two CUDA devices with bf16 (only resolution is exercised: nothing runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(D, "_bf16_supported", lambda device: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="resolution on a machine without CUDA")
def test_without_cuda_auto_is_the_cpu_and_a_cuda_device_is_one_clear_usage_error():
    assert D.resolve_device("auto") == D.resolve_device(None) == D.resolve_device(" CPU ") == "cpu"
    for spec in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(ConfigError) as e:
            D.resolve_device(spec)
        text = str(e.value)
        assert text.startswith("device:") and "sees none" in text and "--device cpu" in text and "\n" not in text


@pytest.mark.parametrize("spec", ["tpu", "gpu", "cuda:x", "", "mps"])
def test_a_name_that_is_not_a_device_is_refused(spec):
    with pytest.raises(ConfigError, match="expected cpu or cuda"):
        D.resolve_device(spec)


def test_with_gpus_auto_and_cuda_take_the_first_and_an_index_must_exist(two_gpus):
    assert D.resolve_device("auto") == D.resolve_device("cuda") == "cuda:0"
    assert D.resolve_device("cuda:1") == "cuda:1" and D.resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match=r"cuda:2 does not exist: torch sees 2 CUDA device\(s\)"):
        D.resolve_device("cuda:2")


def test_under_torchrun_each_rank_takes_its_local_gpu(two_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert D.resolve_device("auto") == D.resolve_device("cuda") == D.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="each process takes its own GPU"):
        D.resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="cuda:2 does not exist"):  # more ranks than GPUs: refused, not shared
        D.resolve_device("auto")


def test_precision_auto_is_fp32_on_the_cpu_and_bf16_only_where_the_gpu_has_it(two_gpus, monkeypatch):
    assert D.resolve_precision("auto", "cpu") == D.resolve_precision(None, "cpu") == "fp32"
    assert D.resolve_precision("bf16", "cpu") == "bf16" and D.resolve_precision("FP32", "cpu") == "fp32"
    assert D.resolve_precision("auto", "cuda:0") == "bf16" and D.resolve_precision("fp16", "cuda:0") == "fp16"
    monkeypatch.setattr(D, "_bf16_supported", lambda device: False)
    monkeypatch.setattr(D, "device_name", lambda device: "Old GPU")
    assert D.resolve_precision("auto", "cuda:0") == "fp32"  # fp16 needs a scaler: asked for by name only
    with pytest.raises(ConfigError, match=r"this GPU \(Old GPU\) has no bf16"):
        D.resolve_precision("bf16", "cuda:0")


@pytest.mark.parametrize("spec, words", [("fp16", "fp16 is for CUDA devices"), ("fp64", "expected one of auto"),
                                         ("half", "expected one of auto")])
def test_precisions_the_cpu_cannot_run_are_refused(spec, words):
    with pytest.raises(ConfigError, match=words) as e:
        D.resolve_precision(spec, "cpu")
    assert str(e.value).startswith("precision:")


def test_the_cpu_runtime_at_fp32_changes_nothing():
    rt = D.runtime("auto", "auto")
    if torch.cuda.is_available():
        pytest.skip("auto is a GPU here")
    assert rt == D.Runtime() == D.as_runtime(None) and not rt.cuda and rt.autocast_dtype is None
    batch = object()
    assert rt.to_device(batch) is batch and rt.grad_scaler() is None
    x = torch.ones(2)
    assert rt.cast(x) is x and rt.cast(None) is None
    with rt.autocast(), rt.exact():
        assert not torch.is_autocast_enabled("cpu")


def test_cpu_bf16_runs_forward_passes_under_autocast_and_exact_switches_it_off():
    rt = D.Runtime("cpu", "bf16")
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with rt.autocast():
        assert lin(x).dtype == torch.bfloat16
        with rt.exact():
            assert lin(x).dtype == torch.float32
    assert rt.cast(x).dtype == torch.bfloat16 and lin.weight.dtype == torch.float32  # the weights stay fp32


@dataclasses.dataclass
class _Batch:
    input_ids: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    token_type_ids: torch.Tensor | None = None


def test_a_gpu_runtime_moves_every_tensor_of_a_batch_once_pinned_but_keeps_the_index_on_the_host(monkeypatch):
    pinned = []

    def pin(t):
        pinned.append(t)
        return t

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(D.Runtime, "torch_device", property(lambda self: torch.device("meta")))
    rt = D.Runtime("cuda:0", "bf16")  # its "device" is meta here: where the copies go is what is checked
    batch = _Batch(torch.ones(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.arange(2))
    moved = rt.to_device(batch)
    assert moved.input_ids.device.type == "meta" and moved.labels.device.type == "meta"
    assert moved.index is batch.index and moved.token_type_ids is None
    assert len(pinned) == 2  # each tensor pinned once, then copied without waiting
    assert rt.to_device(torch.ones(1)).device.type == "meta"


def test_deterministic_mode_holds_inside_the_session_only(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    rt = D.runtime("cpu", "fp32", deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == D.CUBLAS_WORKSPACE  # set at resolution: before cuBLAS starts
    assert not torch.are_deterministic_algorithms_enabled()
    with rt.session():
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    with D.Runtime().session():
        assert not torch.are_deterministic_algorithms_enabled()


def test_describe_names_the_device_precision_and_the_loss_backend_used_there():
    from pylaundering.ops import backend

    info = D.Runtime("cpu", "bf16").describe()
    assert info["device"] == "cpu" and info["precision"] == "bf16" and info["deterministic"] is False
    assert info["loss_backend"] == backend("cpu").name and info["loss_backend_reason"] == backend("cpu").reason
    assert isinstance(info["name"], str) and info["name"] and info["memory_gib"] > 0


def test_score_batches_are_64_on_the_cpu_and_sized_from_free_memory_on_a_gpu(monkeypatch):
    cpu = D.Runtime()
    assert D.score_batch_size(cpu, items=10_000, sequences_per_item=4, length=64) == D.DEFAULT_SCORE_BATCH
    assert D.score_batch_size(cpu, items=10_000, sequences_per_item=4, length=64, requested=7) == 7
    gpu = D.Runtime("cuda:0", "bf16")
    free = {"bytes": 8 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 * 2**30))
    monkeypatch.setattr(D.Runtime, "torch_device", property(lambda self: torch.device("cpu")))

    class Config:
        hidden_size, num_attention_heads = 384, 12

    def size(**kw):
        return D.score_batch_size(gpu, **{"items": 10**6, "sequences_per_item": 4, "length": 128,
                                          "config": Config(), **kw})

    per_item = 4 * 128 * D.bytes_per_token(Config(), "bf16", 128)
    assert size() == min(D.MAX_SCORE_BATCH, int(free["bytes"] * D.SCORE_MEMORY_SHARE // per_item))
    small = size(vocab=50_000)  # a causal LM's loglik scorer forms [length, vocabulary] logits
    assert 1 <= small < size()
    free["bytes"] = 2**40
    assert size() == D.MAX_SCORE_BATCH and size(items=100) == 100
    assert D.score_batch_size(gpu, items=10, sequences_per_item=4, length=128, requested=3) == 3


def test_torchrun_uses_nccl_on_a_gpu_and_gloo_on_the_cpu(monkeypatch):
    monkeypatch.delenv("PYLAUNDERING_DDP_BACKEND", raising=False)
    assert distributed.backend_for("cuda:1") == "nccl" and distributed.backend_for("cpu") == "gloo"
    monkeypatch.setenv("PYLAUNDERING_DDP_BACKEND", "gloo")
    assert distributed.backend_for("cuda:0") == "gloo"  # the override wins
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setitem(distributed._DEVICE, "device", None)
    distributed.use_device("cuda:1")
    assert distributed.process_device() == "cuda:1" and current == [torch.device("cuda:1")]
    distributed.use_device("cpu")
    assert distributed.process_device() == "cpu" and len(current) == 1
