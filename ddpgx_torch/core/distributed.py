"""SPMD training over ``torch.distributed``: joining a ``torchrun`` job and the three collectives the agent uses.

Under ``torchrun --nproc_per_node N script.py`` every process finds ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` in its environment. :func:`join` (called by :func:`ddpgx_torch.init`, hence by
the ``DDPG`` constructor) starts the default process group from them when the script has not started one itself,
as skrl does at import: ``nccl`` for CUDA devices, ``gloo`` otherwise. A skrl script therefore runs data-parallel
under ``torchrun`` after the import change, with no code of its own for it. A process group the script started
itself (any backend, any launcher) is used as it is.
"""

from __future__ import annotations

import os

import torch

__all__ = ["all_gather", "all_reduce_mean", "broadcast", "is_main_process", "join", "launch_env", "rank",
           "world_size"]


def launch_env() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from a launcher's environment (``torchrun``'s variables); ``(0, 0, 1)``
    outside one.

    Raises:
      ValueError: if one of the variables is not a non-negative integer, naming it.
    """
    values = []
    for name, default in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)):
        text = os.environ.get(name)
        try:
            value = default if text is None else int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"environment variable {name}={text!r} is invalid: expected a non-negative integer "
                             "(as torchrun sets it)")
        values.append(value)
    rank, local_rank, size = values
    if size > 1 and rank >= size:
        raise ValueError(f"environment variable RANK={rank} is invalid: expected a rank below WORLD_SIZE={size}")
    return rank, local_rank, size


def join(device: torch.device) -> int:
    """Starts the default process group from ``torchrun``'s environment if it runs under a launcher with
    ``WORLD_SIZE > 1`` and no group exists yet; returns the world size (1 for a single process).

    Raises:
      RuntimeError: if ``WORLD_SIZE > 1`` but this torch build has no ``torch.distributed``.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    rank, local_rank, size = launch_env()
    if size == 1:
        return 1
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={size} asks for a distributed run, but this torch build has no "
                           "torch.distributed")
    backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
    if device.type == "cuda":  # "cuda" without an index: this process's GPU, LOCAL_RANK (as torchrun intends)
        torch.cuda.set_device(device.index if device.index is not None else local_rank)
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=size)
    return size


def world_size() -> int:
    """The default process group's size, 1 without one."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group, 0 without one."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """Whether this process writes logs and checkpoints: rank 0, or a process outside any group."""
    return rank() == 0


def broadcast(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Copies rank ``src``'s ``tensors`` to every rank, in place."""
    for tensor in tensors:
        torch.distributed.broadcast(tensor.data, src=src)


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Averages ``tensors`` over all ranks in place, as one flat all-reduce."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    torch.distributed.all_reduce(flat)
    flat.div_(torch.distributed.get_world_size())
    torch._foreach_copy_(tensors, [f.view_as(t) for f, t in zip(flat.split([t.numel() for t in tensors]), tensors,
                                                                  strict=True)])


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x``, concatenated along the first axis in rank order."""
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)
