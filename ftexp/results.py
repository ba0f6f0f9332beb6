"""What a run leaves behind for the sweep summary: per-epoch metrics and the ``result.json`` file, written (as the
summary's own files are) by :func:`atomic_write` (defined in :mod:`ftexp.sweeps.files`, which does not import
Lightning)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from ftexp.callbacks import FinetuningScheduler
from ftexp.sweeps.files import atomic_write


class EpochMetrics(Callback):
    """Records the epoch-level metrics (train, validation, fine-tuning depth) at the end of every training epoch,
    when Lightning has reduced them. The history travels in checkpoints, so a resumed run reports every epoch of
    the run, not only those since the resume (``first_epoch`` says where this process started)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.first_epoch = 0
        self._resumed_history: list[dict[str, float]] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_epoch = trainer.current_epoch  # > 0 after a resume
        if self._resumed_history is not None:
            self.history, self._resumed_history = self._resumed_history, None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row = {"epoch": trainer.current_epoch, **scalars(trainer.callback_metrics)}
        # an epoch cut short by a preemption is trained again after the resume: keep its final row only
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning also loads callback states for trainer.test(ckpt_path=...): only a fit takes the history over
        self._resumed_history = list(state_dict.get("history", []))


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items() if _is_scalar(value)}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def best_epoch(history: list[dict[str, float]], monitor: str, mode: str) -> dict[str, float] | None:
    """The history row with the best value of ``monitor`` (the first one on ties); ``None`` if never logged."""
    rows = [row for row in history if monitor in row and not math.isnan(row[monitor])]
    if not rows:
        return None
    pick = min if mode == "min" else max
    return pick(rows, key=lambda row: row[monitor])


def phase_summary(fts: FinetuningScheduler | None, module: pl.LightningModule, first_epoch: int) -> dict[str, Any]:
    """Phases run (start epochs, from the scheduler's transitions) and trainable weights per phase of the schedule.

    Without a scheduler the whole run is one phase training every parameter that requires grad.
    """
    numel = {name: p.numel() for name, p in module.named_parameters()}
    if fts is None or fts.schedule is None:
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        return {
            "phases_run": [{"depth": 0, "start_epoch": first_epoch}],
            "trainable_params_per_phase": {"0": trainable},
            "final_depth": 0,
        }
    # the scheduler's transitions travel in checkpoints, so they normally start at depth 1; a checkpoint without
    # them starts the record at the depth resumed from
    start_depth = fts.curr_depth - len(fts.transitions)
    starts = [{"depth": start_depth, "start_epoch": first_epoch if start_depth else 0}]
    starts += [{"depth": t["depth"], "start_epoch": t["epoch"]} for t in fts.transitions]
    per_phase = {
        str(depth): sum(numel[name] for name in fts.schedule.params_through(depth))
        for depth in range(fts.final_depth + 1)
    }
    return {
        "phases_run": starts,
        "transitions": fts.transitions,
        "trainable_params_per_phase": per_phase,
        "final_depth": fts.final_depth,
        "reached_depth": fts.curr_depth,
        "schedule_path": str(fts.schedule_path) if fts.schedule_path else None,
    }


def checkpoint_summary(best: ModelCheckpoint | None, last: Path) -> dict[str, Any]:
    score = best.best_model_score if best is not None else None
    return {
        "best_checkpoint": (best.best_model_path or None) if best is not None else None,
        "best_score": float(score) if score is not None else None,
        "last_checkpoint": str(last) if last.is_file() else None,
    }


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write atomically: a sweep summary reading the file never sees half of it."""
    atomic_write(path, lambda partial: partial.write_text(json.dumps(payload, indent=2, default=str) + "\n"))
