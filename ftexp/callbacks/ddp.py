"""Keeping DistributedDataParallel's gradient reducer in step with the thawed parameter set.

DDP registers only the parameters that require grad when it wraps the model. A parameter thawed later is never
all-reduced: each rank applies its own local gradient and the replicas drift apart without any error (the public
FTS package has exactly this bug). ftexp re-wraps the model whenever the trainable set changes.
"""

from __future__ import annotations

import atexit
import gc

import pytorch_lightning as pl
import torch.distributed
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import DDPStrategy
from torch.nn.parallel import DistributedDataParallel

_destroy_registered = False


def trainable_names(module: pl.LightningModule) -> frozenset[str]:
    return frozenset(name for name, p in module.named_parameters() if p.requires_grad)


def rewrap_ddp(trainer: pl.Trainer) -> bool:
    """Re-create the DDP wrapper so that its reducer covers the currently trainable parameters.

    Uses ``DDPStrategy.configure_ddp`` (public, checked against pytorch-lightning 2.6), which wraps
    ``strategy.model`` and expects it to be the bare LightningModule. Building DDP broadcasts rank 0's weights and
    buffers, so every rank must call this at the same transition. Returns whether a re-wrap happened.
    """
    strategy = trainer.strategy
    if not isinstance(strategy, DDPStrategy) or not isinstance(strategy.model, DistributedDataParallel):
        return False
    old = strategy.model
    strategy.model = old.module
    del old
    gc.collect()  # drop the old reducer (and its autograd hooks) before the new one registers its own
    strategy.configure_ddp()
    return True


class DestroyProcessGroupAtExit(Callback):
    """Registers :func:`destroy_process_group_at_exit` in every process a fit or test runs in (a rank process of
    ddp_spawn is new for each stage): ``ftexp.train`` gives it to every run."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        destroy_process_group_at_exit()


def destroy_process_group_at_exit() -> None:
    """Destroy this process's default process group when the interpreter exits, as Lightning does for NCCL only.

    Why: a rank process that exits with its gloo group alive leaves the group's C++ threads to the interpreter's
    final teardown, where a ddp_spawn rank process was seen to abort ("terminate called without an active
    exception", SIGABRT, after a completed fit), which the launcher reports as the run's failure. Destroying the
    group is local to the process (no collective), so each rank may do it whenever it exits. Registered once per
    process, from the first fit or test stage that finds a group initialized."""
    global _destroy_registered
    if _destroy_registered or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    _destroy_registered = True
    atexit.register(_destroy_if_initialized)


def _destroy_if_initialized() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
