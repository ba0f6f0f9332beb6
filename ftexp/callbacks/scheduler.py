"""``FinetuningScheduler``: the phase state machine that thaws a model phase by phase during ``trainer.fit``.

The schedule logic (parsing, resolution, checks, generation) lives in :mod:`ftexp.schedule`; this callback only
decides *when* to move to the next phase and performs the move: restore the best state, thaw, grow the optimizer,
extend or rebuild LR schedulers, and re-wrap DDP.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.types import LRSchedulerConfig

from ftexp.callbacks.best_state import BestStateSnapshot
from ftexp.callbacks.companions import connect_companions
from ftexp.callbacks.ddp import rewrap_ddp, trainable_names
from ftexp.callbacks.early_stopping import PhaseEarlyStopping
from ftexp.callbacks.freezing import apply_batchnorm_policy, set_trainable
from ftexp.callbacks.metric_sync import check_monitored_metrics_synced
from ftexp.callbacks.optim_surgery import (
    add_phase_groups,
    build_lr_scheduler,
    build_optimizer,
    extend_schedulers,
    restrict_to,
    truncate_group_lists,
)
from ftexp.schedule import (
    SUPPORTED_LR_SCHEDULERS,
    LRSchedulerSpec,
    Schedule,
    ScheduleError,
    check_phase_directives,
    dump_schedule_yaml,
    generate_schedule,
    load_schedule,
    parse_lr_scheduler_spec,
    parse_optimizer_spec,
    resolve_schedule,
    split_no_decay,
)

DEPTH_METRIC = "finetuning_depth"


def resumes_inside_epoch(trainer: pl.Trainer) -> bool:
    """Whether ``fit`` resumes inside an epoch (from a checkpoint saved mid-epoch, as a preempted job's is, or
    during the epoch's end hooks): Lightning then calls no ``on_train_epoch_start`` for that epoch
    (``FitLoop.on_advance_start``), so per-epoch setup must happen in ``on_train_start``."""
    # FitLoop's restart stages are internal (checked against pytorch-lightning 2.4.0, 2.5.0, 2.5.6 and 2.6.6). They
    # came in 2.5 with the skip itself: 2.4 calls on_train_epoch_start on every resume, so it never resumes inside.
    loop = trainer.fit_loop
    return getattr(loop, "restarted_mid_epoch", False) or getattr(loop, "restarted_on_epoch_end", False)


@dataclass
class _FitStartState:
    """The optimizer/scheduler layout at phase 0, from which any depth is rebuilt by replaying transitions."""

    optimizer: torch.optim.Optimizer
    configs: list[LRSchedulerConfig]
    groups: list[dict[str, Any]]
    scheduler_states: list[dict[str, Any]]


@dataclass
class _LatestLRState:
    """The learning-rate state when a transition begins. Restoring the best checkpoint rolls weights and optimizer
    moments back, but, as in FTS, the LR schedule keeps moving forward: this state is put back on the groups of
    earlier phases before the new phase adds its own."""

    scheduler_states: list[dict[str, Any]]
    group_lrs: list[float]

    @classmethod
    def capture(cls, trainer: pl.Trainer) -> _LatestLRState:
        return cls(
            scheduler_states=[copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs],
            group_lrs=[group["lr"] for group in trainer.optimizers[0].param_groups],
        )

    def apply(self, trainer: pl.Trainer) -> None:
        for config, state in zip(trainer.lr_scheduler_configs, self.scheduler_states, strict=False):
            config.scheduler.load_state_dict(copy.deepcopy(state))
        for group, lr in zip(trainer.optimizers[0].param_groups, self.group_lrs, strict=False):
            group["lr"] = lr


class FinetuningScheduler(Callback):
    """Scheduled fine-tuning (gradual unfreezing) with FTS-compatible arguments and schedule files.

    Args:
        ft_schedule: ``None`` to generate a schedule from the model (implicit mode), else a YAML path, a dict or an
            OmegaConf ``DictConfig`` in the FTS format (``{phase: {params: [...], lr: ..., ...}}``).
        max_depth: deepest phase to reach (-1: all).
        base_max_lr: lr of groups added by phases that give no ``lr``; ``None`` uses the optimizer's initial lr.
        restore_best: restore the best checkpoint's weights, optimizer and scheduler state before each transition.
        gen_ft_sched_only: write the (generated) schedule to the log dir and end the run without training.
        epoch_transitions_only: phases end only at their ``max_transition_epoch``; no early stopping.
        reinit_optim_cfg / reinit_lr_cfg: implicit mode only: a new optimizer / LR scheduler at every transition.
        allow_untested: accept LR schedulers and strategies outside the tested set.
        apply_lambdas_new_pgs: give groups added to a lambda scheduler its last lambda instead of a constant lr.
        enforce_phase0_params: make the user's optimizer hold exactly the phase-0 parameters.
        frozen_bn_track_running_stats: ``track_running_stats`` of frozen BatchNorm layers (always in eval mode).
        new_incarnation_mode: on resume, treat the resumed checkpoint as the best so far (earlier bests may be gone).
        implicit_mode / max_phases: the generator used in implicit mode (``blocks`` or FTS's ``naive``) and its cap.
        restore_best_from: ``memory`` (default) restores from a copy kept when the best checkpoint was written,
            ``disk`` re-reads the checkpoint file as FTS does. Both give the same state.
        log_dir: where the resolved schedule is written (default: ``trainer.log_dir``).
        logging_level / strategy_adapter_cfg / custom_strategy_adapter: FTS arguments, accepted so FTS configs
            load; the first is ignored with a warning, the adapters are refused with a clear error.
    """

    def __init__(
        self,
        ft_schedule: str | Path | dict | Any | None = None,
        max_depth: int = -1,
        base_max_lr: float | None = 1e-5,
        restore_best: bool = True,
        gen_ft_sched_only: bool = False,
        epoch_transitions_only: bool = False,
        reinit_optim_cfg: dict | None = None,
        reinit_lr_cfg: dict | None = None,
        allow_untested: bool = False,
        apply_lambdas_new_pgs: bool = False,
        enforce_phase0_params: bool = True,
        frozen_bn_track_running_stats: bool = True,
        new_incarnation_mode: bool = False,
        implicit_mode: Literal["blocks", "naive"] = "blocks",
        max_phases: int | None = None,
        restore_best_from: Literal["memory", "disk"] = "memory",
        log_dir: str | Path | None = None,
        logging_level: int | None = None,
        strategy_adapter_cfg: dict | None = None,
        custom_strategy_adapter: dict | None = None,
    ) -> None:
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
            key = "reinit_lr_cfg" if reinit_lr_cfg else "reinit_optim_cfg"
            raise ScheduleError(
                "applies to implicit schedules only; with an explicit ft_schedule put new_lr_scheduler / "
                "new_optimizer in the phases that need them",
                key=key,
                show_value=False,
            )
        if restore_best_from not in ("memory", "disk"):
            raise ScheduleError("must be 'memory' or 'disk'", key="restore_best_from", value=restore_best_from)
        if implicit_mode not in ("blocks", "naive"):
            raise ScheduleError("must be 'blocks' or 'naive'", key="implicit_mode", value=implicit_mode)
        self.user_schedule = load_schedule(ft_schedule) if ft_schedule is not None else None
        self.reinit_lr = (
            parse_lr_scheduler_spec(reinit_lr_cfg, "reinit_lr_cfg", None, "reinit_lr_cfg") if reinit_lr_cfg else None
        )
        if self.reinit_lr is not None and self.reinit_lr.init_pg_lrs is not None:
            raise ScheduleError(
                "init_pg_lrs cannot be used in implicit mode: the same config is applied at every transition, "
                "while the number of parameter groups grows",
                key="reinit_lr_cfg.init_pg_lrs",
                show_value=False,
            )
        self.reinit_optim = (
            parse_optimizer_spec(reinit_optim_cfg, "reinit_optim_cfg", None, "reinit_optim_cfg")
            if reinit_optim_cfg
            else None
        )
        self.max_depth = max_depth
        self.base_max_lr = base_max_lr
        self.restore_best = restore_best
        self.gen_ft_sched_only = gen_ft_sched_only
        self.epoch_transitions_only = epoch_transitions_only
        self.allow_untested = allow_untested
        self.apply_lambdas_new_pgs = apply_lambdas_new_pgs
        self.enforce_phase0_params = enforce_phase0_params
        self.frozen_bn_track_running_stats = frozen_bn_track_running_stats
        self.new_incarnation_mode = new_incarnation_mode
        self.implicit_mode = implicit_mode
        self.max_phases = max_phases
        self.restore_best_from = restore_best_from
        self.log_dir = log_dir

        self.schedule: Schedule | None = None
        self.schedule_path: Path | None = None
        self.transitions: list[dict[str, Any]] = []
        self._depth = 0
        self._best_depth = 0
        self._resumed_depth: int | None = None
        self._resumed_transitions: list[dict[str, Any]] = []
        self._es: PhaseEarlyStopping | None = None
        self._ckpt: ModelCheckpoint | None = None
        self._fit_start: _FitStartState | None = None
        self._snapshot: BestStateSnapshot | None = None
        self._snapshot_due = False
        self._best_key: tuple[str, float] | None = None
        self._best_path_override: str | None = None
        self._ddp_trainable: frozenset[str] | None = None
        self._phase0_lr = 0.0
        self._phase0_groups = 1
        self._warned_lambdas = False

    # ------------------------------------------------------------------ public state
    @property
    def curr_depth(self) -> int:
        """Index of the phase being trained."""
        return self._depth

    @property
    def final_depth(self) -> int:
        """The last phase this run will reach (``max_depth`` applied)."""
        if self.schedule is None:
            raise RuntimeError("the schedule is built in setup(); call trainer.fit first")
        last = self.schedule.max_depth
        return last if self.max_depth < 0 else min(self.max_depth, last)

    @property
    def depth_remaining(self) -> int:
        return self.final_depth - self._depth

    # ------------------------------------------------------------------ setup: everything validated here
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._check_strategy(trainer)
        self.schedule = self._build_schedule(pl_module)
        self._check_transition_rules(trainer)
        companions = connect_companions(
            trainer,
            pl_module,
            stage,
            epoch_transitions_only=self.epoch_transitions_only,
            restore_best=self.restore_best and not self.gen_ft_sched_only,
        )
        self._es, self._ckpt = companions.early_stopping, companions.checkpoint
        if self.gen_ft_sched_only:
            self._write_schedule(trainer, pl_module)
            rank_zero_info(f"ftexp: schedule written to {self.schedule_path}; gen_ft_sched_only=True, not training.")
            trainer.should_stop = True
            return
        set_trainable(pl_module, self.schedule.params_through(0))
        apply_batchnorm_policy(pl_module, self.frozen_bn_track_running_stats)

    def _check_strategy(self, trainer: pl.Trainer) -> None:
        if isinstance(trainer.strategy, SingleDeviceStrategy | DDPStrategy) or self.allow_untested:
            return
        raise ScheduleError(
            f"strategy {type(trainer.strategy).__name__} is not supported (supported: single device, ddp, ddp_spawn); "
            "pass allow_untested=True to try it",
            key="strategy",
            show_value=False,
        )

    def _build_schedule(self, pl_module: pl.LightningModule) -> Schedule:
        names = [name for name, _ in pl_module.named_parameters()]
        if self.user_schedule is not None:
            schedule, never_thawed = resolve_schedule(self.user_schedule, names)
        else:
            schedule = generate_schedule(pl_module, mode=self.implicit_mode, max_phases=self.max_phases)
            never_thawed = []
        if never_thawed:
            shown = ", ".join(never_thawed[:10]) + (" ..." if len(never_thawed) > 10 else "")
            rank_zero_warn(f"ftexp: {len(never_thawed)} parameters are in no phase and stay frozen: {shown}")
        return schedule

    def _check_transition_rules(self, trainer: pl.Trainer) -> None:
        assert self.schedule is not None
        self._extend_max_epochs_to_final_phase(trainer)
        for phase in self.schedule.phases[: self.final_depth]:
            if self.epoch_transitions_only and phase.max_transition_epoch < 0:
                raise ScheduleError(
                    "epoch_transitions_only=True needs a max_transition_epoch >= 0 in every phase before the last",
                    source=self.schedule.source,
                    phase=phase.index,
                    key="max_transition_epoch",
                    show_value=False,
                )
            max_epochs = trainer.max_epochs
            if max_epochs is not None and max_epochs >= 0 and phase.max_transition_epoch >= max_epochs:
                rank_zero_warn(
                    f"ftexp: phase {phase.index} max_transition_epoch={phase.max_transition_epoch} is not below "
                    f"max_epochs={max_epochs}; later phases may never run."
                )

    def _extend_max_epochs_to_final_phase(self, trainer: pl.Trainer) -> None:
        """A final phase with a ``max_transition_epoch`` says how long the run lasts (see Schedule.run_max_epochs)."""
        assert self.schedule is not None
        max_epochs = trainer.max_epochs
        extended = self.schedule.run_max_epochs(max_epochs)
        if extended != max_epochs:
            trainer.fit_loop.max_epochs = extended
            rank_zero_info(
                f"ftexp: max_epochs raised from {max_epochs} to {extended}, the final phase's max_transition_epoch "
                "(as FTS does)."
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.gen_ft_sched_only:
            return
        assert self.schedule is not None
        if len(trainer.optimizers) != 1:
            raise ScheduleError(
                f"scheduled fine-tuning needs exactly one optimizer, configure_optimizers() gave "
                f"{len(trainer.optimizers)}",
                key="configure_optimizers",
                show_value=False,
            )
        optimizer = trainer.optimizers[0]
        for config in trainer.lr_scheduler_configs:
            if not self.allow_untested and not isinstance(config.scheduler, SUPPORTED_LR_SCHEDULERS):
                raise ScheduleError(
                    f"LR scheduler {type(config.scheduler).__name__} from configure_optimizers() is not supported; "
                    "pass allow_untested=True to try it",
                    key="configure_optimizers",
                    show_value=False,
                )
        self._enforce_phase0(optimizer, trainer.lr_scheduler_configs, pl_module)
        self._phase0_lr = optimizer.param_groups[0]["lr"]
        self._phase0_groups = len(optimizer.param_groups)
        no_decay = getattr(pl_module, "no_decay", None)
        check_phase_directives(
            self.schedule.__class__(self.schedule.phases[: self.final_depth + 1], self.schedule.source),
            len(optimizer.param_groups),
            no_decay,
            reinit_lr=self.reinit_lr,
            reinit_optim=self.reinit_optim,
            allow_untested=self.allow_untested,
        )
        self._fit_start = _FitStartState(
            optimizer=optimizer,
            configs=list(trainer.lr_scheduler_configs),
            groups=[{**group, "params": list(group["params"])} for group in optimizer.param_groups],
            scheduler_states=[copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs],
        )
        if self._resumed_depth is not None:
            self.transitions = self._resumed_transitions
        if self._resumed_depth:
            self._replay(trainer, pl_module, 1, self._resumed_depth)
            self._depth = self._resumed_depth
            rank_zero_info(f"ftexp: resuming at phase {self._depth} of {self.final_depth}.")
        self._ddp_trainable = trainable_names(pl_module)
        self._sync_ddp(trainer, pl_module)
        if self._es is not None:
            if self._resumed_depth is None:
                self._es.start_phase(final=self._depth == self.final_depth)
            else:
                self._es.final_phase = self._depth == self.final_depth
        self._write_schedule(trainer, pl_module)

    def _enforce_phase0(self, optimizer: torch.optim.Optimizer, configs: list, pl_module: pl.LightningModule) -> None:
        assert self.schedule is not None
        params = dict(pl_module.named_parameters())
        phase0 = self.schedule.params_through(0)
        allowed = {id(params[n]) for n in phase0}
        present = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if present == allowed:
            return
        missing = [n for n in phase0 if id(params[n]) not in present]
        if not self.enforce_phase0_params:
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
                optimizer, params, missing, optimizer.param_groups[0]["lr"], getattr(pl_module, "no_decay", None)
            )
            extend_schedulers(configs, groups, self.apply_lambdas_new_pgs)
        rank_zero_info(
            f"ftexp: optimizer set to the phase-0 parameters ({removed} frozen removed, {len(missing)} added)."
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._best_key = self._current_best_key()
        if self.schedule is not None and self._fit_start is not None and resumes_inside_epoch(trainer):
            # Lightning skips on_train_epoch_start for the epoch it resumes in; that epoch's transition, if any,
            # happened before the checkpoint, but its per-epoch setup did not
            self._prepare_epoch(pl_module)
        if self._resumed_depth is None or not self.restore_best or self._ckpt is None:
            return
        if self.new_incarnation_mode:
            self._best_depth = self._depth
            self._best_path_override = trainer.ckpt_path
        elif self._ckpt.best_model_path and not Path(self._ckpt.best_model_path).is_file():
            raise ScheduleError(
                f"restore_best needs the best checkpoint {self._ckpt.best_model_path}, which no longer exists; "
                "resume with new_incarnation_mode=True to start best-tracking afresh at the resumed phase",
                key="ckpt_path",
                show_value=False,
            )

    # ------------------------------------------------------------------ the phase loop
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule is None or self._fit_start is None:
            return
        if self._should_transition(trainer):
            self._transition(trainer, pl_module, self._depth + 1)
        self._prepare_epoch(pl_module)

    def _prepare_epoch(self, pl_module: pl.LightningModule) -> None:
        apply_batchnorm_policy(pl_module, self.frozen_bn_track_running_stats)
        # the same on every rank; synced so that Lightning does not warn about an unsynced epoch metric under DDP
        pl_module.log(DEPTH_METRIC, float(self._depth), on_step=False, on_epoch=True, sync_dist=True)

    def _should_transition(self, trainer: pl.Trainer) -> bool:
        assert self.schedule is not None
        if self._depth >= self.final_depth:
            return False
        if self._es is not None and self._es.phase_complete:
            return True
        epoch_limit = self.schedule[self._depth].max_transition_epoch
        return 0 <= epoch_limit <= trainer.current_epoch

    def _transition(self, trainer: pl.Trainer, pl_module: pl.LightningModule, new_depth: int) -> None:
        started = time.perf_counter()
        trainable_before = trainable_names(pl_module)
        first = self._depth + 1
        restored_from = None
        latest_lrs = _LatestLRState.capture(trainer)
        if self.restore_best:
            restored = self._restore_best(trainer, pl_module)
            if restored is not None:
                first, restored_from = restored + 1, restored
        self._replay(trainer, pl_module, first, new_depth, latest_lrs)
        self._depth = new_depth
        self._sync_ddp(trainer, pl_module)
        if self._es is not None:
            self._es.start_phase(final=new_depth == self.final_depth)
        seconds = time.perf_counter() - started
        self._report_transition(trainer, pl_module, trainable_before, restored_from, seconds)

    def _replay(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        first: int,
        last: int,
        latest_lrs: _LatestLRState | None = None,
    ) -> None:
        """Apply phases ``first..last`` to the model and optimizer: thaw, grow groups, rebuild/extend schedulers.
        ``latest_lrs`` (the LR state when a transition began) is put back before the last phase adds its groups."""
        assert self.schedule is not None
        params = dict(pl_module.named_parameters())
        no_decay = getattr(pl_module, "no_decay", None)
        for depth in range(first, last + 1):
            phase = self.schedule[depth]
            if self._snapshot is not None:
                self._snapshot.stash_before_thaw(params, list(phase.params))
            for name in phase.params:
                params[name].requires_grad_(True)
            optim_spec = self.reinit_optim or phase.new_optimizer
            if optim_spec is not None:
                exempt = split_no_decay(list(params), no_decay)[1] if no_decay else []
                earlier = [
                    spec.init_pg_lrs for spec in map(self._lr_spec_of, range(1, depth)) if spec and spec.init_pg_lrs
                ]
                new_optimizer = build_optimizer(
                    optim_spec, trainer.optimizers[0], self._phase0_groups, {id(params[n]) for n in exempt}, earlier
                )
                trainer.strategy.optimizers = [new_optimizer]
                for config in trainer.lr_scheduler_configs:  # as in FTS: the running schedulers drive the new one
                    config.scheduler.optimizer = new_optimizer
            if depth == last and latest_lrs is not None:
                latest_lrs.apply(trainer)
            optimizer = trainer.optimizers[0]
            lr = phase.lr if phase.lr is not None else self._default_lr()
            groups = add_phase_groups(optimizer, params, phase.params, lr, no_decay)
            lr_spec = self._lr_spec_of(depth)
            if lr_spec is not None:
                trainer.strategy.lr_scheduler_configs = [build_lr_scheduler(lr_spec, optimizer)]
            else:
                self._warn_lambdas_once(trainer)
                extend_schedulers(trainer.lr_scheduler_configs, groups, self.apply_lambdas_new_pgs)
        apply_batchnorm_policy(pl_module, self.frozen_bn_track_running_stats)

    def _lr_spec_of(self, depth: int) -> LRSchedulerSpec | None:
        """The LR scheduler a transition to ``depth`` builds (implicit mode's ``reinit_lr_cfg`` or the phase's)."""
        assert self.schedule is not None
        return self.reinit_lr or self.schedule[depth].new_lr_scheduler

    def _default_lr(self) -> float:
        return self.base_max_lr if self.base_max_lr is not None else self._phase0_lr

    def _warn_lambdas_once(self, trainer: pl.Trainer) -> None:
        uses_lambdas = any(hasattr(c.scheduler, "lr_lambdas") for c in trainer.lr_scheduler_configs)
        if uses_lambdas and not self.apply_lambdas_new_pgs and not self._warned_lambdas:
            self._warned_lambdas = True
            rank_zero_warn(
                "ftexp: new parameter groups start at their phase lr under the lambda scheduler and follow its last "
                "lambda from the next step; set apply_lambdas_new_pgs=True to scale their first lr by it too."
            )

    def _sync_ddp(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = trainable_names(pl_module)
        if (now != self._ddp_trainable and rewrap_ddp(trainer)) or self._ddp_trainable is None:
            self._ddp_trainable = now

    def _report_transition(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        trainable_before: frozenset[str],
        restored_from: int | None,
        seconds: float,
    ) -> None:
        params = dict(pl_module.named_parameters())
        newly = sorted(trainable_names(pl_module) - trainable_before)
        lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]
        record = {
            "depth": self._depth,
            "epoch": trainer.current_epoch,
            "new_params": len(newly),
            "new_weights": sum(params[n].numel() for n in newly),
            "lrs": lrs,
            "restored_from_depth": restored_from,
            "seconds": seconds,
        }
        self.transitions.append(record)
        restored = f", restored best of phase {restored_from}" if restored_from is not None else ""
        rank_zero_info(
            f"ftexp: epoch {trainer.current_epoch}: phase {self._depth}/{self.final_depth} thawed {len(newly)} "
            f"tensors ({record['new_weights']:,} weights){restored}; lrs {[f'{lr:.3g}' for lr in lrs]} "
            f"({seconds * 1e3:.1f} ms)"
        )

    # ------------------------------------------------------------------ restore best
    def _restore_best(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int | None:
        """Roll model, optimizer and schedulers back to the best checkpoint; returns its depth (None: no best)."""
        trainer.strategy.barrier("ftexp_restore_best")
        use_memory = self.restore_best_from == "memory" and self._snapshot is not None
        if use_memory:
            assert self._snapshot is not None
            best_depth, source = self._snapshot.depth, self._snapshot
        else:
            path = self._best_path()
            if not path:
                rank_zero_info("ftexp: no checkpoint saved yet, nothing to restore.")
                return None
            checkpoint = trainer.strategy.load_checkpoint(path)
            best_depth = checkpoint["callbacks"][self.state_key]["curr_depth"]
        self._reset_to_fit_start(trainer)
        self._replay(trainer, pl_module, 1, best_depth)
        optimizer = trainer.optimizers[0]
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs]
        if use_memory:
            source.load_weights_into(pl_module)
            source.load_optimizer_state_into(optimizer)
            states = copy.deepcopy(source.scheduler_states)
        else:
            pl_module.load_state_dict(checkpoint["state_dict"])
            optimizer.load_state_dict(checkpoint["optimizer_states"][0])
            states = checkpoint.get("lr_schedulers", [])
        for scheduler, state in zip(schedulers, states, strict=True):
            scheduler.load_state_dict(state)
        return best_depth

    def _reset_to_fit_start(self, trainer: pl.Trainer) -> None:
        start = self._fit_start
        assert start is not None
        if trainer.optimizers[0] is not start.optimizer:
            trainer.strategy.optimizers = [start.optimizer]
        start.optimizer.param_groups[:] = [{**g, "params": list(g["params"])} for g in start.groups]
        trainer.strategy.lr_scheduler_configs = list(start.configs)
        for config, state in zip(start.configs, start.scheduler_states, strict=True):
            config.scheduler.load_state_dict(copy.deepcopy(state))
            truncate_group_lists(config.scheduler, len(start.groups))

    def _best_path(self) -> str:
        if self._best_path_override:
            return self._best_path_override
        return self._ckpt.best_model_path if self._ckpt is not None else ""

    def _current_best_key(self) -> tuple[str, float] | None:
        if self._ckpt is None or self._ckpt.best_model_score is None:
            return None
        return self._ckpt.best_model_path, float(self._ckpt.best_model_score)

    # ------------------------------------------------------------------ distributed runs: one monitored value
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Before early stopping and checkpointing act on a validation: every rank must hold the same monitored
        values (ftexp.callbacks.metric_sync), else stop with a message saying how to log them synchronized."""
        check_monitored_metrics_synced(trainer, [self._es, self._ckpt])

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        key = self._current_best_key()
        if key is not None and key != self._best_key:
            # the checkpoint being written is a new best (ModelCheckpoint updates best_* before saving)
            self._best_key = key
            self._best_depth = self._depth
            self._best_path_override = None
            self._snapshot_due = self.restore_best and self.restore_best_from == "memory"
        return {"curr_depth": self._depth, "best_depth": self._best_depth, "transitions": self.transitions}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._snapshot_due:
            self._snapshot_due = False
            self._snapshot = BestStateSnapshot.capture(
                pl_module, self._depth, trainer.optimizers[0], [c.scheduler for c in trainer.lr_scheduler_configs]
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resumed_depth = int(state_dict["curr_depth"])
        self._best_depth = int(state_dict.get("best_depth", self._resumed_depth))
        # taken over in on_fit_start: Lightning also loads callback states for trainer.test(ckpt_path=...)
        self._resumed_transitions = list(state_dict.get("transitions", []))

    # ------------------------------------------------------------------ schedule file
    def _write_schedule(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self.schedule is not None
        log_dir = Path(self.log_dir or trainer.log_dir or trainer.default_root_dir)
        path = log_dir / f"{type(pl_module).__name__}_ft_schedule.yaml"
        source = Path(self.schedule.source)
        if source.is_file() and path.resolve() == source.resolve():
            path = path.with_name(path.stem + "_resolved.yaml")  # never overwrite the user's own schedule
        self.schedule_path = path
        if not trainer.is_global_zero:
            return
        resolved = self.schedule.to_dict()
        for depth, phase in resolved.items():
            if depth > 0 and "lr" not in phase:
                phase["lr"] = self._default_lr()
        dump_schedule_yaml(resolved, path)
