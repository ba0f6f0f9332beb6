"""The FinetuningScheduler's arguments, checked and parsed when it is constructed (before any Trainer exists).

FTS-only arguments are accepted so that FTS configs load, and refused or ignored here with a message saying which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from ftexp.schedule import LRSchedulerSpec, OptimizerSpec, Schedule, ScheduleError, load_schedule
from ftexp.schedule.parse import parse_lr_scheduler_spec, parse_optimizer_spec
from ftexp.schedule.run_rules import check_implicit_reinit_lr


@dataclass(frozen=True)
class ParsedArguments:
    user_schedule: Schedule | None  # None: implicit mode, the schedule is generated from the model
    reinit_lr: LRSchedulerSpec | None
    reinit_optim: OptimizerSpec | None


def parse_arguments(
    ft_schedule: Any,
    *,
    reinit_lr_cfg: dict | None,
    reinit_optim_cfg: dict | None,
    restore_best_from: str,
    implicit_mode: str,
    logging_level: int | None,
    strategy_adapter_cfg: dict | None,
    custom_strategy_adapter: dict | None,
) -> ParsedArguments:
    if strategy_adapter_cfg or custom_strategy_adapter:
        raise ScheduleError(
            "FTS strategy adapters (FSDP, custom strategies) are not supported by ftexp; it runs on single "
            "devices, ddp and ddp_spawn",
            key="strategy_adapter_cfg" if strategy_adapter_cfg else "custom_strategy_adapter",
            show_value=False,
        )
    if logging_level is not None:
        rank_zero_warn(
            "ftexp: logging_level is accepted for FTS compatibility but ignored: ftexp never changes logger "
            "levels; configure the 'pytorch_lightning' logger yourself."
        )
    if ft_schedule is not None and (reinit_lr_cfg or reinit_optim_cfg):
        raise ScheduleError(
            "applies to implicit schedules only; with an explicit ft_schedule put new_lr_scheduler / "
            "new_optimizer in the phases that need them",
            key="reinit_lr_cfg" if reinit_lr_cfg else "reinit_optim_cfg",
            show_value=False,
        )
    if restore_best_from not in ("memory", "disk"):
        raise ScheduleError("must be 'memory' or 'disk'", key="restore_best_from", value=restore_best_from)
    if implicit_mode not in ("blocks", "naive"):
        raise ScheduleError("must be 'blocks' or 'naive'", key="implicit_mode", value=implicit_mode)
    reinit_lr = None
    if reinit_lr_cfg:
        reinit_lr = parse_lr_scheduler_spec(reinit_lr_cfg, "reinit_lr_cfg", None, "reinit_lr_cfg")
        check_implicit_reinit_lr(reinit_lr, source="reinit_lr_cfg", key="reinit_lr_cfg")
    reinit_optim = (
        parse_optimizer_spec(reinit_optim_cfg, "reinit_optim_cfg", None, "reinit_optim_cfg")
        if reinit_optim_cfg
        else None
    )
    user_schedule = load_schedule(ft_schedule) if ft_schedule is not None else None
    return ParsedArguments(user_schedule, reinit_lr, reinit_optim)
