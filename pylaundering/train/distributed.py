"""Data parallel training under ``torchrun`` (DistributedDataParallel over gloo: the phases train on the CPU).

``torchrun --nproc_per_node N $(which launder) place|layer ...`` runs the phase unchanged in N
processes. Each global batch (``--batch-size`` rows, the batcher's order) is split across the ranks
(rank r takes rows r, r + N, ...); each rank's loss is weighted by its share of the global batch, so
DDP's gradient average is the gradient of the global batch's mean loss, and the final weights equal
a one-process run with the same global batch up to float rounding (with dropout off: each rank draws
its own dropout masks). Rank 0 alone logs, writes checkpoints, caches and results; every rank loads a
checkpoint on ``--resume``. Outside torchrun (no ``WORLD_SIZE``) everything here is a no-op.
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


def world() -> World:
    """This process's rank and the number of processes; starts the process group under torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        # gloo: the phases keep models and batches on the CPU; NCCL belongs with GPU placement
        dist.init_process_group(os.environ.get("PYLAUNDERING_DDP_BACKEND", "gloo"))
        # leave together: a rank that exits while another still talks to it aborts that one (SIGABRT)
        atexit.register(_leave)
    return World(dist.get_rank(), dist.get_world_size())


def _leave() -> None:
    if dist.is_initialized():
        try:
            dist.barrier()
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - exiting anyway; a peer that died first is not our error
            pass


def is_main() -> bool:
    return world().main


def barrier() -> None:
    if world().parallel:
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
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` under torchrun, else the model itself."""
    w = world()
    if not w.parallel:
        return model
    from torch.nn.parallel import DistributedDataParallel

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
