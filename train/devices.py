"""Where a run trains: the device, bfloat16 and torch.compile support, and the flag checks that need them."""

from __future__ import annotations

import shutil

import torch

from lnrnn.errors import UserError
from lnrnn.train import distributed as D
from lnrnn.train.model import ByteLM, ModelConfig
from lnrnn.train.presets import TrainConfig


def pick_device(name: str, ctx: D.DistContext) -> tuple[torch.device, str]:
    """``--device`` -> (device, the reason for it, as logged)."""
    cuda = torch.cuda.is_available()
    if name == "cuda" and not cuda:
        raise UserError("--device cuda but CUDA is not available (torch.cuda.is_available() is False)")
    if name == "cpu" or (name == "auto" and not cuda):
        return torch.device("cpu"), "cpu" if name == "cpu" else "auto: CUDA not available"
    return torch.device("cuda", ctx.local_rank), "auto: CUDA available" if name == "auto" else "cuda"


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively: any CUDA device, or a CPU with AVX512-BF16 / AMX."""
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    return any(
        bool(getattr(cpu, f, lambda: False)())
        for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def compile_cell_steps(model: ByteLM) -> None:
    """torch.compile each cell's ``step`` (an instance attribute: weights, checkpoints, export unaffected)."""
    for cell in model.recurrent_cells:
        cell.step = torch.compile(cell.step, dynamic=False)  # type: ignore[method-assign]


def check_flags(model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device, ctx: D.DistContext) -> None:
    """Flags this machine or this process count cannot honour -> one-line ``UserError``, before training."""
    if cfg.bf16 and not native_bf16(device):
        raise UserError("--bf16 needs CUDA or a CPU with AVX512-BF16/AMX (this CPU would emulate it, slowly)")
    if cfg.compile and device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise UserError("--compile on CPU needs a C++ compiler (g++) for torch.compile's inductor backend")
    if model_cfg.norm == "batch" and not model_cfg.hoist:
        raise UserError("--norm batch needs the hoisted input path (--no-hoist gives per-step statistics)")
    if cfg.batch_size % ctx.world:
        raise UserError(f"--batch-size {cfg.batch_size} is not divisible by the {ctx.world} processes")
