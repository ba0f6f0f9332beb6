"""The resolved schedule a run writes beside its logs, for reproducibility (as FTS does): exact parameter names and
every phase's lr filled in, never over the file the user passed in."""

from __future__ import annotations

from pathlib import Path

from ftexp.schedule import Schedule, dump_schedule_yaml


def resolved_schedule_path(schedule: Schedule, log_dir: str | Path, module_name: str) -> Path:
    path = Path(log_dir) / f"{module_name}_ft_schedule.yaml"
    source = Path(schedule.source)
    if source.is_file() and path.resolve() == source.resolve():
        path = path.with_name(path.stem + "_resolved.yaml")  # never overwrite the user's own schedule
    return path


def write_resolved_schedule(schedule: Schedule, path: Path, default_lr: float | None) -> None:
    """``default_lr`` fills the lr of phases after the first that give none (``None``: left out)."""
    resolved = schedule.to_dict()
    for depth, phase in resolved.items():
        if depth > 0 and "lr" not in phase and default_lr is not None:
            phase["lr"] = default_lr
    dump_schedule_yaml(resolved, path)
