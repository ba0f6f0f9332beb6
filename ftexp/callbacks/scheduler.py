"""``FinetuningScheduler``: the phase state machine that thaws a model phase by phase during ``trainer.fit``.

The schedule logic (parsing, resolution, checks, generation) lives in :mod:`ftexp.schedule`; this callback only
decides *when* to move to the next phase and performs the move: restore the best state, thaw, grow the optimizer,
extend or rebuild LR schedulers, and re-wrap DDP.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn

from ftexp.callbacks.arguments import parse_arguments
from ftexp.callbacks.best_state import BestStateSnapshot
from ftexp.callbacks.companions import connect_companions
from ftexp.callbacks.ddp import rewrap_ddp, trainable_names
from ftexp.callbacks.early_stopping import PhaseEarlyStopping
from ftexp.callbacks.fit_checks import check_optimizers, check_strategy
from ftexp.callbacks.freezing import apply_batchnorm_policy, set_trainable
from ftexp.callbacks.lightning_internals import resumes_inside_epoch
from ftexp.callbacks.metric_sync import check_monitored_metrics_synced
from ftexp.callbacks.phase_layout import LatestLRState, PhaseLayout, configured_phase0_lr, enforce_phase0
from ftexp.callbacks.restore import CheckpointFileSource, RestoreSource
from ftexp.callbacks.schedule_file import resolved_schedule_path, write_resolved_schedule
from ftexp.schedule import (
    Schedule,
    ScheduleError,
    check_phase_directives,
    defaults,
    generate_schedule,
    resolve_layerwise,
    resolve_schedule,
)
from ftexp.schedule.run_rules import epoch_transition_problems, late_transition_warnings

DEPTH_METRIC = "finetuning_depth"


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
        base_max_lr: float | None = defaults.BASE_MAX_LR,
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
        parsed = parse_arguments(
            ft_schedule,
            reinit_lr_cfg=reinit_lr_cfg,
            reinit_optim_cfg=reinit_optim_cfg,
            restore_best_from=restore_best_from,
            implicit_mode=implicit_mode,
            logging_level=logging_level,
            strategy_adapter_cfg=strategy_adapter_cfg,
            custom_strategy_adapter=custom_strategy_adapter,
        )
        self.user_schedule, self.reinit_lr, self.reinit_optim = (
            parsed.user_schedule,
            parsed.reinit_lr,
            parsed.reinit_optim,
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
        self._layout: PhaseLayout | None = None
        self._phase0_lr: float | None = None  # what phase 0's lr_decay groups scale from, once the optimizer exists
        self._snapshot: BestStateSnapshot | None = None
        self.best_snapshots: list[dict[str, Any]] = []  # one record per in-memory copy taken (memory restores)
        self._best_key: tuple[str, float] | None = None
        self._best_path_override: str | None = None
        self._ddp_trainable: frozenset[str] | None = None

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
        return self.schedule.final_depth(self.max_depth)

    @property
    def depth_remaining(self) -> int:
        return self.final_depth - self._depth

    # ------------------------------------------------------------------ setup: everything validated here
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        check_strategy(trainer, self.allow_untested)
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
        return resolve_layerwise(schedule, pl_module)

    def _check_transition_rules(self, trainer: pl.Trainer) -> None:
        assert self.schedule is not None
        self._extend_max_epochs_to_final_phase(trainer)
        for problem in epoch_transition_problems(self.schedule, self.final_depth, self.epoch_transitions_only):
            raise problem
        for warning in late_transition_warnings(self.schedule, self.final_depth, trainer.max_epochs):
            rank_zero_warn(f"ftexp: {warning}.")

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
        check_optimizers(trainer, self.allow_untested)
        optimizer = trainer.optimizers[0]
        self._phase0_lr = configured_phase0_lr(self.schedule, optimizer)
        enforce_phase0(
            self.schedule,
            optimizer,
            trainer.lr_scheduler_configs,
            pl_module,
            allowed_to_fix=self.enforce_phase0_params,
            apply_lambdas_new_pgs=self.apply_lambdas_new_pgs,
        )
        if self.schedule[0].groups:
            blocks = [f"{group.name} {group.lr_for(self._phase0_lr):.3g}" for group in self.schedule[0].groups]
            rank_zero_info(f"ftexp: phase 0 trains each block at its own lr: {', '.join(blocks)}")
        no_decay = getattr(pl_module, "no_decay", None)
        check_phase_directives(
            self.schedule.truncated(self.final_depth),
            len(optimizer.param_groups),
            no_decay,
            reinit_lr=self.reinit_lr,
            reinit_optim=self.reinit_optim,
            allow_untested=self.allow_untested,
        )
        self._layout = PhaseLayout(
            self.schedule,
            trainer,
            reinit_lr=self.reinit_lr,
            reinit_optim=self.reinit_optim,
            base_max_lr=self.base_max_lr,
            apply_lambdas_new_pgs=self.apply_lambdas_new_pgs,
            frozen_bn_track_running_stats=self.frozen_bn_track_running_stats,
        )
        if self._resumed_depth is not None:
            self.transitions = self._resumed_transitions
        if self._resumed_depth:
            self._layout.replay(trainer, pl_module, 1, self._resumed_depth)
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

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._best_key = self._current_best_key()
        if self.schedule is not None and self._layout is not None and resumes_inside_epoch(trainer):
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
        if self.schedule is None or self._layout is None:
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
        latest_lrs = LatestLRState.capture(trainer)
        source = self._restore_best(trainer, pl_module) if self.restore_best else None
        restored = {"source": source.kind, "depth": source.depth, "bytes": source.nbytes} if source else None
        first = source.depth + 1 if source else self._depth + 1
        self._layout.replay(trainer, pl_module, first, new_depth, latest_lrs=latest_lrs, snapshot=self._snapshot)
        self._depth = new_depth
        self._sync_ddp(trainer, pl_module)
        if self._es is not None:
            self._es.start_phase(final=new_depth == self.final_depth)
        seconds = time.perf_counter() - started
        self._report_transition(trainer, pl_module, trainable_before, restored, seconds)

    def _sync_ddp(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = trainable_names(pl_module)
        if (now != self._ddp_trainable and rewrap_ddp(trainer)) or self._ddp_trainable is None:
            self._ddp_trainable = now

    def _report_transition(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        trainable_before: frozenset[str],
        restored: dict[str, Any] | None,
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
            "restored_from_depth": restored["depth"] if restored else None,
            "restore": restored,
            "seconds": seconds,
        }
        self.transitions.append(record)
        restored_text = f", restored best of phase {restored['depth']} from {restored['source']}" if restored else ""
        rank_zero_info(
            f"ftexp: epoch {trainer.current_epoch}: phase {self._depth}/{self.final_depth} thawed {len(newly)} "
            f"tensors ({record['new_weights']:,} weights){restored_text}; lrs {[f'{lr:.3g}' for lr in lrs]} "
            f"({seconds * 1e3:.1f} ms)"
        )

    # ------------------------------------------------------------------ restore best
    def _restore_best(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> RestoreSource | None:
        """Roll model, optimizer and schedulers back to the best checkpoint; returns where the state came from
        (None: no best yet)."""
        trainer.strategy.barrier("ftexp_restore_best")
        source = self._restore_source(trainer)
        if source is None:
            rank_zero_info("ftexp: no checkpoint saved yet, nothing to restore.")
            return None
        self._layout.reset_to_fit_start(trainer)
        self._layout.replay(trainer, pl_module, 1, source.depth, snapshot=self._snapshot)
        source.load_into(pl_module, trainer.optimizers[0], [c.scheduler for c in trainer.lr_scheduler_configs])
        return source

    def _restore_source(self, trainer: pl.Trainer) -> RestoreSource | None:
        if self.restore_best_from == "memory" and self._snapshot is not None:
            return self._snapshot
        path = self._best_path()
        return CheckpointFileSource.read(trainer.strategy, path, self.state_key) if path else None

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
        return {"curr_depth": self._depth, "best_depth": self._best_depth, "transitions": self.transitions}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """A checkpoint is being written: when it is a new best (the monitoring ModelCheckpoint updated its best
        before saving), note the phase it belongs to, in this checkpoint too, and take the in-memory copy."""
        key = self._current_best_key()
        if key is None or key == self._best_key:
            return
        self._best_key, self._best_depth, self._best_path_override = key, self._depth, None
        own_state = checkpoint.get("callbacks", {}).get(self.state_key)
        if own_state is not None:
            own_state["best_depth"] = self._best_depth
        if self.restore_best and self.restore_best_from == "memory":
            self._snapshot, record = BestStateSnapshot.capture_recorded(trainer, pl_module, self._depth)
            self.best_snapshots.append(record)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resumed_depth = int(state_dict["curr_depth"])
        self._best_depth = int(state_dict.get("best_depth", self._resumed_depth))
        # taken over in on_fit_start: Lightning also loads callback states for trainer.test(ckpt_path=...)
        self._resumed_transitions = list(state_dict.get("transitions", []))

    # ------------------------------------------------------------------ schedule file
    def _write_schedule(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self.schedule is not None
        log_dir = self.log_dir or trainer.log_dir or trainer.default_root_dir
        self.schedule_path = resolved_schedule_path(self.schedule, log_dir, type(pl_module).__name__)
        if trainer.is_global_zero:
            default_lr = self._layout.default_lr if self._layout is not None else self.base_max_lr
            write_resolved_schedule(self.schedule, self.schedule_path, default_lr, self._phase0_lr)
