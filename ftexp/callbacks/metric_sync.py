"""In a distributed run, every rank must see the same value of each metric that drives the schedule.

Phase transitions (``PhaseEarlyStopping``) and the best checkpoint (``ModelCheckpoint``, whose file name usually
carries the value) are decided by each rank on its own ``trainer.callback_metrics``. A metric logged without
synchronization (``self.log(name, value)`` under DDP) is the mean over that rank's shard only: each rank then keeps a
different best checkpoint, restores a different state before a transition and, at the test stage, looks for a
best file that only exists under rank 0's name.

FTS detects this by reading the ``sync`` flag Lightning keeps for each logged value (``trainer._results``, a private
structure). ftexp checks the property itself with public APIs: the ranks all-gather the monitored values
(``trainer.callback_metrics``, ``strategy.all_gather``) at the end of every validation and compare them. This also
covers values that synchronize without the flag (torchmetrics objects) and costs one tiny collective per
validation. Where FTS only warns, ftexp stops the run: a run whose ranks disagree on the best state cannot end well.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

# all-reduced values are bitwise equal on every rank; the tolerance only keeps a different reduction order (e.g. on
# another backend) from being mistaken for a metric that is not synchronized, which differs far more
RELATIVE_TOLERANCE = 1e-6


class UnsyncedMetricError(RuntimeError):
    """A monitored metric has different values on different ranks of a distributed run."""


def check_monitored_metrics_synced(trainer: pl.Trainer, callbacks: Iterable[Callback | None]) -> None:
    """Raise :class:`UnsyncedMetricError` on every rank when a metric monitored by one of ``callbacks`` (anything
    with a ``monitor`` attribute; ``None`` entries are skipped) differs between the ranks of a fit.

    Call it at the same point on every rank (it is a collective), at the end of a validation: then the values
    checked are the ones early stopping and checkpointing are about to act on. Does nothing on one process and
    outside ``trainer.fit``. A metric no rank logged yet is not checked; one logged on some ranks only counts as
    unsynced.
    """
    if trainer.world_size < 2 or trainer.state.fn != TrainerFn.FITTING:
        return
    users: dict[str, list[str]] = {}
    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if callback is not None and monitor:
            users.setdefault(monitor, []).append(type(callback).__name__)
    if not users:
        return
    names = sorted(users)  # the same order on every rank: the gathered vectors line up
    per_rank = gather_values(trainer, names)
    unsynced = {name: values for name, values in zip(names, per_rank, strict=True) if not all_equal(values)}
    if unsynced:
        raise UnsyncedMetricError(unsynced_message(unsynced, users, trainer.current_epoch))


def gather_values(trainer: pl.Trainer, names: list[str]) -> list[list[float]]:
    """Per name, the value each rank holds in ``trainer.callback_metrics`` (NaN where a rank has none)."""
    metrics = trainer.callback_metrics
    local = torch.tensor(
        [float(metrics[name]) if name in metrics else math.nan for name in names], dtype=torch.float64
    ).to(trainer.strategy.root_device)
    with warnings.catch_warnings():
        # Lightning 2.6's all_gather calls torch.distributed.nn.functional.all_gather, which torch 2.13 deprecates:
        # a warning about Lightning's internals that the user can do nothing about
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated", category=FutureWarning)
        gathered = trainer.strategy.all_gather(local)
    gathered = gathered.reshape(trainer.world_size, len(names)).cpu()
    return [[float(value) for value in gathered[:, column]] for column in range(len(names))]


def all_equal(values: list[float]) -> bool:
    """Whether every rank holds the same value; all NaN (nobody logged it yet) counts as equal."""
    if all(math.isnan(value) for value in values):
        return True
    first = values[0]
    return all(math.isclose(value, first, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0) for value in values)


def unsynced_message(unsynced: dict[str, list[float]], users: dict[str, list[str]], epoch: int) -> str:
    lines = []
    for name, values in unsynced.items():
        shown = ", ".join(f"rank {rank}: {value:.6g}" for rank, value in enumerate(values))
        lines.append(f"'{name}' (monitored by {' and '.join(users[name])}) differs between ranks: {shown}")
    first = next(iter(unsynced))
    return (
        f"ftexp: in this {len(next(iter(unsynced.values())))}-process run, at the validation of epoch {epoch}, "
        + "; ".join(lines)
        + ". Each rank would pick its own best checkpoint and end phases on its own shard's values. Log the metric "
        f"synchronized over the whole validation split: self.log('{first}', value, sync_dist=True), or log a "
        f"torchmetrics metric object (e.g. MeanMetric) as ftexp.models.SequenceClassifier does."
    )
