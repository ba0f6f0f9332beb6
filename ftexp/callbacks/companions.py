"""The callbacks ``FinetuningScheduler`` works with: phase-aware early stopping and a best-tracking checkpoint.

What the user configured is used where it can be; what is missing is added, and a plain ``EarlyStopping`` (which
would end the whole run at the first phase that stops improving) is replaced by a ``PhaseEarlyStopping`` with the
same settings, as FTS does. Each change is announced in one line.

This runs inside Lightning's ``setup`` hook loop, which iterates ``trainer.callbacks`` itself: the list is replaced by
a copy before anything changes (so that loop neither skips nor repeats a callback), and every callback put in here
has its own ``setup`` called explicitly.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, Checkpoint, EarlyStopping, ModelCheckpoint
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from ftexp.callbacks.checkpoint import EpochCheckpoint, PhaseCheckpoint
from ftexp.callbacks.early_stopping import PhaseEarlyStopping
from ftexp.schedule import ScheduleError, defaults


@dataclass
class Companions:
    early_stopping: PhaseEarlyStopping | None
    checkpoint: ModelCheckpoint | None


def connect_companions(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    stage: str,
    *,
    epoch_transitions_only: bool,
    restore_best: bool,
) -> Companions:
    """Find, take over or add the early stopping and checkpoint callbacks a scheduled run needs."""
    trainer.callbacks = list(trainer.callbacks)
    stoppers = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    early_stopping = None
    if epoch_transitions_only:
        if stoppers:
            trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, EarlyStopping)]
            rank_zero_info(
                f"ftexp: removed {type(stoppers[0]).__name__}: with epoch_transitions_only=True phases end at their "
                "max_transition_epoch only (as FTS does)."
            )
    else:
        if len(stoppers) > 1:
            raise ScheduleError("only one EarlyStopping may drive phase transitions", key="callbacks")
        if stoppers and not isinstance(stoppers[0], PhaseEarlyStopping):
            early_stopping = phase_aware_copy(stoppers[0])
            _replace(trainer, stoppers[0], early_stopping, pl_module, stage)
            rank_zero_info(
                f"ftexp: replaced EarlyStopping(monitor={early_stopping.monitor!r}, "
                f"patience={early_stopping.patience}) by a PhaseEarlyStopping with the same settings: a plain one "
                "would end the run at the first phase that stops improving."
            )
        elif stoppers:
            early_stopping = stoppers[0]
        else:
            early_stopping = PhaseEarlyStopping()
            _add(trainer, early_stopping, pl_module, stage)
            rank_zero_info(
                f"ftexp: added PhaseEarlyStopping(monitor={defaults.MONITOR!r}, mode={defaults.MODE!r}, "
                f"patience={defaults.PATIENCE})."
            )
    return Companions(early_stopping, _best_checkpoint(trainer, pl_module, stage, early_stopping, restore_best))


def phase_aware_copy(plain: EarlyStopping) -> PhaseEarlyStopping:
    """A ``PhaseEarlyStopping`` with every constructor setting of ``plain``. Lightning stores ``min_delta`` with the
    sign of the comparison (negative in ``min`` mode), so its magnitude is what is passed on."""
    settings = {}
    for name in inspect.signature(EarlyStopping.__init__).parameters:
        for attribute in (name, f"_{name}"):
            if attribute in vars(plain):
                settings[name] = vars(plain)[attribute]
                break
    settings["min_delta"] = abs(settings.get("min_delta", 0.0))
    return PhaseEarlyStopping(**settings)


def _best_checkpoint(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    stage: str,
    early_stopping: PhaseEarlyStopping | None,
    restore_best: bool,
) -> ModelCheckpoint | None:
    """The checkpoint that tracks the best state: any ModelCheckpoint with a monitor (it needs nothing
    phase-specific), else a PhaseCheckpoint watching what early stopping watches, added when restore_best needs it."""
    monitoring = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor]
    if restore_best and not monitoring:
        if not trainer.checkpoint_callbacks:
            raise ScheduleError(
                "restore_best=True needs checkpointing; enable it on the Trainer or set restore_best=False",
                key="restore_best",
                show_value=False,
            )
        monitor, mode = (
            (early_stopping.monitor, early_stopping.mode) if early_stopping else (defaults.MONITOR, defaults.MODE)
        )
        default = _lightnings_default_checkpoint(trainer)
        if default is not None:
            # Lightning's own ModelCheckpoint() writes the whole state every epoch and a monitored one would write
            # it again on every improving epoch: one EpochCheckpoint keeps both the best and last.ckpt, one write
            monitoring = [EpochCheckpoint(monitor=monitor, mode=mode, dirpath=default.dirpath)]
            _replace(trainer, default, monitoring[0], pl_module, stage)
            rank_zero_info(
                f"ftexp: replaced Lightning's default ModelCheckpoint by EpochCheckpoint(monitor={monitor!r}, "
                f"mode={mode!r}) for restore_best: the best state and last.ckpt with one write per epoch."
            )
        else:
            monitoring = [PhaseCheckpoint(monitor=monitor, mode=mode)]
            _add(trainer, monitoring[0], pl_module, stage)
            rank_zero_info(f"ftexp: added PhaseCheckpoint(monitor={monitor!r}, mode={mode!r}) for restore_best.")
    if restore_best and monitoring[0].save_top_k == 0:
        raise ScheduleError("restore_best=True needs a checkpoint with save_top_k != 0", key="restore_best")
    return monitoring[0] if monitoring else None


def _lightnings_default_checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The ``ModelCheckpoint()`` Lightning adds when the user gave no checkpoint callback (recognized as the only
    checkpoint callback, of that exact class, with every setting at its default), else ``None``."""
    if len(trainer.checkpoint_callbacks) != 1 or type(trainer.checkpoint_callbacks[0]) is not ModelCheckpoint:
        return None
    callback, reference = trainer.checkpoint_callbacks[0], ModelCheckpoint()
    settings = ("monitor", "filename", "save_last", "save_top_k", "save_weights_only", "_every_n_epochs")
    settings += ("_every_n_train_steps", "_train_time_interval", "_save_on_train_epoch_end")
    same = all(getattr(callback, name, None) == getattr(reference, name, None) for name in settings)
    return callback if same and callback.dirpath is None else None


def _add(trainer: pl.Trainer, callback: Callback, pl_module: pl.LightningModule, stage: str) -> None:
    """Add ``callback`` before the first checkpoint callback (Lightning keeps those last, so that a checkpoint saves
    the state the other callbacks reached at the same hook), or at the end."""
    checkpoints = [i for i, cb in enumerate(trainer.callbacks) if isinstance(cb, Checkpoint)]
    trainer.callbacks.insert(checkpoints[0] if checkpoints else len(trainer.callbacks), callback)
    callback.setup(trainer, pl_module, stage)


def _replace(trainer: pl.Trainer, old: Callback, new: Callback, pl_module: pl.LightningModule, stage: str) -> None:
    trainer.callbacks[trainer.callbacks.index(old)] = new
    new.setup(trainer, pl_module, stage)
