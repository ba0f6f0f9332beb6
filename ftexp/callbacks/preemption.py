"""Checkpoint at a safe point when a job is preempted or about to hit its time limit, then stop for a requeue.

Three parties can react to a SLURM job's end-of-life signals; each signal gets exactly one owner here:

- the time-limit / preemption signal (``--signal=USR2@<seconds>``, submitit's default; ``SUBMITIT_PREEMPT_SIGNAL``
  names another): submitit's handler would checkpoint and requeue *inside* the signal handler, in the middle of an
  optimizer step. :class:`PreemptionCheckpoint` replaces it while ``fit`` trains with one that only takes
  note; at the end of the current batch every rank agrees, ``last.ckpt`` is written, and the run stops with
  :class:`RequeueRequested`. The run's owner (:func:`ftexp.train.run`) records the attempt in ``result.json``
  and then hands the signal back to submitit (:meth:`PreemptionCheckpoint.hand_over`), which requeues the job.
- ``SIGTERM`` (``scontrol requeue``, preemption without a user signal, ``scancel``): while ``fit`` trains, the same
  callback takes it from Lightning's handler, and stops the same way, raising Lightning's ``SIGTERMException``
  (the run is recorded as interrupted); SLURM requeues the job itself when it was asked to. Lightning's handler
  would stop the loop right after the batch, also before an epoch-end or mid-epoch validation or inside one, states
  a resumed fit cannot continue exactly from (it skips that validation); it also forwards the signal to the other
  ranks, which here agree at the next batch end instead. A SIGTERM before training starts is Lightning's, and the
  ``SIGTERMException`` it leads to is followed by ``last.ckpt`` from ``on_exception``.
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
from ftexp.callbacks.lightning_internals import stopping_here_would_lose_something

# a stop waits for a batch end it can resume from exactly (no accumulation, validation or epoch end after it), but no
# longer than this many batch ends: a signal must not be lost to a run that validates after every batch
MAX_BATCHES_WAITED = 8
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
    consistent: a batch boundary after which the fit can resume exactly (no gradient accumulation, validation or
    epoch end follows it: :func:`~ftexp.callbacks.lightning_internals.stopping_here_would_lose_something`), so
    that a requeued run loses no more than a few batches, and goes on from the next batch as if it had never
    stopped (:class:`ftexp.ResumableRandomState`).

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
        self._waited = 0  # batch ends the stop has waited for since the signal came
        # the owners of the signals before training: the preemption signal's (submitit's), and SIGTERM's (Lightning's
        # handler, which would stop the loop where it cannot resume exactly: see the module docstring)
        self._previous: dict[signal.Signals, _SignalHandler] = {}

    @property
    def _signals(self) -> tuple[signal.Signals, ...]:
        return tuple(dict.fromkeys((self.signum, signal.SIGTERM)))

    # ------------------------------------------------------------------ the signals
    def _take_note(self, signum: int, frame: FrameType | None) -> None:
        # a signal handler runs between two bytecodes of the training step: do nothing here but remember it. The
        # preemption signal wins over a SIGTERM after it: the job is to be requeued, not just stopped
        if self.received != self.signum:
            self.received = signum

    def _owns(self, signum: signal.Signals) -> bool:
        return signal.getsignal(signum) == self._take_note  # bound methods compare equal, never identical

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # not in setup: Lightning records every signal's handler after setup and on_fit_start (and installs its
        # SIGTERM handler), and puts them back when fit ends, which after an exception comes after on_exception;
        # installed later, it puts back the owners
        self.received, self._waited = None, 0
        for signum in self._signals:
            if not self._owns(signum):
                self._previous[signum] = signal.signal(signum, self._take_note)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._restore()
        if self.received is not None:
            # the fit ended (its last epoch) before the stop the signal asked for: its owner gets it now, as it gets
            # a signal that comes after training (submitit requeues, Lightning stops the test that follows)
            signum, self.received = self.received, None
            signal.raise_signal(signum)

    def _restore(self) -> None:
        """Give the signals back to their owners from before training. Called on every way out of ``fit``: a handler
        left behind would be captured as the owner by the next run in this process, and would swallow a signal that
        arrives after training (during ``trainer.test``), which the owner must get. A handler installed after ours
        is someone else's and stays."""
        for signum, previous in self._previous.items():
            if self._owns(signum):
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    @property
    def can_requeue(self) -> bool:
        """Whether a handler owned the preemption signal before training (submitit's, which requeues the job)."""
        return callable(self._previous.get(self.signum))

    def hand_over(self) -> None:
        """Give the received signal to the handler that owned it before training (submitit's requeue-and-exit), after
        the run has recorded its state. Without one (a run outside submitit) there is nothing to do: the run has
        stopped with its checkpoint written, and a rerun in the same directory resumes."""
        owner = self._previous.get(self.signum)
        if self.received == self.signum and callable(owner):
            rank_zero_info(f"ftexp: handing {signal.Signals(self.received).name} to {owner!r}")
            owner(self.received, None)

    # ------------------------------------------------------------------ safe points
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        received = self.received is not None
        if trainer.world_size > 1:  # the signal may reach the ranks a few steps apart: stop together
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        if stopping_here_would_lose_something(trainer) and self._waited < MAX_BATCHES_WAITED:
            self._waited += 1  # the same decision on every rank: it depends on the loop's counters only
            return
        self.received = self.received if self.received is not None else int(self.signum)
        self._save(trainer)
        # (hand_over gives the preemption signal on; nothing is delivered again at the end of fit)
        if self.received != self.signum:  # SIGTERM (when it is not the preemption signal too)
            raise SIGTERMException()  # Lightning's own way out after SIGTERM: the run is recorded as interrupted
        raise RequeueRequested(self.received, self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning calls no teardown after an exception: this is the last hook of a fit that raised
        try:
            # Lightning raises SIGTERMException after a SIGTERM that came before training started (its handler had it
            # then); the one raised by on_train_batch_end comes with the checkpoint already written
            if isinstance(exception, SIGTERMException) and self.received != signal.SIGTERM:
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
