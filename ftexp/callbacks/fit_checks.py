"""Checks of what the Trainer brings (strategy, optimizers, LR schedulers) before a scheduled fit trains a step.

The checks of the schedule itself that depend on Trainer values are pure functions in
:mod:`ftexp.schedule.run_rules`, shared with the dry-run plan.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy

from ftexp.schedule import SUPPORTED_LR_SCHEDULERS, ScheduleError


def check_strategy(trainer: pl.Trainer, allow_untested: bool) -> None:
    if isinstance(trainer.strategy, SingleDeviceStrategy | DDPStrategy) or allow_untested:
        return
    raise ScheduleError(
        f"strategy {type(trainer.strategy).__name__} is not supported (supported: single device, ddp, ddp_spawn); "
        "pass allow_untested=True to try it",
        key="strategy",
        show_value=False,
    )


def check_optimizers(trainer: pl.Trainer, allow_untested: bool) -> None:
    """One optimizer (the one phases add groups to) and LR schedulers ftexp knows how to extend."""
    if len(trainer.optimizers) != 1:
        raise ScheduleError(
            f"scheduled fine-tuning needs exactly one optimizer, configure_optimizers() gave {len(trainer.optimizers)}",
            key="configure_optimizers",
            show_value=False,
        )
    for config in trainer.lr_scheduler_configs:
        if not allow_untested and not isinstance(config.scheduler, SUPPORTED_LR_SCHEDULERS):
            raise ScheduleError(
                f"LR scheduler {type(config.scheduler).__name__} from configure_optimizers() is not supported; "
                "pass allow_untested=True to try it",
                key="configure_optimizers",
                show_value=False,
            )
