"""How the model, the optimizer and the LR schedulers look at any depth of a schedule, and how to get there.

The state machine (:mod:`ftexp.callbacks.scheduler`) decides *when* to move; this module knows *how*: thaw a
phase's parameters, add its optimizer groups, build or extend LR schedulers, swap the optimizer. Any depth is
reached the same way, by replaying phases from the layout recorded at fit start, so restore-best and resume share
one mechanism.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.types import LRSchedulerConfig

from ftexp.callbacks.best_state import BestStateSnapshot
from ftexp.callbacks.freezing import apply_batchnorm_policy
from ftexp.callbacks.optim_surgery import (
    add_phase_groups,
    build_lr_scheduler,
    build_optimizer,
    extend_schedulers,
    rebuild_groups,
    restrict_to,
    truncate_group_lists,
)
from ftexp.schedule import LRSchedulerSpec, OptimizerSpec, Schedule, ScheduleError, defaults, split_no_decay


@dataclass
class FitStartState:
    """The optimizer/scheduler layout at phase 0, from which any depth is rebuilt by replaying transitions."""

    optimizer: torch.optim.Optimizer
    configs: list[LRSchedulerConfig]
    groups: list[dict[str, Any]]
    scheduler_states: list[dict[str, Any]]

    @classmethod
    def capture(cls, trainer: pl.Trainer) -> FitStartState:
        optimizer = trainer.optimizers[0]
        return cls(
            optimizer=optimizer,
            configs=list(trainer.lr_scheduler_configs),
            groups=[{**group, "params": list(group["params"])} for group in optimizer.param_groups],
            scheduler_states=[copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs],
        )


@dataclass
class LatestLRState:
    """The learning-rate state when a transition begins. Restoring the best checkpoint rolls weights and optimizer
    moments back, but, as in FTS, the LR schedule keeps moving forward: this state is put back on the groups of
    earlier phases before the new phase adds its own."""

    scheduler_states: list[dict[str, Any]]
    group_lrs: list[float]

    @classmethod
    def capture(cls, trainer: pl.Trainer) -> LatestLRState:
        return cls(
            scheduler_states=[copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs],
            group_lrs=[group["lr"] for group in trainer.optimizers[0].param_groups],
        )

    def apply(self, trainer: pl.Trainer) -> None:
        for config, state in zip(trainer.lr_scheduler_configs, self.scheduler_states, strict=False):
            config.scheduler.load_state_dict(copy.deepcopy(state))
        for group, lr in zip(trainer.optimizers[0].param_groups, self.group_lrs, strict=False):
            group["lr"] = lr


class PhaseLayout:
    """Replays phases of ``schedule`` onto a Trainer's model, optimizer and LR schedulers.

    ``reinit_lr`` / ``reinit_optim`` are implicit mode's per-transition directives (they override the phases'),
    ``base_max_lr`` the lr of groups whose phase gives none (``None``: the optimizer's phase-0 lr).
    """

    def __init__(
        self,
        schedule: Schedule,
        trainer: pl.Trainer,
        *,
        reinit_lr: LRSchedulerSpec | None,
        reinit_optim: OptimizerSpec | None,
        base_max_lr: float | None,
        apply_lambdas_new_pgs: bool,
        frozen_bn_track_running_stats: bool,
    ) -> None:
        self.schedule = schedule
        self.reinit_lr = reinit_lr
        self.reinit_optim = reinit_optim
        self.base_max_lr = base_max_lr
        self.apply_lambdas_new_pgs = apply_lambdas_new_pgs
        self.frozen_bn_track_running_stats = frozen_bn_track_running_stats
        self.fit_start = FitStartState.capture(trainer)
        self.phase0_lr = self.fit_start.groups[0]["lr"]
        self.phase0_groups = len(self.fit_start.groups)
        self._warned_lambdas = False

    def replay(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        first: int,
        last: int,
        *,
        latest_lrs: LatestLRState | None = None,
        snapshot: BestStateSnapshot | None = None,
    ) -> None:
        """Apply phases ``first..last``: thaw, grow groups, rebuild/extend schedulers, swap the optimizer.
        ``latest_lrs`` is put back before the last phase adds its groups; ``snapshot`` stashes the pre-thaw value of
        every parameter thawed after it was taken."""
        params = dict(pl_module.named_parameters())
        no_decay = getattr(pl_module, "no_decay", None)
        for depth in range(first, last + 1):
            phase = self.schedule[depth]
            if snapshot is not None:
                snapshot.stash_before_thaw(params, list(phase.params))
            for name in phase.params:
                params[name].requires_grad_(True)
            optim_spec = self.reinit_optim or phase.new_optimizer
            if optim_spec is not None:
                self._swap_optimizer(trainer, optim_spec, params, no_decay, depth)
            if depth == last and latest_lrs is not None:
                latest_lrs.apply(trainer)
            optimizer = trainer.optimizers[0]
            lr = defaults.added_group_lr(phase.lr, self.base_max_lr, self.phase0_lr)
            groups = add_phase_groups(optimizer, params, phase.lr_blocks(lr), no_decay)
            lr_spec = self.lr_spec_of(depth)
            if lr_spec is not None:
                trainer.strategy.lr_scheduler_configs = [build_lr_scheduler(lr_spec, optimizer)]
            else:
                self._warn_lambdas_once(trainer)
                extend_schedulers(trainer.lr_scheduler_configs, groups, self.apply_lambdas_new_pgs)
        apply_batchnorm_policy(pl_module, self.frozen_bn_track_running_stats)

    def _swap_optimizer(
        self, trainer: pl.Trainer, spec: OptimizerSpec, params: dict[str, Any], no_decay: Any, depth: int
    ) -> None:
        exempt = split_no_decay(list(params), no_decay)[1] if no_decay else []
        earlier = [s.init_pg_lrs for s in map(self.lr_spec_of, range(1, depth)) if s and s.init_pg_lrs]
        new_optimizer = build_optimizer(
            spec, trainer.optimizers[0], self.phase0_groups, {id(params[n]) for n in exempt}, earlier
        )
        trainer.strategy.optimizers = [new_optimizer]
        for config in trainer.lr_scheduler_configs:  # as in FTS: the running schedulers drive the new one
            config.scheduler.optimizer = new_optimizer

    def reset_to_fit_start(self, trainer: pl.Trainer) -> None:
        """Put the phase-0 optimizer, its groups and the phase-0 schedulers (their fit-start state) back."""
        start = self.fit_start
        if trainer.optimizers[0] is not start.optimizer:
            trainer.strategy.optimizers = [start.optimizer]
        start.optimizer.param_groups[:] = [{**g, "params": list(g["params"])} for g in start.groups]
        trainer.strategy.lr_scheduler_configs = list(start.configs)
        for config, state in zip(start.configs, start.scheduler_states, strict=True):
            config.scheduler.load_state_dict(copy.deepcopy(state))
            truncate_group_lists(config.scheduler, len(start.groups))

    def lr_spec_of(self, depth: int) -> LRSchedulerSpec | None:
        """The LR scheduler a transition to ``depth`` builds (implicit mode's ``reinit_lr_cfg`` or the phase's)."""
        return self.reinit_lr or self.schedule[depth].new_lr_scheduler

    @property
    def default_lr(self) -> float:
        """The lr of groups whose phase gives none."""
        return defaults.added_group_lr(None, self.base_max_lr, self.phase0_lr)

    def _warn_lambdas_once(self, trainer: pl.Trainer) -> None:
        uses_lambdas = any(hasattr(c.scheduler, "lr_lambdas") for c in trainer.lr_scheduler_configs)
        if uses_lambdas and not self.apply_lambdas_new_pgs and not self._warned_lambdas:
            self._warned_lambdas = True
            rank_zero_warn(
                "ftexp: new parameter groups start at their phase lr under the lambda scheduler and follow its last "
                "lambda from the next step; set apply_lambdas_new_pgs=True to scale their first lr by it too."
            )


def configured_phase0_lr(schedule: Schedule, optimizer: torch.optim.Optimizer) -> float:
    """The lr phase 0's ``lr_decay`` groups scale from (:func:`ftexp.schedule.defaults.phase0_lr`), read off the
    optimizer as ``configure_optimizers()`` built it, before :func:`enforce_phase0` changes its groups."""
    first = optimizer.param_groups[0]
    return defaults.phase0_lr(schedule[0].lr, first.get("initial_lr", first["lr"]))


def enforce_phase0(
    schedule: Schedule,
    optimizer: torch.optim.Optimizer,
    configs: list[LRSchedulerConfig],
    pl_module: pl.LightningModule,
    *,
    allowed_to_fix: bool,
    apply_lambdas_new_pgs: bool,
) -> None:
    """Make the optimizer from ``configure_optimizers()`` hold exactly the phase-0 parameters (or, when not
    ``allowed_to_fix``, refuse one that does not); with ``lr_decay`` in phase 0, in one group per block (two with a
    ``no_decay`` split), before any step, so that the schedulers built with it schedule every block."""
    phase0 = schedule[0]
    lr = configured_phase0_lr(schedule, optimizer)
    _hold_phase0_params(schedule, optimizer, configs, pl_module, allowed_to_fix, apply_lambdas_new_pgs)
    if phase0.groups:
        params = dict(pl_module.named_parameters())
        no_decay = getattr(pl_module, "no_decay", None)
        rebuild_groups(optimizer, configs, params, phase0.lr_blocks(lr), no_decay)


def _hold_phase0_params(
    schedule: Schedule,
    optimizer: torch.optim.Optimizer,
    configs: list[LRSchedulerConfig],
    pl_module: pl.LightningModule,
    allowed_to_fix: bool,
    apply_lambdas_new_pgs: bool,
) -> None:
    params = dict(pl_module.named_parameters())
    phase0 = schedule.params_through(0)
    allowed = {id(params[n]) for n in phase0}
    present = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if present == allowed:
        return
    missing = [n for n in phase0 if id(params[n]) not in present]
    if not allowed_to_fix:
        raise ScheduleError(
            f"the optimizer from configure_optimizers() does not hold exactly the phase-0 parameters "
            f"({len(missing)} missing, {len(present - allowed)} extra); set enforce_phase0_params=True to let "
            "ftexp fix it",
            key="enforce_phase0_params",
            show_value=False,
        )
    removed = restrict_to(optimizer, configs, allowed)
    if missing:
        groups = add_phase_groups(
            optimizer, params, [(missing, optimizer.param_groups[0]["lr"])], getattr(pl_module, "no_decay", None)
        )
        extend_schedulers(configs, groups, apply_lambdas_new_pgs)
    rank_zero_info(f"ftexp: optimizer set to the phase-0 parameters ({removed} frozen removed, {len(missing)} added).")
