"""Pure schedule logic: data model, YAML I/O, parsing and resolution, directive checks, implicit generators,
presets."""

from ftexp.schedule import defaults, presets
from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.implicit import generate_schedule
from ftexp.schedule.layerwise import resolve_layerwise, with_group_lrs
from ftexp.schedule.model import ClassSpec, LRSchedulerSpec, OptimizerSpec, Phase, PhaseGroup, Schedule
from ftexp.schedule.optim_specs import (
    SUPPORTED_LR_SCHEDULERS,
    check_phase_directives,
    group_counts,
    split_no_decay,
)
from ftexp.schedule.parse import (
    load_schedule,
    parse_lr_scheduler_spec,
    parse_optimizer_spec,
    parse_schedule,
    resolve_schedule,
)
from ftexp.schedule.yaml_io import dump_schedule_yaml, load_schedule_yaml

__all__ = [
    "SUPPORTED_LR_SCHEDULERS",
    "ClassSpec",
    "LRSchedulerSpec",
    "OptimizerSpec",
    "Phase",
    "PhaseGroup",
    "Schedule",
    "ScheduleError",
    "check_phase_directives",
    "defaults",
    "dump_schedule_yaml",
    "generate_schedule",
    "group_counts",
    "load_schedule",
    "load_schedule_yaml",
    "parse_lr_scheduler_spec",
    "parse_optimizer_spec",
    "parse_schedule",
    "presets",
    "resolve_layerwise",
    "resolve_schedule",
    "split_no_decay",
    "with_group_lrs",
]
