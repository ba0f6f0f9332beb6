"""The checkpoint callbacks of a scheduled run.

- :class:`PhaseCheckpoint`: a ``ModelCheckpoint`` with restore-best's defaults (FTS's ``FTSCheckpoint``), added by
  the scheduler when no configured checkpoint monitors a metric.
- :class:`EpochCheckpoint`: the best state *and* ``last.ckpt`` with one full write per epoch at most, written off
  the training thread; what every Hydra scenario uses, so that compared scenarios pay the same for checkpoints.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from ftexp.callbacks.checkpoint_writer import (
    BackgroundCheckpointIO,
    CheckpointWriteError,
    flush_checkpoint_writes,
    raise_if_a_write_failed,
    remove_partial_files,
)
from ftexp.schedule import defaults


class PhaseCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with the defaults restore-best needs: monitor ``val_loss`` (``min``), keep the best.

    Any monitoring ``ModelCheckpoint`` works with :class:`~ftexp.FinetuningScheduler`; this one only saves typing
    and matches FTS's ``FTSCheckpoint`` defaults. For resumable runs use :class:`EpochCheckpoint`: since Lightning
    2.6 a monitored checkpoint rewrites ``last.ckpt`` only when it saves a new best, so its ``last.ckpt`` is not the
    latest state.
    """

    def __init__(self, monitor: str = defaults.MONITOR, mode: str = defaults.MODE, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=mode, **kwargs)


