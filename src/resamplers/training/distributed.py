"""Data parallelism under ``torchrun``: process-group set-up and small collectives."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "init_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owned: bool = False  # this context created the process group (and closes it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any_flag(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        _all_reduce(value, dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        _all_reduce(t, dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this context created it (an outer caller's group stays)."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp.RedOpType, release_timeout_s: float = 5.0) -> None:
    """``dist.all_reduce``, returning only once the backend has let go of ``tensor``.

    Gloo finishes a collective before its worker thread drops the work that holds the
    tensor, and dropping a tensor made in Python takes the GIL.  Were the process group
    destroyed in that gap, its destructor would join the worker while holding the GIL: a
    deadlock at exit, seen about once in ten runs of a two-process job on a loaded machine.
    Waiting here (the GIL released) until this is the tensor's only reference closes the gap.
    """
    dist.all_reduce(tensor, op=op)
    use_count = getattr(tensor, "_use_count", None)
    if use_count is None or tensor.device.type != "cpu":
        return
    deadline = time.monotonic() + release_timeout_s
    while use_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.0002)


def init_distributed() -> DistributedContext:
    """Initialise from ``torchrun``'s environment (gloo on CPU, NCCL on GPU); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=rank, world_size=world, device=device, owned=owned)
