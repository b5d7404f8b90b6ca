"""Multi-process training with ``torch.distributed``, launched by ``torchrun``."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
from torch import nn

from .._args import boolean, nonnegative_int, positive_int
from .config import DEVICE_PATTERN

__all__ = ["DistInfo", "init_distributed", "wrap_model", "all_reduce_mean", "cleanup_distributed", "full_state_dict"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        positive_int(self.world_size, "world_size", "DistInfo")
        if nonnegative_int(self.rank, "rank", "DistInfo") >= self.world_size:
            raise ValueError(f"DistInfo: rank must be in [0, world_size={self.world_size}), got {self.rank}")
        nonnegative_int(self.local_rank, "local_rank", "DistInfo")
        if not isinstance(self.device, torch.device):
            raise TypeError(f"DistInfo: device must be a torch.device, got {type(self.device).__name__}")

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process: gradients and metrics must be reduced across ranks."""
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Without ``WORLD_SIZE`` (a plain ``flowkit train``) this is a single process. Under ``torchrun``
    the backend is NCCL on GPUs and gloo on the CPU, each rank takes GPU ``LOCAL_RANK``.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises:
        ValueError: a CUDA or MPS device asked for where PyTorch has none.

    Examples:
        >>> init_distributed("cpu").world_size  # no torchrun here
        1
    """
    if not isinstance(device, str) or DEVICE_PATTERN.fullmatch(device) is None:
        raise ValueError(f"init_distributed: device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this PyTorch build sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but Apple's MPS backend is not available here; use --device cpu")
    if device == "mps":
        dev = torch.device("mps")
    elif cuda:  # "cuda:N" picks GPU N for a single process; under torchrun each rank takes GPU LOCAL_RANK
        dev = torch.device(device if ":" in device and world == 1 else f"cuda:{local}")
    else:
        dev = torch.device("cpu")
    if world == 1:
        return DistInfo(device=dev)
    if cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev)


def cleanup_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo, fsdp: bool = False) -> nn.Module:
    """Wrap ``model`` for data-parallel training: DDP, or FSDP for models that do not fit one device.

    DDP keeps a replica per rank and averages gradients, so the global batch is the per-rank batch
    times the world size. FSDP (``torch.distributed.fsdp.fully_shard``, which also runs on the CPU
    with gloo) shards parameters, gradients and optimizer state over the ranks, one unit per flow
    block (``model.blocks``) plus the root; it shards ``model`` in place and returns it, so build the
    optimizer afterwards. A single process gets ``model`` back.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap_model: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(info, DistInfo):
        raise TypeError(f"wrap_model: info must be a DistInfo (see init_distributed), got {type(info).__name__}")
    boolean(fsdp, "fsdp", "wrap_model")
    if not info.distributed:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in getattr(model, "blocks", []):
            fully_shard(block)
        fully_shard(model)
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``t`` over ranks (``t`` itself in a single process)."""
    if not info.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / info.world_size


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) ``state_dict`` of an FSDP model, on the CPU of rank 0.

    Every rank must call it (it gathers the shards); the other ranks get an empty dict.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    # Typed as any state value (tensors, sharded tensors, ...); a full state dict holds plain tensors.
    return cast(dict[str, torch.Tensor], state)
