"""DistributedDataParallel the torchrun way: nothing home-made.

``torchrun --nproc_per_node=N -m deepatlas train ...`` sets RANK, LOCAL_RANK and WORLD_SIZE;
we join the process group (nccl on CUDA, gloo on CPU), wrap the model in DDP and shard the data
(DistributedSampler, or every W-th sample for in-memory tensors). Only rank 0 prints and writes
files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deepatlas.errors import UserError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; asking for a missing one is an
    error that says what is there."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is visible to torch; use --device cpu "
                            "or --device auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if preference == "mps":
        if not has_mps:
            raise UserError("--device mps: Apple's MPS backend is not available; use --device cpu")
        return torch.device("mps")
    if preference == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device must be auto, cpu, cuda or mps, got {preference!r}")


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistEnv()
    env = DistEnv(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # torchrun's own env:// rendezvous; the keys of each restart of the group get their own
        # prefix, so a restarted rank never reads the address of a peer that died before it.
        store, rank, world_size = next(dist.rendezvous("env://"))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"deepatlas-attempt-{attempt}", store)
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size)
    return env


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_with_grad(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """(W·B, ...): every process's ``x`` (B, ...) in rank order, through torch's functional
    all-gather, whose backward is a reduce-scatter sum: each process's loss sends gradients
    back to the embeddings of every other (CLIP's and SimCLR's negatives from the whole
    global batch). Every process must pass the same B. ``x`` itself on one process."""
    if not env.enabled:
        return x
    # torch 2.14 deprecates torch.distributed.nn.functional.all_gather in favour of this one
    from torch.distributed._functional_collectives import all_gather_single

    return all_gather_single(x.contiguous(), 0, dist.group.WORLD)


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()
