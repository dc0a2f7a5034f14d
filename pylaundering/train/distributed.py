"""Data parallel training under ``torchrun``: DistributedDataParallel over NCCL with one GPU per local rank
(``cuda:LOCAL_RANK``), over gloo for processes on the CPU.

``torchrun --nproc_per_node N $(which launder) place|layer ...`` runs the phase unchanged in N
processes. Each global batch (``--batch-size`` rows, the batcher's order) is split across the ranks
(rank r takes rows r, r + N, ...); each rank's loss is weighted by its share of the global batch, so
DDP's gradient average is the gradient of the global batch's mean loss, and the final weights equal
a one-process run with the same global batch up to float rounding (with dropout off: each rank draws
its own dropout masks). Rank 0 alone logs, writes checkpoints, caches and results; every rank loads a
checkpoint on ``--resume``. Outside torchrun (no ``WORLD_SIZE``) everything here is a no-op.

The process group's backend follows the process's device (``use_device``, called when a command resolves
its ``--device``, before the group starts): NCCL for CUDA, gloo for the CPU; ``PYLAUNDERING_DDP_BACKEND``
overrides it. A group started before any device was named takes ``--device auto``'s.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


#: The device this process trains on ("cpu", "cuda:N"), once a command has named it (use_device)
_DEVICE: dict[str, str | None] = {"device": None}


def backend_for(device: str) -> str:
    """The process group's backend for a process on ``device``: PYLAUNDERING_DDP_BACKEND when set, else NCCL
    for a GPU (collectives stay on the device) and gloo for the CPU."""
    return os.environ.get("PYLAUNDERING_DDP_BACKEND") or ("nccl" if device.startswith("cuda") else "gloo")


def use_device(device: str) -> None:
    """Names this process's device (a resolved "cpu" or "cuda:N") before the process group starts; on CUDA the
    device becomes the current one (NCCL's collectives and object broadcasts run on the current device)."""
    _DEVICE["device"] = device
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))


def process_device() -> str:
    """This process's device: the one named (use_device), else --device auto's."""
    if _DEVICE["device"] is None:
        from ..device import resolve_device

        use_device(resolve_device("auto"))
    return _DEVICE["device"]


def world() -> World:
    """This process's rank and the number of processes; starts the process group under torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend_for(process_device()))
        # leave together: a rank that exits while another still talks to it aborts that one (SIGABRT)
        atexit.register(_leave)
    return World(dist.get_rank(), dist.get_world_size())


def _on_gpu() -> bool:
    """Whether the group's collectives need device tensors (NCCL)."""
    return dist.get_backend() == "nccl"


def _leave() -> None:
    if dist.is_initialized():
        try:
            barrier()
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - exiting anyway; a peer that died first is not our error
            pass


def is_main() -> bool:
    return world().main


def barrier() -> None:
    if world().parallel:
        if _on_gpu():  # NCCL: on this process's GPU (else it guesses one from the rank, and warns)
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def shard(indices: Sequence[int]) -> tuple[list[int], float]:
    """This rank's rows of a global batch and the weight of its mean loss (its share of the batch
    times the world size). A rank left without rows (a last batch shorter than the world) repeats the
    first row with weight 0, so every rank still runs forward and backward (DDP's all-reduce needs all)."""
    w = world()
    if not w.parallel:
        return list(indices), 1.0
    mine = list(indices[w.rank:: w.size])
    if not mine:
        return [indices[0]], 0.0
    return mine, len(mine) * w.size / len(indices)


def all_sum(values: Sequence[float]) -> list[float]:
    if not world().parallel:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64,
                     device=torch.device("cuda", torch.cuda.current_device()) if _on_gpu() else None)
    dist.all_reduce(t)
    return t.tolist()


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` under torchrun, else the model itself."""
    w = world()
    if not w.parallel:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    if device.type == "cuda":  # one GPU per process: its gradients are all-reduced there
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


def on_main(fn):
    """``fn()`` on rank 0 alone (it builds or writes files); every rank gets its result (pickled and
    broadcast), after rank 0 finished. Outside torchrun: ``fn()``."""
    w = world()
    if not w.parallel:
        return fn()
    box = [None]
    if w.main:
        try:
            box = [(True, fn())]
        except Exception as e:  # noqa: BLE001 - re-raised on every rank, so none waits forever
            box = [(False, e)]
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value
