"""Where restore-best reads the best state from, behind one small interface.

Two sources give the same state: the in-memory :class:`~ftexp.callbacks.best_state.BestStateSnapshot` taken when
the best checkpoint was written (``restore_best_from="memory"``), and that checkpoint file
(``restore_best_from="disk"``, FTS's way, and the only source after a resume). The state machine picks one and asks
it to load itself; it never needs to know which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from torch import nn

from ftexp.callbacks.checkpoint_writer import flush_checkpoint_writes


class RestoreSource(Protocol):
    kind: str  # "memory" or "disk": what transition records report
    depth: int  # the phase the best state was saved in

    @property
    def nbytes(self) -> int | None:
        """Bytes this restore reads (None: unknown)."""

    def load_into(self, module: nn.Module, optimizer: torch.optim.Optimizer, schedulers: list[Any]) -> None:
        """Load weights, optimizer and LR-scheduler state; the optimizer/scheduler layout must already match."""


@dataclass
class CheckpointFileSource:
    """The best checkpoint file, read through the strategy (so every rank reads what rank 0 wrote)."""

    path: str
    checkpoint: dict[str, Any]
    depth: int
    kind: str = "disk"

    @classmethod
    def read(cls, strategy: pl.strategies.Strategy, path: str, state_key: str) -> CheckpointFileSource:
        # rank 0 may still be writing the file in the background (ftexp.EpochCheckpoint): every rank waits for it
        flush_checkpoint_writes(strategy, all_ranks=True)
        checkpoint = strategy.load_checkpoint(path)
        return cls(path, checkpoint, int(checkpoint["callbacks"][state_key]["curr_depth"]))

    @property
    def nbytes(self) -> int | None:
        """The file's size; ``None`` where the file system cannot say (the path may be any fsspec URL)."""
        try:
            return int(get_filesystem(self.path).size(self.path))
        except (OSError, NotImplementedError):
            return None

    def load_into(self, module: nn.Module, optimizer: torch.optim.Optimizer, schedulers: list[Any]) -> None:
        module.load_state_dict(self.checkpoint["state_dict"])
        optimizer.load_state_dict(self.checkpoint["optimizer_states"][0])
        for scheduler, state in zip(schedulers, self.checkpoint.get("lr_schedulers", []), strict=True):
            scheduler.load_state_dict(state)
