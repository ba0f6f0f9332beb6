"""The Lightning internals the state machine reads, each isolated here with the versions it was checked against
(PhaseEarlyStopping's override of EarlyStopping._run_early_stopping_check lives with that class)."""

from __future__ import annotations

import pytorch_lightning as pl
from lightning_fabric.utilities.data import _set_sampler_epoch
from packaging.version import Version


def resumes_inside_epoch(trainer: pl.Trainer) -> bool:
    """Whether ``fit`` resumes inside an epoch (from a checkpoint saved mid-epoch, as a preempted job's is, or
    during the epoch's end hooks): Lightning then calls no ``on_train_epoch_start`` for that epoch
    (``FitLoop.on_advance_start``), so per-epoch setup must happen in ``on_train_start``."""
    # FitLoop's restart stages are internal (checked against pytorch-lightning 2.4.0, 2.5.0, 2.5.6 and 2.6.6). They
    # came in 2.5 with the skip itself: 2.4 calls on_train_epoch_start on every resume, so it never resumes inside.
    loop = trainer.fit_loop
    return getattr(loop, "restarted_mid_epoch", False) or getattr(loop, "restarted_on_epoch_end", False)


def resumes_mid_epoch(trainer: pl.Trainer) -> bool:
    """Whether ``fit`` resumes inside an epoch's batch loop (not during its end hooks): the epoch has batches, or its
    validation, still to run. Internal like :func:`resumes_inside_epoch` (False on 2.4, as there)."""
    return getattr(trainer.fit_loop, "restarted_mid_epoch", False)


# Lightning 2.5.0 (pytorch-lightning #20379, "Ensure restarting from checkpoints leads to consistent internal
# counters") resumes after the batch whose on_train_batch_end wrote the checkpoint; before it, the batch counters
# saved there (completed, one behind processed) make the resumed epoch train that batch a second time, so no resume
# inside an epoch can repeat the uninterrupted fit.
RESUMES_AFTER_THE_CHECKPOINTED_BATCH = Version(pl.__version__) >= Version("2.5.0")


def batches_resumed_after(trainer: pl.Trainer) -> int:
    """How many batches of the current epoch a fit resumed from a checkpoint written now counts as trained (and so
    does not fetch again): those processed so far; 0 once the epoch's batch loop is over (a checkpoint written in
    ``on_train_epoch_end``: the resumed fit starts the next epoch)."""
    epochs = trainer.fit_loop.epoch_progress.current
    if epochs.processed >= epochs.started:
        return 0
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def restart_training_iterator_at(trainer: pl.Trainer, batches: int) -> bool:
    """Create the fit's training iterator again and fetch, then drop, its first ``batches`` batches, so that the
    loop's next batch is batch ``batches`` of the order the iterator drew. Returns False, having changed nothing,
    when the iterator would fetch ahead (a loader without a length): the batch it fetched ahead would come first.

    The dropped batches are loaded (by the DataLoader's workers, when it has some), which costs their loading time
    but no training, and keeps everything the workers draw as it was: each worker processes the same batches as in
    the uninterrupted fit. ``FitLoop._data_fetcher`` and the fetcher's ``iterator`` (the CombinedLoader, which counts
    the dropped batches against ``limit_train_batches``) are internal: checked against pytorch-lightning 2.6.6.
    """
    fetcher = trainer.fit_loop._data_fetcher
    if fetcher is None or getattr(fetcher, "length", None) is None:
        return False
    # Lightning tells the samplers their epoch (a DistributedSampler's order depends on it) only after this point
    # (FitLoop.on_advance_start): the order must be the epoch's already (lightning_fabric's helper, internal too)
    for loader in trainer.fit_loop._combined_loader.flattened:
        _set_sampler_epoch(loader, trainer.fit_loop.epoch_progress.current.processed)
    iter(fetcher)
    for _ in range(batches):
        next(fetcher.iterator)
    return True


def stopping_here_would_lose_something(trainer: pl.Trainer) -> bool:
    """Whether a fit stopped (and checkpointed) at the end of the current training batch could not go on exactly
    as the uninterrupted one: the batch is the epoch's last (the epoch's end hooks have not run), gradients are
    being accumulated (they are in no checkpoint), or a validation follows it (a resumed fit skips that validation:
    Lightning fast-forwards its progress to the evaluation's end). The validation rule is Lightning's own
    (``_TrainingEpochLoop._should_check_val_fx``: every ``val_check_interval`` batches of the epoch or, with
    ``check_val_every_n_epoch=None``, of the run; when early stopping asks to stop); internal, checked against
    pytorch-lightning 2.4.0 and 2.6.6."""
    loop = trainer.fit_loop.epoch_loop
    if loop.batch_progress.is_last_batch or loop._should_accumulate():
        return True
    return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))


def training_iterator_exists(trainer: pl.Trainer) -> bool:
    """Whether the fit loop has created its training iterator already: before ``on_fit_start`` only when something
    asked for the number of training batches early (``trainer.estimated_stepping_batches`` in
    ``configure_optimizers`` runs ``FitLoop.setup_data``). ``_data_fetcher`` is internal (2.4.0 and 2.6.6)."""
    fetcher = trainer.fit_loop._data_fetcher
    return fetcher is not None and getattr(fetcher, "iterator", None) is not None
