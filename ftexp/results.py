"""What a run leaves behind: its per-epoch metrics (:class:`EpochMetrics`) and its record, ``result.json``
(:class:`ftexp.record.RunRecord`), which :class:`RunRecorder` keeps from the start of an attempt to its end and
writes (as the summary's own files are) by :func:`atomic_write` (defined in :mod:`ftexp.files`, which does not import
Lightning)."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.accelerators import CPUAccelerator, CUDAAccelerator
from pytorch_lightning.callbacks import Callback, LearningRateMonitor
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from ftexp.attempt_log import attempts_of_this_run, log_start, read_starts
from ftexp.callbacks import FinetuningScheduler
from ftexp.callbacks.lightning_internals import resumes_mid_epoch
from ftexp.callbacks.preemption import PreemptionCheckpoint, RequeueRequested
from ftexp.files import atomic_write
from ftexp.rank_errors import attribute_failure
from ftexp.record import (
    AttemptRecord,
    BestEpoch,
    EpochRow,
    ParamGroupRecord,
    PhaseStart,
    RunRecord,
    RunStatus,
    TestResult,
    TransitionRecord,
)
from ftexp.run_schedule import recipe_line
from ftexp.schedule import defaults
from ftexp.schedule.names import largest_modules
from ftexp.schedule.optim_specs import group_counts

if TYPE_CHECKING:
    from ftexp.train import RunObjects

log = logging.getLogger(__name__)


class EpochMetrics(Callback):
    """Records the epoch-level metrics (train, validation, fine-tuning depth, learning rates) at the end of every
    training epoch, when Lightning has reduced them. The history travels in checkpoints, so a resumed run reports
    every epoch of the run, not only those since the resume (``first_epoch`` says where this process started).

    Learning rates are those LearningRateMonitor logged in the epoch: ``trainer.callback_metrics`` keeps every value
    ever put in it, so after a phase replaced the LR scheduler it still holds the old scheduler's last lrs
    (``lr-AdamW/pg1`` beside the new ``phase2_cosine/pg1``), which a row must not repeat as if they were current.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.first_epoch = 0
        self._resumed_history: list[dict[str, float]] | None = None
        self._learning_rates = LoggedLearningRates()
        # what LearningRateMonitor logged at this epoch's start (saved: a fit resumed inside the epoch logs it again)
        self._epoch_start_lrs: dict[str, float] = {}
        self._resumed_epoch_start_lrs: dict[str, float] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_epoch = trainer.current_epoch  # > 0 after a resume
        if self._resumed_history is not None:
            self.history, self._resumed_history = self._resumed_history, None
        if resumes_mid_epoch(trainer) and self._resumed_epoch_start_lrs:
            # Lightning calls no on_train_epoch_start for the epoch it resumes in, where LearningRateMonitor logs the
            # epoch's lrs: log again what it logged then (not the lrs now, a step-interval scheduler has moved them),
            # so that the epoch's row and the loggers have them as without the resume
            self._epoch_start_lrs = replay_learning_rates(trainer, self._resumed_epoch_start_lrs)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after LearningRateMonitor's hook: this callback comes last (ftexp.train.build)
        logged = self._learning_rates.logged_since_last_call(trainer)
        self._epoch_start_lrs = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if any(key == name or key.startswith(f"{name}-") for name in logged)
        }

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stale = self._learning_rates.not_logged_this_epoch(trainer)
        metrics = {name: value for name, value in scalars(trainer.callback_metrics).items() if name not in stale}
        row = {"epoch": trainer.current_epoch, **metrics}
        # an epoch cut short by a preemption is trained again after the resume: keep its final row only
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epoch_start_lrs": self._epoch_start_lrs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning also loads callback states for trainer.test(ckpt_path=...): only a fit takes the history over
        self._resumed_history = list(state_dict.get("history", []))
        self._resumed_epoch_start_lrs = dict(state_dict.get("epoch_start_lrs", {}))


