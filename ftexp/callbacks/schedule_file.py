"""The resolved schedule a run writes beside its logs, for reproducibility (as FTS does): exact parameter names and
every phase's lr filled in, never over the file the user passed in."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ftexp.schedule import Schedule, dump_schedule_yaml, with_group_lrs


def resolved_schedule_path(schedule: Schedule, log_dir: str | Path, module_name: str) -> Path:
    path = Path(log_dir) / f"{module_name}_ft_schedule.yaml"
    source = Path(schedule.source)
    if source.is_file() and path.resolve() == source.resolve():
        path = path.with_name(path.stem + "_resolved.yaml")  # never overwrite the user's own schedule
    return path


def write_resolved_schedule(
    schedule: Schedule, path: Path, default_lr: float | None, phase0_lr: float | None = None
) -> None:
    """``default_lr`` fills the lr of phases after the first that give none (``None``: left out). ``phase0_lr`` is
    the lr phase 0's ``lr_decay`` groups scale from (:func:`ftexp.schedule.defaults.phase0_lr`); with the phases'
    lrs known, every ``lr_decay`` phase is written with its groups and their lrs, which a run reading the file
    back trains as written."""
    phase_lrs = {phase.index: phase.lr if phase.lr is not None else default_lr for phase in schedule.phases[1:]}
    concrete = with_group_lrs(schedule, {0: phase0_lr, **phase_lrs})
    first = concrete[0]
    if first.groups and first.lr is None and phase0_lr is not None:  # the lr its groups were scaled from
        concrete = concrete.with_phases((replace(first, lr=phase0_lr), *concrete.phases[1:]))
    resolved = concrete.to_dict()
    for depth, phase in resolved.items():
        if depth > 0 and "lr" not in phase and default_lr is not None:
            phase["lr"] = default_lr
    dump_schedule_yaml(resolved, path)
