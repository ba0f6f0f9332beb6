"""Per-epoch curves of a job: every scalar its TensorBoard event files hold, by epoch; ``result.json``'s
``history`` when there are no event files (another logger, or files removed).

TensorBoard steps are global training steps. Lightning logs an ``epoch`` scalar with every metric, so a step maps to
the epoch of the first ``epoch`` point at or after it: validation metrics land on their epoch's last step, and
LearningRateMonitor's ``logging_interval: epoch`` values on its first. A step past the last ``epoch`` point belongs
to the epoch still running. When an epoch was logged twice (a job resumed from an earlier ``last.ckpt``), the later
value wins.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftexp.record import EpochRow
from ftexp.sweeps.runs import Job

Points = list[tuple[int, float]]  # (epoch, value), sorted by epoch

# LearningRateMonitor names: lr-<Optimizer>[/pg<N> or /<group name>], or <scheduler name>/pg<N> for a named
# scheduler (a schedule's new_lr_scheduler); its momentum values (<name>-momentum) are not learning rates
_LR_TAG = re.compile(r"^(lr-.+|[^/]+/pg\d+)$")


@dataclass
class Curves:
    scalars: dict[str, Points] = field(default_factory=dict)
    source: str | None = None  # "tensorboard", "result.json" or None (nothing found)

    def lr_tags(self) -> list[str]:
        return [tag for tag in self.scalars if is_lr_tag(tag)]


def is_lr_tag(tag: str) -> bool:
    return bool(_LR_TAG.match(tag)) and not tag.endswith("-momentum")


def event_dirs(job_dir: Path) -> list[Path]:
    """The directories under ``job_dir`` holding TensorBoard event files (``tensorboard/``, ``version_N/``)."""
    return sorted({path.parent for path in job_dir.rglob("events.out.tfevents.*") if "checkpoints" not in path.parts})


def read_tensorboard(directories: Iterable[Path]) -> dict[str, Points]:
    """Every scalar of the event files in ``directories``, by epoch (see the module docstring)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    by_tag: dict[str, list[tuple[int, float]]] = {}  # tag -> (step, value) in file order
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


def phase_starts(job: Job, curves: Curves | None = None) -> list[int]:
    """Epochs at which a later phase began: ``result.json``'s transitions, plus the epochs where the logged
    ``finetuning_depth`` rises (which also covers attempts before a resume, and jobs still running)."""
    transitions = (job.result.transitions if job.result is not None else None) or []
    starts = {t.epoch for t in transitions if isinstance(t.epoch, int)}
    depth = (curves.scalars if curves else {}).get("finetuning_depth", [])
    starts |= {epoch for (_, before), (epoch, after) in itertools.pairwise(depth) if after > before}
    return sorted(starts)