def replay_learning_rates(trainer: pl.Trainer, logged: dict[str, float]) -> dict[str, float]:
    """Log ``logged`` (lr metrics a LearningRateMonitor logged) again as that monitor would: in its ``lrs`` lists,
    ``trainer.callback_metrics`` and the loggers. Returns ``logged``."""
    for monitor in trainer.callbacks:
        if isinstance(monitor, LearningRateMonitor):
            for name, values in monitor.lrs.items():
                if name in logged:
                    values.append(logged[name])
    trainer.callback_metrics.update({key: torch.tensor(value) for key, value in logged.items()})
    for logger in trainer.loggers:
        logger.log_metrics(logged, step=trainer.global_step)
    return logged


class LoggedLearningRates:
    """Which of LearningRateMonitor's names it logged since the last call: the names whose list of logged values
    (``LearningRateMonitor.lrs``: name -> values, one appended whenever the name is logged; Lightning 2.6) grew.
    A name it renamed (``lr-AdamW`` becomes ``lr-AdamW/pg1`` when a second group is added) or stopped logging (its
    scheduler was replaced) did not grow. tests/test_results_learning_rates.py fails when this changes."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._seen: set[str] = set()

    def logged_since_last_call(self, trainer: pl.Trainer) -> set[str]:
        """The names logged since the last :meth:`not_logged_this_epoch`, without counting them as seen."""
        counts = self._counts_of(trainer)
        return {name for name, count in counts.items() if count > self._counts.get(name, 0)}

    @staticmethod
    def _counts_of(trainer: pl.Trainer) -> dict[str, int]:
        counts: dict[str, int] = {}
        for monitor in trainer.callbacks:
            if isinstance(monitor, LearningRateMonitor):
                for name, values in monitor.lrs.items():
                    counts[name] = counts.get(name, 0) + len(values)
        return counts

    def not_logged_this_epoch(self, trainer: pl.Trainer) -> set[str]:
        """The metric names (the lrs and their ``-momentum`` and ``-weight_decay`` companions) of every name a
        LearningRateMonitor of ``trainer`` has used and did not log since the last call."""
        counts = self._counts_of(trainer)
        logged = {name for name, count in counts.items() if count > self._counts.get(name, 0)}
        self._counts, self._seen = counts, self._seen | set(counts)
        return {name + suffix for name in self._seen - logged for suffix in ("", "-momentum", "-weight_decay")}


class RunRecorder:
    """The bookkeeping of one attempt at a run, in one place: its :class:`~ftexp.record.RunRecord`, begun before
    anything is built (``failed`` until the attempt says otherwise), told how the attempt ended (:meth:`fit_ended`,
    :meth:`stopped`) and, however it ended, completed with what the fit left and written (:meth:`finish`).

    A resumed run carries the earlier attempts on: ``history``, ``transitions`` and ``attempts`` cover the whole
    run, ``wall_time_s`` and ``cpu_time_s`` are sums over attempts (:func:`cpu_seconds` says what CPU time counts).
    A start that fails never overwrites the ``result.json`` an earlier attempt left in the same run dir. Under DDP
    rank 0 writes the file; when several ranks fail, ``error`` is the first failure, naming its rank, and
    ``rank_errors`` holds each rank's (:mod:`ftexp.rank_errors`).
    """

    def __init__(self, cfg: DictConfig, ckpt_path: str | None, overrides: list[str]) -> None:
        self._started, self._started_wall, self._failed_at = time.perf_counter(), time.time(), 0.0
        self._started_cpu = cpu_seconds()
        self._last_checkpoint = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
        self._requeue: PreemptionCheckpoint | None = None
        self.run_dir = Path(cfg.paths.output_dir)
        self.earlier = read_earlier_record(self.run_dir / "result.json")
        self.attempt = AttemptRecord(
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            resumed_from=ckpt_path,
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
        )
        self.record = RunRecord(
            name=_select(cfg, "name"),
            scenario=_select(cfg, "schedule.name"),
            recipe=recipe_line(cfg),
            seed=_select(cfg, "seed"),
            sweep=_select(cfg, "sweep.name"),
            overrides=overrides,
            status=RunStatus.FAILED,
            resumed_from=ckpt_path,
            run_dir=str(self.run_dir),
            result_file=str(self.run_dir / "result.json"),
        )

    def started(self) -> None:
        """The run dir exists and training is about to begin: log this attempt's start (rank 0), so that a later
        attempt lists it even if it dies without a word (:mod:`ftexp.attempt_log`)."""
        if rank_zero_only.rank == 0:
            log_start(self.run_dir, self.attempt)

    def fit_ended(self, interrupted: bool, test: TestResult | None) -> None:
        """The fit returned: completed (and ``test``, unless the run tests nothing), or stopped by Lightning."""
        self.record.test = test
        self.record.status = RunStatus.INTERRUPTED if interrupted else RunStatus.COMPLETED

    def stopped(self, err: BaseException, objects: RunObjects | None) -> None:
        """The attempt raised ``err``: requeued (the preemption checkpoint was saved and a cluster owner will start
        the job again), interrupted (a stop that left a checkpoint to resume from) or failed."""
        if isinstance(err, RequeueRequested):
            self._requeue = objects.preemption if objects is not None else None
            requeued = self._requeue is not None and self._requeue.can_requeue
            self.record.status = RunStatus.REQUEUED if requeued else RunStatus.INTERRUPTED
            self.record.error = str(err)
            return
        # Lightning marks the trainer interrupted after any exception in fit; only a stop is an interruption: Ctrl-C
        # (which Lightning turns into SystemExit after a graceful shutdown) or SIGTERM (SIGTERMException)
        stop = isinstance(err, (KeyboardInterrupt, SystemExit))
        interrupted = stop and objects is not None and objects.trainer.interrupted
        self.record.status = RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED
        self.record.error = f"{type(err).__name__}: {err}"
        self._failed_at = time.time()

    def finish(self, objects: RunObjects | None) -> None:
        """Record what the fit left (when the objects were built) and this attempt, write ``result.json``, and give
        the preemption signal to its owner when the attempt is to be requeued (:func:`hand_over`)."""
        record, attempt = self.record, self.attempt
        if objects is not None:
            record_fit(record, objects, self._last_checkpoint)
            if record.status == RunStatus.FAILED:
                self._attribute_failure()
        attempt.status = record.status
        attempt.start_epoch = objects.metrics.first_epoch if objects is not None else None
        attempt.end_epoch = objects.trainer.current_epoch if objects is not None else None
        attempt.wall_time_s = round(time.perf_counter() - self._started, 2)
        attempt.cpu_time_s = round(cpu_seconds() - self._started_cpu, 2)
        earlier = (self.earlier.attempts or []) if self.earlier is not None else []
        if attempt.attempt_id is not None:  # logged at its start: the log also knows the attempts that died
            record.attempts = attempts_of_this_run(read_starts(self.run_dir), earlier, attempt)
        else:  # a start that failed before its run dir existed, or a rank that logs nothing
            record.attempts = [*(earlier if attempt.resumed_from else []), attempt]
        record.wall_time_s = round(sum(a.wall_time_s or 0.0 for a in record.attempts), 2)
        cpu_times = [a.cpu_time_s for a in record.attempts if a.cpu_time_s is not None]
        record.cpu_time_s = round(sum(cpu_times), 2) if len(cpu_times) == len(record.attempts) else None
        if objects is not None or self.earlier is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_record(record)
        if self._requeue is not None and objects is not None:  # only a built run has a preemption checkpoint
            hand_over(self._requeue, record, attempt, objects.trainer.global_rank)

    def _attribute_failure(self) -> None:
        """The first failure among the ranks, not the connection error it caused on rank 0. (``attribute_failure``
        works on ``result.json``'s layout: ``error``, and ``rank_errors`` when other ranks failed too.)"""
        failure: dict[str, Any] = {"error": self.record.error}
        attribute_failure(failure, self.run_dir, rank_zero_only.rank, self._failed_at, since=self._started_wall)
        self.record.error, self.record.rank_errors = failure["error"], failure.get("rank_errors")


def cpu_seconds() -> float:
    """CPU time (user + system) used so far by this process, all its threads, and the child processes it has
    waited for: DataLoader workers (unless persistent) and ddp_spawn's rank processes, which end before the record
    is written. Under ddp, where this process is rank 0 and each other rank a process of its own (on other nodes, or
    started by rank 0 and still running when the record is written), only rank 0's time counts."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def record_fit(record: RunRecord, objects: RunObjects, last_checkpoint: Path) -> None:
    """Fill in what the fit left: epochs, the best and the final epoch, phases, parameters, checkpoints, where the
    events are, the hardware and the per-epoch history."""
    history = objects.metrics.history
    checkpoint = objects.checkpoint
    monitor, mode = (
        (checkpoint.monitor, checkpoint.mode)
        if checkpoint and checkpoint.monitor
        else (defaults.MONITOR, defaults.MODE)
    )
    logger = objects.trainer.logger
    record.epochs_run = objects.trainer.current_epoch
    record.best = best_epoch(history, monitor, mode)
    record.final = EpochRow.from_dict(history[-1]) if history else EpochRow()
    record_phases(record, objects.fts, objects.model, objects.metrics.first_epoch)
    record.param_groups = param_groups(objects.trainer, objects.model, objects.fts)
    record.total_params = sum(p.numel() for p in objects.model.parameters())
    score = checkpoint.best_model_score if checkpoint is not None else None
    record.best_checkpoint = (checkpoint.best_model_path or None) if checkpoint is not None else None
    record.best_score = float(score) if score is not None else None
    record.last_checkpoint = str(last_checkpoint) if last_checkpoint.is_file() else None
    record.tensorboard_dir = logger.log_dir if logger is not None else None
    record.hardware = hardware_summary(objects.trainer)
    record.history = [EpochRow.from_dict(row) for row in history]


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items() if _is_scalar(value)}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def best_epoch(history: list[dict[str, float]], monitor: str, mode: str) -> BestEpoch:
    """The history row with the best value of ``monitor`` (the first one on ties); only the monitor and mode when it
    was never logged."""
    rows = [row for row in history if monitor in row and not math.isnan(row[monitor])]
    if not rows:
        return BestEpoch(monitor=monitor, mode=mode)
    pick = min if mode == "min" else max
    row = EpochRow.from_dict(pick(rows, key=lambda row: row[monitor]))
    return BestEpoch(epoch=row.epoch, metrics=row.metrics, monitor=monitor, mode=mode)


def record_phases(
    record: RunRecord, fts: FinetuningScheduler | None, module: pl.LightningModule, first_epoch: int
) -> None:
    """Phases run (start epochs, from the scheduler's transitions) and trainable weights per phase of the schedule.

    Without a scheduler the whole run is one phase training every parameter that requires grad.
    """
    numel = {name: p.numel() for name, p in module.named_parameters()}
    if fts is None or fts.schedule is None:
        record.phases_run = [PhaseStart(depth=0, start_epoch=first_epoch)]
        record.trainable_params_per_phase = {"0": sum(p.numel() for p in module.parameters() if p.requires_grad)}
        record.final_depth = 0
        return
    # the scheduler's transitions travel in checkpoints, so they normally start at depth 1; a checkpoint without
    # them starts the record at the depth resumed from
    start_depth = fts.curr_depth - len(fts.transitions)
    record.phases_run = [PhaseStart(depth=start_depth, start_epoch=first_epoch if start_depth else 0)]
    record.phases_run += [PhaseStart(depth=t["depth"], start_epoch=t["epoch"]) for t in fts.transitions]
    record.transitions = [TransitionRecord.from_dict(t) for t in fts.transitions]
    record.trainable_params_per_phase = {
        str(depth): sum(numel[name] for name in fts.schedule.params_through(depth))
        for depth in range(fts.final_depth + 1)
    }
    record.final_depth = fts.final_depth
    record.reached_depth = fts.curr_depth
    record.schedule_path = str(fts.schedule_path) if fts.schedule_path else None


def param_groups(
    trainer: pl.Trainer, module: pl.LightningModule, fts: FinetuningScheduler | None
) -> list[ParamGroupRecord] | None:
    """The optimizer's parameter groups as the fit left them (``None`` without an optimizer): for each, the phase
    that added it, its weight decay, its tensors and the modules they sit in (:class:`ParamGroupRecord`).

    Phases only ever append groups (replays after a restore or a resume append them in the same order), so a
    group's index says its phase: phase 0 holds the groups the optimizer started with, and every later phase the
    number :func:`~ftexp.schedule.optim_specs.group_counts` gives, empty groups included. Without a scheduler every
    group is phase 0's.
    """
    if not trainer.optimizers:
        return None
    groups = trainer.optimizers[0].param_groups
    name_of = {id(p): name for name, p in module.named_parameters()}
    names = [[name_of[id(p)] for p in group["params"] if id(p) in name_of] for group in groups]
    if fts is not None and fts.schedule is not None:
        # what a group's modules are named within: its phase, or its block of an lr_decay phase
        units = [list(block) for phase in fts.schedule.phases for block in phase.block_params]
        added = group_counts(fts.schedule.truncated(fts.curr_depth), 0, getattr(module, "no_decay", None))
        phase0_groups = len(groups) - added[-1]
        ends = [phase0_groups + count for count in added] if phase0_groups >= 0 else []  # one past each phase's
    else:
        units, ends = [[name for group in names for name in group]], [len(groups)]
    module_of = {name: label for unit in units for name, label in largest_modules(unit, list(name_of.values())).items()}
    records = []
    for index, (group, group_names) in enumerate(zip(groups, names, strict=True)):
        phase = next((depth for depth, end in enumerate(ends) if index < end), None)
        weight_decay = group.get("weight_decay")
        records.append(
            ParamGroupRecord(
                phase=phase,
                weight_decay=float(weight_decay) if isinstance(weight_decay, int | float) else None,
                tensors=len(group_names),
                modules=list(dict.fromkeys(module_of.get(name, name) for name in group_names)),
            )
        )
    return records


def hardware_summary(trainer: pl.Trainer) -> dict[str, Any]:
    """Where the run trained: enough to turn wall time into GPU- or CPU-hours in the sweep summary."""
    kinds = {CUDAAccelerator: "gpu", CPUAccelerator: "cpu"}
    return {
        "accelerator": kinds.get(type(trainer.accelerator), type(trainer.accelerator).__name__),
        "devices": trainer.num_devices * trainer.num_nodes,
        "num_nodes": trainer.num_nodes,
        "cpu_threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def read_earlier_record(path: Path) -> RunRecord | None:
    """The ``result.json`` a previous attempt in this run dir left (``None`` if none or unreadable)."""
    try:
        return RunRecord.read(path)
    except (OSError, ValueError):
        return None


def hand_over(requeue: PreemptionCheckpoint, record: RunRecord, attempt: AttemptRecord, rank: int) -> None:
    """Give the preemption signal to its owner once ``result.json`` records the attempt as requeued. On global
    rank 0 submitit's handler requeues the job and exits the process (``SystemExit`` passes through).

    The owner may refuse: after ``max_num_timeout`` time-outs submitit raises ``UncompletedJobError`` and the job
    ends there, so ``result.json`` is rewritten to say it failed. On any other rank submitit's handler returns
    without acting (rank 0 requeues the whole job): the task then ends cleanly, not with a ``RequeueRequested``
    traceback and exit status 1, which could make ``srun`` end the job before rank 0 has requeued it.
    """
    try:
        requeue.hand_over()
    except Exception as err:
        record.status = attempt.status = RunStatus.FAILED
        record.error = f"{type(err).__name__}: {err}"
        write_record(record)
        raise
    if rank != 0 and requeue.can_requeue:
        log.info(f"rank {rank}: the preemption signal's owner leaves the requeue to rank 0; this task ends here")
        raise SystemExit(0)


@rank_zero_only
def write_record(record: RunRecord) -> None:
    """Write ``record.result_file`` atomically: a sweep summary reading the file never sees half of it."""
    atomic_write(Path(str(record.result_file)), lambda partial: partial.write_text(record.to_json()))


def _select(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
