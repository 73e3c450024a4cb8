"""Where this process sits in a ``torchrun`` / ``accelerate launch`` run: the one module that reads the
launchers' environment variables, for FIT, activation collection and the CLI."""
from __future__ import annotations

import os


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) as torchrun and accelerate launch set them; (0, 1) in one process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def join_process_group() -> tuple[int, int]:
    """(rank, world size), joining the process group (gloo) when the launcher started several processes;
    for steerkit's own collectives (the Trainer joins its own group under FIT)."""
    _, world = rank_and_world()
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def leave_process_group() -> None:
    """Destroy the process group, if this process joined one, while the interpreter is still whole: a gloo
    group left to interpreter shutdown can abort a rank ("terminate called without an active exception",
    SIGABRT) after its work is done, failing the launch."""
    if rank_and_world()[1] == 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_id() -> str:
    """A name every process of one launch shares (torchrun's run id, else the rendezvous address)."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or f"{os.environ.get('MASTER_ADDR', '')}-{os.environ.get('MASTER_PORT', '')}"