class EpochCheckpoint(PhaseCheckpoint):
    """The best state (by ``monitor``) and ``last.ckpt`` (the latest state, every epoch), at most one full write
    per epoch, each file written in the background and complete or not at all.

    Lightning's way to get both is two callbacks (or ``save_last``), which write the same state twice on every
    improving epoch, on the training thread. Here, when an epoch is a new best its file is written once and
    ``last.ckpt`` is made a hard link to it; otherwise only ``last.ckpt`` is written. Both are saved at the end of the
    training epoch (``save_on_train_epoch_end``), after validation and after the other callbacks recorded the
    epoch, so that the two names hold the same state; a validation inside the epoch (``val_check_interval`` < 1)
    is compared, and saved if it is a new best, when it ends.

    With ``background=True`` (the default) the strategy's plain ``TorchCheckpointIO`` is replaced during ``fit``
    by :class:`~ftexp.callbacks.checkpoint_writer.BackgroundCheckpointIO` (for every checkpoint of the fit, the
    preemption one included; the plain one is put back when ``fit`` ends): the training thread copies the state to
    CPU memory and the next epoch starts while the file is written. Pending writes are finished before ``fit``
    returns or raises, before a checkpoint file is read, and before a preempted job hands over to be requeued; a
    failed write stops the run, on every rank, with :class:`CheckpointWriteError`. Where that writer does not write
    (``background=False``, a strategy with its own checkpoint plugin such as FSDP's, a remote ``dirpath``),
    ``last.ckpt`` is always a full write of its own: only a writer that replaces files by renaming may give the best
    file a second name.

    Lightning internals: it overrides or calls ModelCheckpoint's ``_save_checkpoint``, ``_save_last_checkpoint``,
    ``_save_topk_checkpoint``, ``_remove_checkpoint``, ``_should_skip_saving_checkpoint``,
    ``_should_save_on_train_epoch_end``, ``_monitor_candidates`` and ``_every_n_epochs``, and reads
    ``fit_loop.epoch_loop.batch_progress.is_last_batch`` (checked against pytorch-lightning 2.4.0 and 2.6.6; CI runs
    its tests on both).
    """

    def __init__(
        self, monitor: str = defaults.MONITOR, mode: str = defaults.MODE, background: bool = True, **kwargs: Any
    ) -> None:
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_on_train_epoch_end", True)
        super().__init__(monitor=monitor, mode=mode, **kwargs)
        self.background = background
        self._full_write: tuple[int, int, str] | None = None  # (epoch, global step, file) of the latest full write
        self._last_named_step: int | None = None  # global step of the state last.ckpt holds
        self._replaced_io: TorchCheckpointIO | None = None  # the strategy's own plugin while ours writes
        self._removals: list[str] | None = None  # removals held back until last.ckpt names the new state

    # ------------------------------------------------------------------ set-up and tear-down
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        if self.background and type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            self._replaced_io = trainer.strategy.checkpoint_io
            trainer.strategy.checkpoint_io = BackgroundCheckpointIO(self._replaced_io)
        if trainer.is_global_zero and self.dirpath and _is_local_file_protocol(str(self.dirpath)):
            for leftover in remove_partial_files(Path(self.dirpath)):
                rank_zero_info(f"ftexp: removed {leftover}, a checkpoint an earlier process did not finish writing")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise_if_a_write_failed(trainer.strategy)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise_if_a_write_failed(trainer.strategy)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # finish what is queued (the run may be resumed from it) without letting a write error replace the
        # exception that ended the run
        super().on_exception(trainer, pl_module, exception)
        try:
            flush_checkpoint_writes(trainer.strategy)
        except CheckpointWriteError as error:
            rank_zero_info(f"ftexp: {error}")
        finally:
            self._put_back_io(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # (Lightning calls it when fit ended normally)
            try:
                flush_checkpoint_writes(trainer.strategy, all_ranks=True)
            finally:
                self._put_back_io(trainer)

    def _put_back_io(self, trainer: pl.Trainer) -> None:
        """After ``fit`` a ``trainer.save_checkpoint`` writes synchronously again, as its caller expects."""
        if self._replaced_io is not None and isinstance(trainer.strategy.checkpoint_io, BackgroundCheckpointIO):
            trainer.strategy.checkpoint_io.wait()
            trainer.strategy.checkpoint_io = self._replaced_io
        self._replaced_io = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning's would save last.ckpt here whenever none was saved, fast_dev_run included; ours names the state
        # after every epoch, so only a fit that stopped between epochs (max_steps) has a newer state to save
        if self.save_last and self._last_named_step != trainer.global_step and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    # ------------------------------------------------------------------ one write per epoch
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._should_save_on_train_epoch_end(trainer):
            self._save_epoch(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_epoch(trainer)
            return
        inside_the_epoch = not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if inside_the_epoch and not self._should_skip_saving_checkpoint(trainer):
            # (val_check_interval < 1) its best is kept now, the epoch-end state at the end of the epoch
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_epoch(self, trainer: pl.Trainer) -> None:
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.save_last:
            # part of the saved state: the best file, which last.ckpt may become, must already name it
            self.last_model_path = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        self._removals = []
        try:
            if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
                self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
        finally:
            # the superseded best goes only once last.ckpt names the new state: a crash in between must not leave
            # last.ckpt pointing (by best_model_path) at a file that is gone
            removals, self._removals = self._removals, None
            for path in removals:
                super()._remove_checkpoint(trainer, path)

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if self._removals is not None:
            self._removals.append(filepath)
        else:
            super()._remove_checkpoint(trainer, filepath)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._full_write = (trainer.current_epoch, trainer.global_step, filepath)

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        if not self.save_last:
            return
        path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        self.last_model_path, self._last_named_step = path, trainer.global_step
        written = self._full_write
        same_state = written and written[:2] == (trainer.current_epoch, trainer.global_step) and written[2] != path
        if same_state and self._links_safely(trainer, path):
            self._link(trainer, written[2], path)  # this state was just written as the new best
        else:
            self._save_checkpoint(trainer, path)

    @staticmethod
    def _links_safely(trainer: pl.Trainer, path: str) -> bool:
        """Whether ``path`` may become a second name of the best file: only when ftexp's writer writes every file
        (it replaces a file by renaming a new one over it; a writer that writes into the existing file would
        change the best file through its other name) and the file system is local."""
        return isinstance(trainer.strategy.checkpoint_io, BackgroundCheckpointIO) and _is_local_file_protocol(path)

    def _link(self, trainer: pl.Trainer, target: str, path: str) -> None:
        if not trainer.is_global_zero:
            return
        trainer.strategy.checkpoint_io.link_checkpoint(target, path)
        for logger in trainer.loggers:
            logger.after_save_checkpoint(weakref.proxy(self))
