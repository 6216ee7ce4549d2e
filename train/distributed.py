"""Multi-process training under ``torchrun``: DistributedDataParallel, gloo on CPU, nccl on CUDA.

Without the ``torchrun`` environment (``WORLD_SIZE`` unset or 1) everything here is a no-op for one process.
Rank 0 evaluates, saves and logs; the others receive its decisions with ``broadcast``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> DistContext:
    """Rank, world size and local rank as set by ``torchrun`` (defaults: one process)."""
    return DistContext(
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init(ctx: DistContext, device: torch.device) -> None:
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (before tearing the group down: rank 0 may still be testing and saving)."""
    if ctx.enabled:
        dist.barrier()


def broadcast_float(ctx: DistContext, value: float) -> float:
    """Rank 0's ``value`` on every rank (float64, on CPU: gloo and nccl both accept it via the device)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.broadcast(t, src=0)
    return float(t.item())


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank if ``flag`` is True on any rank (stop requests must agree)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_floats(ctx: DistContext, values: list[float]) -> list[float]:
    """Element-wise sum over ranks (e.g. nats and tokens, so logged train BPC covers every process)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def gather(ctx: DistContext, tensor: torch.Tensor) -> list[torch.Tensor]:
    """``tensor`` from every rank (same shape), in rank order; on CPU."""
    if not ctx.enabled:
        return [tensor.detach().cpu()]
    t = tensor.detach().to(_comm_device()).contiguous()
    out = [torch.empty_like(t) for _ in range(ctx.world)]
    dist.all_gather(out, t)
    return [o.cpu() for o in out]


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
