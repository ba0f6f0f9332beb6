"""Callbacks that tests add to ``python -m ftexp`` runs through Hydra (``+callbacks.<name>={_target_: ...}``, with
the repository root on ``PYTHONPATH``) to see what each rank of a multi-process run saw, or to make one rank fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from ftexp import FinetuningScheduler, PhaseEarlyStopping

MONITORED = ("val_loss", "val_acc", "train_loss")


class RankProbe(Callback):
    """Writes what each rank saw: ``<out_dir>/fit_rank<N>.json`` at the end of the fit (per epoch the metrics that
    rank acts on, its phase, its early-stopping state and best checkpoint; then its transitions) and
    ``<out_dir>/test_rank<N>.json`` at the end of the test (the checkpoint it tested, its test metrics). Two files,
    because under ddp_spawn the test runs in new processes, with a fresh copy of this callback.

    Lightning calls early stopping and checkpointing after the other callbacks at the end of a training epoch, so
    an epoch's row holds their state from the epoch before."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.epochs: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fts, stopper, checkpoint = self._engine(trainer)
        metrics = trainer.callback_metrics
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                **{name: float(metrics[name]) for name in MONITORED if name in metrics},
                "depth": fts.curr_depth,
                "stopping_wait_count": stopper.wait_count if stopper is not None else None,
                "stopping_best_score": float(stopper.best_score) if stopper is not None else None,
                "best_checkpoint": checkpoint.best_model_path,
            }
        )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fts, _, checkpoint = self._engine(trainer)
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            "epochs": self.epochs,
            "transitions": [{k: v for k, v in t.items() if k != "seconds"} for t in fts.transitions],
            "best_checkpoint": checkpoint.best_model_path,
        }
        self._write(f"fit_rank{trainer.global_rank}.json", record)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test")}
        record = {"rank": trainer.global_rank, "checkpoint": trainer.ckpt_path, **metrics}
        self._write(f"test_rank{trainer.global_rank}.json", record)

    @staticmethod
    def _engine(trainer: pl.Trainer) -> tuple[FinetuningScheduler, PhaseEarlyStopping | None, ModelCheckpoint]:
        (fts,) = (cb for cb in trainer.callbacks if isinstance(cb, FinetuningScheduler))
        stoppers = [cb for cb in trainer.callbacks if isinstance(cb, PhaseEarlyStopping)]
        (checkpoint,) = (cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor)
        return fts, (stoppers[0] if stoppers else None), checkpoint

    def _write(self, name: str, record: dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / name).write_text(json.dumps(record, indent=1))


class FailOnRank(Callback):
    """Raises on one rank only, when the test stage starts (where a missing best checkpoint used to fail rank 1)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == self.rank:
            raise RuntimeError(f"injected failure on rank {self.rank} at the test stage")
