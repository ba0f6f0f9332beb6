"""Keeping DistributedDataParallel's gradient reducer in step with the thawed parameter set.

DDP registers only the parameters that require grad when it wraps the model. A parameter thawed later is never
all-reduced: each rank applies its own local gradient and the replicas drift apart without any error (the public
FTS package has exactly this bug). ftexp re-wraps the model whenever the trainable set changes.
"""

from __future__ import annotations

import gc

import pytorch_lightning as pl
from pytorch_lightning.strategies import DDPStrategy
from torch.nn.parallel import DistributedDataParallel


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
