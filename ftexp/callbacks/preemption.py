"""Checkpoint at a safe point when a job is preempted or about to hit its time limit, then stop for a requeue.

Three parties can react to a SLURM job's end-of-life signals; each signal gets exactly one owner here:

- the time-limit / preemption signal (``--signal=USR2@<seconds>``, submitit's default; ``SUBMITIT_PREEMPT_SIGNAL``
  names another): submitit's handler would checkpoint and requeue *inside* the signal handler, in the middle of an
  optimizer step. :class:`PreemptionCheckpoint` replaces it while ``fit`` trains with one that only takes
  note; at the end of the current batch every rank agrees, ``last.ckpt`` is written, and the run stops with
  :class:`RequeueRequested`. The run's owner (:func:`ftexp.train.run`) records the attempt in ``result.json``
  and then hands the signal back to submitit (:meth:`PreemptionCheckpoint.hand_over`), which requeues the job.
- ``SIGTERM`` (``scontrol requeue``, preemption without a user signal, ``scancel``): Lightning's own handler stops
  the loop at the next batch boundary with ``SIGTERMException``; this callback writes ``last.ckpt`` from
  ``on_exception`` before the process exits. SLURM requeues the job itself when it was asked to.
- Lightning's SLURM auto-requeue listens on ``SIGUSR1``, which submitit's jobs are not sent, and never takes a
  signal that already has a handler: ``hardware=slurm`` and ``hardware=slurm_cpu`` leave it as it is.

A requeued job runs the same Hydra job again in the same directory, and :func:`ftexp.train.run` resumes from
``last.ckpt``: same phase, same early-stopping patience, same best checkpoint.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from ftexp.callbacks.checkpoint_writer import flush_checkpoint_writes

_SignalHandler = Any  # what signal.getsignal returns: a callable, SIG_DFL, SIG_IGN or None


class RequeueRequested(BaseException):
    """Raised at a batch boundary after the preemption signal, once ``last.ckpt`` holds the current state.

    A ``BaseException`` like ``KeyboardInterrupt``: code that catches ``Exception`` must not swallow it.
    """

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name} received: state saved to {checkpoint}; stopping to requeue")
        self.signum = signum
        self.checkpoint = checkpoint


def preemption_signal() -> signal.Signals:
    """The signal SLURM sends ahead of the time limit or a preemption: submitit's choice (USR2 unless
    ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]


class PreemptionCheckpoint(Callback):
    """Write ``<dirpath>/<filename>.ckpt`` when the job must end early, at the first point where the state is
    consistent (a batch boundary), so that a requeued run loses no more than one batch.

    Args:
        dirpath: where the run resumes from (``paths.checkpoint_dir``; ``last.ckpt`` is what
            :func:`ftexp.train.resume_path` looks for).
        filename: checkpoint file name without ``.ckpt``.
        signum: the signal to own; ``None``: :func:`preemption_signal`.
    """

    def __init__(self, dirpath: str | Path, filename: str = "last", signum: int | None = None) -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.signum = signal.Signals(signum) if signum is not None else preemption_signal()
        self.received: int | None = None
        self._previous: _SignalHandler = None

    # ------------------------------------------------------------------ the signal
    def _take_note(self, signum: int, frame: FrameType | None) -> None:
        # a signal handler runs between two bytecodes of the training step: do nothing here but remember it
        self.received = signum

    def _owns_signal(self) -> bool:
        return signal.getsignal(self.signum) == self._take_note  # bound methods compare equal, never identical

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # not in setup: Lightning records every signal's handler after setup and on_fit_start, and puts them back
        # when fit ends, which after an exception comes after on_exception; installed later, it puts back the owner
        if not self._owns_signal():
            self.received = None
            self._previous = signal.signal(self.signum, self._take_note)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._restore()

    def _restore(self) -> None:
        """Give the signal back to its owner from before training. Called on every way out of ``fit``: a handler left
        behind would be captured as the owner by the next run in this process, and would swallow a signal that
        arrives after training (during ``trainer.test``), which the owner must get. A handler installed after ours
        is someone else's and stays."""
        if self._owns_signal():
            signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)

    @property
    def can_requeue(self) -> bool:
        """Whether a handler owned the signal before training (submitit's, which requeues the job)."""
        return callable(self._previous)

    def hand_over(self) -> None:
        """Give the received signal to the handler that owned it before training (submitit's requeue-and-exit), after
        the run has recorded its state. Without one (a run outside submitit) there is nothing to do: the run has
        stopped with its checkpoint written, and a rerun in the same directory resumes."""
        if self.received is not None and callable(self._previous):
            rank_zero_info(f"ftexp: handing {signal.Signals(self.received).name} to {self._previous!r}")
            self._previous(self.received, None)

    # ------------------------------------------------------------------ safe points
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        received = self.received is not None
        if trainer.world_size > 1:  # the signal may reach the ranks a few steps apart: stop together
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        self.received = self.received if self.received is not None else int(self.signum)
        self._save(trainer)
        raise RequeueRequested(self.received, self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning calls no teardown after an exception: this is the last hook of a fit that raised
        try:
            # Lightning raises SIGTERMException at a batch boundary after SIGTERM, on every rank
            if isinstance(exception, SIGTERMException):
                self._save(trainer)
        finally:
            self._restore()

    def _save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        # the job may be requeued (and this process ended) as soon as the signal is handed over: the file must be
        # complete first, also when checkpoints are written in the background (ftexp.EpochCheckpoint)
        flush_checkpoint_writes(trainer.strategy)
        rank_zero_info(
            f"ftexp: stopping at epoch {trainer.current_epoch}, step {trainer.global_step}: state saved to {self.path}"
        )
