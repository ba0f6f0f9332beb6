"""The Lightning internals the state machine reads, each isolated here with the versions it was checked against
(PhaseEarlyStopping's override of EarlyStopping._run_early_stopping_check lives with that class)."""

from __future__ import annotations

import pytorch_lightning as pl


def resumes_inside_epoch(trainer: pl.Trainer) -> bool:
    """Whether ``fit`` resumes inside an epoch (from a checkpoint saved mid-epoch, as a preempted job's is, or
    during the epoch's end hooks): Lightning then calls no ``on_train_epoch_start`` for that epoch
    (``FitLoop.on_advance_start``), so per-epoch setup must happen in ``on_train_start``."""
    # FitLoop's restart stages are internal (checked against pytorch-lightning 2.4.0, 2.5.0, 2.5.6 and 2.6.6). They
    # came in 2.5 with the skip itself: 2.4 calls on_train_epoch_start on every resume, so it never resumes inside.
    loop = trainer.fit_loop
    return getattr(loop, "restarted_mid_epoch", False) or getattr(loop, "restarted_on_epoch_end", False)
