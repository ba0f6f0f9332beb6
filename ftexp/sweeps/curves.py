"""Per-epoch curves of a job: every scalar its TensorBoard event files hold, by epoch; ``result.json``'s
``history`` when there are no event files (another logger, or files removed).

TensorBoard steps are global training steps. Lightning logs an ``epoch`` scalar with every metric, so a step maps to
the epoch of the first ``epoch`` point at or after it: validation metrics land on their epoch's last step, and
LearningRateMonitor's ``logging_interval: epoch`` values on its first. A step past the last ``epoch`` point belongs
to the epoch still running. When an epoch was logged twice (a job resumed from an earlier ``last.ckpt``), the later
value wins.

Learning rates are read per parameter group (:meth:`Curves.learning_rates`): LearningRateMonitor names a group's lr
after the optimizer or the scheduler that drives it (``lr-AdamW/pg3``, then ``phase2_cosine/pg3`` once a phase
replaced the scheduler), so the names of one group are joined into one series, ``pg3``.

Reading event files never prints TensorBoard's INFO lines (:func:`read_tensorboard`).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ftexp.record import EpochRow
from ftexp.sweeps.runs import Job

Points = list[tuple[int, float]]  # (epoch, value), sorted by epoch

# LearningRateMonitor names: lr-<Optimizer>[/pg<N> or /<group name>], or <scheduler name>/pg<N> for a named
# scheduler (a schedule's new_lr_scheduler); its momentum and weight decay values are not learning rates
_LR_TAG = re.compile(r"^(lr-.+|[^/]+/pg\d+)$")
_NOT_LR = ("-momentum", "-weight_decay")


@dataclass
class Curves:
    scalars: dict[str, Points] = field(default_factory=dict)
    source: str | None = None  # "tensorboard", "result.json" or None (nothing found)

    def lr_tags(self) -> list[str]:
        return [tag for tag in self.scalars if is_lr_tag(tag)]

    def learning_rates(self) -> dict[str, Points]:
        """The lr of each parameter group by epoch, one series per group whatever LearningRateMonitor called it:
        ``{"pg1": [...], "pg2": [...]}`` in group order (a group the optimizer names keeps its name, the lr of an
        optimizer with one group is ``pg1``). At an epoch logged under several names (``result.json`` files whose
        history kept a replaced scheduler's last lrs), the name that appeared last, the newer scheduler's, wins."""
        first_epoch = {tag: self.scalars[tag][0][0] for tag in self.lr_tags() if self.scalars[tag]}
        by_group: dict[str, dict[int, float]] = {}
        for tag in sorted(first_epoch, key=first_epoch.__getitem__):  # older names first, newer ones overwrite
            series = by_group.setdefault(lr_group(tag), {})
            series.update(self.scalars[tag])
        return {group: sorted(by_group[group].items()) for group in sorted(by_group, key=group_order)}


def is_lr_tag(tag: str) -> bool:
    return bool(_LR_TAG.match(tag)) and not tag.endswith(_NOT_LR)


def lr_group(tag: str) -> str:
    """The parameter group a LearningRateMonitor name is about: ``phase2_cosine/pg3`` -> ``pg3``; ``lr-AdamW``
    (an optimizer with a single group) -> ``pg1``."""
    return tag.rpartition("/")[2] if "/" in tag else "pg1"


def group_index(group: str) -> int | None:
    """The optimizer's index of a group of :meth:`Curves.learning_rates`: ``pg1`` -> 0; ``None`` for a named one."""
    number = group[2:] if group.startswith("pg") else ""
    return int(number) - 1 if number.isdigit() else None


def group_order(group: str) -> tuple[int, int, str]:
    """A sort key: ``pg2`` before ``pg10``, named groups last."""
    index = group_index(group)
    return (0, index, "") if index is not None else (1, 0, group)


def event_dirs(job_dir: Path) -> list[Path]:
    """The directories under ``job_dir`` holding TensorBoard event files (``tensorboard/``, ``version_N/``)."""
    return sorted({path.parent for path in job_dir.rglob("events.out.tfevents.*") if "checkpoints" not in path.parts})


def read_tensorboard(directories: Iterable[Path]) -> dict[str, Points]:
    """Every scalar of the event files in ``directories``, by epoch (see the module docstring)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    by_tag: dict[str, list[tuple[int, float]]] = {}  # tag -> (step, value) in file order
    with _quiet_tensorboard_info():
        for directory in directories:
            accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0})
            accumulator.Reload()
            for tag in accumulator.Tags()["scalars"]:
                by_tag.setdefault(tag, []).extend((event.step, event.value) for event in accumulator.Scalars(tag))
    epoch_at = sorted(by_tag.pop("epoch", []))
    steps, epochs = [step for step, _ in epoch_at], [int(epoch) for _, epoch in epoch_at]

    def epoch_of(step: int) -> int:
        if not steps:
            return step
        index = bisect.bisect_left(steps, step)
        return epochs[index] if index < len(steps) else epochs[-1] + 1

    scalars = {}
    for tag, points in by_tag.items():
        values = {epoch_of(step): value for step, value in points}
        scalars[tag] = sorted(values.items())
    return scalars


class _DropInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextmanager
def _quiet_tensorboard_info() -> Iterator[None]:
    """While event files are read: TensorBoard's reader logs a "Directory watcher advancing from <file> to <file>"
    INFO line for every event file, on its ``tensorboard`` logger; in a Hydra process, whose logging prints INFO,
    that is a screen of noise under the sweep's table. A filter on that one logger, for that time, drops its INFO
    and DEBUG records; no level changes, and its warnings and errors still show."""
    logger, quiet = logging.getLogger("tensorboard"), _DropInfo()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def history_curves(history: list[EpochRow]) -> dict[str, Points]:
    """``result.json``'s per-epoch ``history`` rows as curves."""
    scalars: dict[str, dict[int, float]] = {}
    for row in history:
        if not isinstance(row.epoch, int):
            continue
        for tag, value in row.metrics.items():
            if isinstance(value, int | float):
                scalars.setdefault(tag, {})[row.epoch] = float(value)
    return {tag: sorted(points.items()) for tag, points in scalars.items()}


def job_curves(job: Job) -> Curves:
    """The job's curves from its event files, else from ``result.json``'s history."""
    directories = event_dirs(job.dir)
    if directories:
        scalars = read_tensorboard(directories)
        if scalars:
            return Curves(scalars, "tensorboard")
    history = job.result.history if job.result is not None else None
    if history:
        return Curves(history_curves(history), "result.json")
    return Curves()


def load_curves(jobs: Iterable[Job]) -> dict[Path, Curves]:
    """:func:`job_curves` of each job, by job dir."""
    return {job.dir: job_curves(job) for job in jobs}


def phase_starts(job: Job, curves: Curves | None = None) -> dict[int, int]:
    """The epoch at which each later phase began, by depth: ``result.json``'s transitions, and the epochs where the
    logged ``finetuning_depth`` rises (which also covers attempts before a resume, and jobs still running);
    ``{1: 3, 2: 6}``. The transitions win where both say something."""
    depth = (curves.scalars if curves else {}).get("finetuning_depth", [])
    starts = {int(after): epoch for (_, before), (epoch, after) in itertools.pairwise(depth) if after > before}
    transitions = (job.result.transitions if job.result is not None else None) or []
    starts |= {t.depth: t.epoch for t in transitions if isinstance(t.depth, int) and isinstance(t.epoch, int)}
    return dict(sorted(starts.items()))
