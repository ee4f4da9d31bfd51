"""Training on several processes (``accelerate launch``, ``torchrun``): who does what, and the hand-offs.

    accelerate launch --multi_gpu --num_processes 2 -m flows.train_reward_model <snapshot_id> <cpu_recipe.yaml>

Every rank runs the same command. Only rank 0 runs the Prefect flow: it alone creates the flow run,
talks to the Prefect API, reads and writes the store and the registry, gates, promotes and emits
events. Letting every rank run the flow would create one flow run per rank, register one version
per rank and gate each of them; with several ranks racing to promote, the active labeler would be
whichever wrote last. The other ranks ("followers") never touch Prefect: they wait for the job
rank 0 sends when its fit task starts (``lead_training``), build the same trainer on the same
snapshot split and recipe, join the collective training (DDP, FSDP or DeepSpeed, as launched),
then wait for rank 0's result and return it, so every rank's command ends with the same answer.

Messages, all broadcast from rank 0 in this order: the job (or ``None`` when rank 0 failed before
training), then the result (or a ``RankZeroFailed`` message). If rank 0 fails *during* training the
other ranks are inside a collective and cannot be told: rank 0 exits and the launcher (torchrun's
elastic agent) stops the rest. With one process (no launcher) nothing here touches torch.distributed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from labeling.errors import UserError

T = TypeVar("T")
logger = logging.getLogger(__name__)

# The followers wait for rank 0 twice outside any training step: while it starts the flow and loads the
# snapshot, and while it gates the new model on the held-out pairs. torch's default (30 min with gloo,
# 10 with NCCL) can run out during a large gate on a busy node.
RANK_WAIT = timedelta(hours=2)

_phase = "before_job"  # rank 0 only: "before_job" -> "training" -> "after_training"


class RankZeroFailed(UserError):
    """Rank 0 failed before or after the collective training; its one-line error is the message."""


def world_size() -> int:
    """Processes in this training run, as the launcher sets WORLD_SIZE (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (RANK, set by the launcher; 0 without one)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True on the one process that writes files, measures and talks to Prefect: global rank 0."""
    return rank() == 0


def _process_group():
    """torch.distributed, initialised the way TrainingArguments would (gloo on CPU, NCCL on GPUs)."""
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    if not dist.is_initialized():
        # accelerate sets the CUDA device per local rank, which NCCL's object broadcasts need; the trainer
        # built later finds the group initialised and joins it instead of making its own.
        PartialState(cpu=not torch.cuda.is_available(), timeout=RANK_WAIT)
    return dist


def broadcast_from_main(obj: Any = None) -> Any:
    """Rank 0's ``obj`` on every rank (picklable; the other ranks' ``obj`` is ignored)."""
    if world_size() == 1:
        return obj
    box = [obj if is_main_process() else None]
    _process_group().broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Every rank waits here until all have arrived (a no-op on one process)."""
    if world_size() > 1:
        _process_group().barrier()


@contextmanager
def lead_training(job: Any) -> Iterator[None]:
    """Rank 0, around its training: sends ``job`` to the followers, which train with it meanwhile.

    A no-op with one process and on the followers (they get the job from ``run_on_ranks``).
    """
    global _phase
    if world_size() == 1 or not is_main_process():
        yield
        return
    if _phase != "before_job":
        raise RuntimeError(f"rank 0 announced a second training job ({job!r}); one launch trains one model")
    broadcast_from_main(job)
    _phase = "training"
    yield
    _phase = "after_training"


def close_process_group() -> None:
    """Every rank waits for the others, then tears its process group down (a no-op on one process).

    torch asks for ``destroy_process_group`` before a trainer process exits. Without it, Gloo's worker
    threads are destroyed with the interpreter, and a rank can abort there ("terminate called without an
    active exception", SIGABRT) after printing its result: one clean-clone run failed so. The barrier
    first: rank 0 hosts the rendezvous store, which must outlive the other ranks' last message.
    """
    if world_size() == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_on_ranks(lead: Callable[[], T], follow: Callable[[Any], object], close: bool = False) -> T:
    """``lead()`` (the Prefect flow) on rank 0; ``follow(job)`` on the other ranks; every rank returns
    rank 0's result, or raises its error (followers: as ``RankZeroFailed``). One process: ``lead()``.

    ``close``: the launch is over after this call; every rank closes the process group (close_process_group)
    wherever the ranks are still in step: not when rank 0 failed inside training, where the others wait in
    a collective that will never finish and the launcher stops them.
    """
    global _phase
    if world_size() == 1:
        return lead()
    if is_main_process():
        _phase = "before_job"
        try:
            result = lead()
        except BaseException as exc:
            if _phase != "training":  # the followers wait in a broadcast, not inside a training step
                if _phase == "before_job":
                    broadcast_from_main(None)
                broadcast_from_main(RankZeroFailed(f"rank 0 failed: {type(exc).__name__}: {exc}"))
                if close:
                    close_process_group()
            raise
        if _phase == "before_job":
            broadcast_from_main(None)
        broadcast_from_main(result)
        if close:
            close_process_group()
        return result
    job = broadcast_from_main()
    if job is not None:
        logger.info("rank %d of %d: joining the training of %s", rank(), world_size(), job)
        follow(job)
    result = broadcast_from_main()
    if close:
        close_process_group()
    if isinstance(result, RankZeroFailed):
        raise result
    return result
