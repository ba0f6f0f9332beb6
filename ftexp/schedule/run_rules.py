"""The rules a run applies to its schedule beyond the schedule's own validity, as pure functions.

The callback applies them at ``setup`` with the real Trainer's values; the dry-run plan applies the same functions
to the config's values, so the plan reports exactly what the run would raise, warn about or change.
"""

from __future__ import annotations

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.model import LRSchedulerSpec, Schedule


def epoch_transition_problems(
    schedule: Schedule, final_depth: int, epoch_transitions_only: bool
) -> list[ScheduleError]:
    """With ``epoch_transitions_only`` every phase before the last one reached must end at a set epoch."""
    if not epoch_transitions_only:
        return []
    return [
        ScheduleError(
            "epoch_transitions_only=True needs a max_transition_epoch >= 0 in every phase before the last",
            source=schedule.source,
            phase=phase.index,
            key="max_transition_epoch",
            show_value=False,
        )
        for phase in schedule.phases[:final_depth]
        if phase.max_transition_epoch < 0
    ]


def late_transition_warnings(schedule: Schedule, final_depth: int, max_epochs: int | None) -> list[str]:
    """Phases whose ``max_transition_epoch`` is not below ``max_epochs`` (after FTS's extension): the phases after
    them may never run."""
    if max_epochs is None or max_epochs < 0:
        return []
    return [
        f"phase {phase.index} max_transition_epoch={phase.max_transition_epoch} is not below "
        f"max_epochs={max_epochs}; later phases may never run"
        for phase in schedule.phases[:final_depth]
        if phase.max_transition_epoch >= max_epochs
    ]


def check_implicit_reinit_lr(spec: LRSchedulerSpec, source: str, key: str) -> None:
    """The scheduler rebuilt at every transition of an implicit run cannot list per-group lrs: the same config
    serves every phase while the number of groups grows."""
    if spec.init_pg_lrs is not None:
        raise ScheduleError(
            "init_pg_lrs cannot be used when the same scheduler is rebuilt at every transition (implicit mode, "
            "lr_reinit=implicit): the number of parameter groups grows from phase to phase",
            source=source,
            key=f"{key}.init_pg_lrs",
            value=list(spec.init_pg_lrs),
        )
