"""A callback the requeue tests add to their SLURM job (``+callbacks.hold=...``, importable there through
``PYTHONPATH``): it stands for a job too long for its allocation, without depending on how fast this machine trains.

On the job's first attempt (a run that did not resume from a checkpoint) it stops at the end of the first batch of
the given phase and waits there until a signal meant to end the attempt arrives: SIGTERM (Lightning notes it) or
the preemption signal (ftexp's PreemptionCheckpoint notes it). The run then stops at that batch boundary as it
would anywhere else. Later attempts resume from ``last.ckpt`` and are never held, so the job finishes.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from ftexp.callbacks import FinetuningScheduler
from ftexp.callbacks.preemption import PreemptionCheckpoint


class HoldFirstAttemptUntilSignalled(Callback):
    """Args:
    depth: the phase whose first training batch the first attempt waits in.
    max_wait_s: give up waiting after this long (the test then fails on the attempt's status, not by hanging).
    """

    def __init__(self, depth: int = 1, max_wait_s: float = 300.0) -> None:
        self.depth = depth
        self.max_wait_s = max_wait_s
        self._held = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self._held or trainer.ckpt_path is not None:
            return
        scheduler = next(cb for cb in trainer.callbacks if isinstance(cb, FinetuningScheduler))
        if scheduler.curr_depth < self.depth:
            return
        self._held = True
        preemption = next(cb for cb in trainer.callbacks if isinstance(cb, PreemptionCheckpoint))
        rank_zero_info(f"hold: phase {scheduler.curr_depth}, first attempt: waiting for a signal")

        def signalled() -> bool:
            return preemption.received is not None or trainer.received_sigterm

        if not wait_for_a_signal(signalled, self.max_wait_s):
            rank_zero_info(f"hold: no signal within {self.max_wait_s} s; going on")


def wait_for_a_signal(signalled: Callable[[], bool], timeout_s: float) -> bool:
    """Block until ``signalled()`` is true, waking on each signal the process receives; False after ``timeout_s``.

    Python runs signal handlers in the main thread only, and a signal the kernel delivers to another thread (torch
    has several) does not interrupt a wait there; the interpreter's wakeup fd gets a byte whichever thread takes
    it, so the wait is on that fd. A signal that arrives between the check and the wait has already written its
    byte: nothing is missed.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end)
    deadline = time.monotonic() + timeout_s
    try:
        while not signalled():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                return False
            os.read(read_end, 512)  # the handlers run before the next check
        return True
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)
