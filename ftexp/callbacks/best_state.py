"""In-memory copy of the best checkpoint's training state, so restore-best needs no disk read.

Only what can have changed since the checkpoint is kept: the parameters trainable at that time, all buffers,
optimizer and scheduler state, plus the pre-thaw value of every parameter thawed after it ("stash"). Frozen
parameters never change, so this is an exact copy of the checkpoint's state at a fraction of its size early on.
The file on disk stays the source of truth: after a resume there is no snapshot and the file is read.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn


def clone_to_cpu(obj: Any) -> Any:
    """Deep-copy every tensor in a nested state dict to CPU memory (the live tensors keep training)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: clone_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(clone_to_cpu(v) for v in obj)
    return obj


@dataclass
class BestStateSnapshot:
    """A :class:`~ftexp.callbacks.restore.RestoreSource` held in memory."""

    depth: int
    tensors: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    scheduler_states: list[dict[str, Any]]
    stash: dict[str, torch.Tensor] = field(default_factory=dict)
    kind: str = "memory"

    @classmethod
    def capture(
        cls,
        module: nn.Module,
        depth: int,
        optimizer: torch.optim.Optimizer,
        schedulers: list[Any],
    ) -> BestStateSnapshot:
        tensors = {n: clone_to_cpu(p) for n, p in module.named_parameters() if p.requires_grad}
        tensors.update({n: clone_to_cpu(b) for n, b in module.named_buffers()})
        return cls(
            depth=depth,
            tensors=tensors,
            optimizer_state=clone_to_cpu(optimizer.state_dict()),
            scheduler_states=[clone_to_cpu(s.state_dict()) for s in schedulers],
        )

    @classmethod
    def capture_recorded(
        cls, trainer: pl.Trainer, pl_module: pl.LightningModule, depth: int
    ) -> tuple[BestStateSnapshot, dict[str, Any]]:
        """Capture the Trainer's current state, with the record transitions' readers (and the benchmark) use: the
        epoch, depth, bytes held and seconds taken, the cost restore-from-memory moves to checkpoint time."""
        started = time.perf_counter()
        snapshot = cls.capture(
            pl_module, depth, trainer.optimizers[0], [c.scheduler for c in trainer.lr_scheduler_configs]
        )
        record = {
            "epoch": trainer.current_epoch,
            "depth": depth,
            "bytes": snapshot.nbytes,
            "seconds": time.perf_counter() - started,
        }
        return snapshot, record

    def stash_before_thaw(self, module_params: dict[str, nn.Parameter], names: list[str]) -> None:
        """Remember the value of parameters about to train for the first time since this snapshot."""
        for name in names:
            if name not in self.tensors and name not in self.stash:
                self.stash[name] = clone_to_cpu(module_params[name])

    def load_into(self, module: nn.Module, optimizer: torch.optim.Optimizer, schedulers: list[Any]) -> None:
        self.load_weights_into(module)
        self.load_optimizer_state_into(optimizer)
        for scheduler, state in zip(schedulers, copy.deepcopy(self.scheduler_states), strict=True):
            scheduler.load_state_dict(state)

    def load_weights_into(self, module: nn.Module) -> None:
        state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        with torch.no_grad():
            for name, value in (*self.tensors.items(), *self.stash.items()):
                state[name].copy_(value, non_blocking=True)

    def load_optimizer_state_into(self, optimizer: torch.optim.Optimizer) -> None:
        """Load the optimizer state without sharing memory with the snapshot.

        ``load_state_dict`` moves tensors to each parameter's device; on the CPU that is a no-op returning the same
        tensor, and the next step would update the snapshot in place. Only such aliased tensors are cloned, so a
        GPU run copies each tensor once (host to device) instead of twice.
        """
        optimizer.load_state_dict(self.optimizer_state)
        ours = {t.data_ptr() for t in _tensors(self.optimizer_state)}
        for state in optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.data_ptr() in ours:
                    state[key] = value.clone()

    @property
    def nbytes(self) -> int:
        """Bytes held: weights, buffers, stash, optimizer and scheduler state."""
        held = (*self.tensors.values(), *self.stash.values(), *_tensors(self.optimizer_state))
        held += tuple(_tensors(self.scheduler_states))
        return sum(t.numel() * t.element_size() for t in held)


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v)]
    return []
