"""The task function: config -> objects -> fit (and test) -> ``result.json`` in the run directory.

``run`` is importable and picklable (launchers such as submitit ship it to other processes), never changes the
working directory, and writes everything under ``cfg.paths.output_dir``::

    <run_dir>/
      .hydra/                 composed config, Hydra's own settings, the command-line overrides
      config_tree.log         the resolved config, as printed at start
      checkpoints/            best and last.ckpt (a rerun in the same dir resumes from last.ckpt)
      tensorboard/            event files
      <Module>_ft_schedule.yaml   the resolved fine-tuning schedule (scheduled scenarios)
      result.json             scenario, seed, metrics, phases, timings
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.accelerators import CPUAccelerator, CUDAAccelerator
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from ftexp.callbacks import FinetuningScheduler
from ftexp.callbacks.preemption import PreemptionCheckpoint, RequeueRequested
from ftexp.conf_schema import scheduler_node, validate_config
from ftexp.config import instantiate
from ftexp.dry_run import RunSchedule, dry_run, model_inputs, replaced_schedulers_note, resolve_run_schedule
from ftexp.rank_errors import attribute_failure
from ftexp.results import EpochMetrics, best_epoch, checkpoint_summary, phase_summary, scalars, write_json

log = logging.getLogger(__name__)


@dataclass
class RunObjects:
    """Everything a run is made of, built from the config but not yet trained."""

    datamodule: pl.LightningDataModule
    model: pl.LightningModule
    trainer: pl.Trainer
    metrics: EpochMetrics
    fts: FinetuningScheduler | None
    checkpoint: ModelCheckpoint | None  # the one tracking the best score
    preemption: PreemptionCheckpoint | None


def build(cfg: DictConfig) -> RunObjects:
    """Instantiate datamodule, model, callbacks, logger and trainer. The model takes its label count and
    vocabulary from the datamodule's task and tokenizer. The schedule is resolved against the model before any
    callback, logger or trainer exists, so a schedule that does not fit fails first
    (:class:`ftexp.conf_schema.ConfigError`)."""
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, **model_inputs(datamodule))
    run_schedule = resolve_run_schedule(cfg, model)
    logger: Logger | None = instantiate(cfg.logger) if cfg.get("logger") else None
    callbacks: list[Callback] = [
        build_scheduler(cfg, run_schedule)
        if run_schedule is not None and node is scheduler_node(cfg)
        else instantiate(node)
        for group in (cfg.schedule.callbacks, cfg.callbacks)
        for node in group.values()
        if node
    ]
    if logger is None and any(isinstance(cb, LearningRateMonitor) for cb in callbacks):
        log.info("no logger configured: LearningRateMonitor left out (it has nowhere to write)")
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    metrics = EpochMetrics()
    callbacks.append(metrics)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger if logger is not None else False)
    fts = next((cb for cb in callbacks if isinstance(cb, FinetuningScheduler)), None)
    checkpoint = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)
    preemption = next((cb for cb in callbacks if isinstance(cb, PreemptionCheckpoint)), None)
    return RunObjects(datamodule, model, trainer, metrics, fts, checkpoint, preemption)


def build_scheduler(cfg: DictConfig, run_schedule: RunSchedule) -> FinetuningScheduler:
    """The schedule group's FinetuningScheduler with the schedule resolved for this model (a preset built, the LR
    schedulers that lr_reinit=none drops removed) and lr_reinit=implicit's ``reinit_lr_cfg``."""
    node = OmegaConf.to_container(scheduler_node(cfg), resolve=True)
    node["ft_schedule"] = run_schedule.argument
    if cfg.lr_reinit.name == "implicit" and run_schedule.kind == "implicit":
        node["reinit_lr_cfg"] = OmegaConf.to_container(cfg.lr_reinit.reinit_lr_cfg, resolve=True)
    # (an explicit or preset schedule carries lr_reinit=implicit's scheduler in its phases: resolve_run_schedule)
    if run_schedule.replaced_lr_schedulers:
        log.info(replaced_schedulers_note(cfg.lr_reinit.name, run_schedule))
    return instantiate(node)


def resume_path(cfg: DictConfig) -> str | None:
    """``cfg.ckpt_path`` when set, else ``<checkpoint_dir>/last.ckpt`` when a previous attempt left one."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    return str(last) if last.is_file() else None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train (and test) one configuration; returns what it writes to ``<run_dir>/result.json``.

    The config is validated (:func:`ftexp.conf_schema.validate_config`) and the schedule resolved against the model
    before any callback, logger or trainer is built. The file is written however the run ends, with ``status``
    completed, interrupted, requeued (a cluster job stopped at a checkpoint, to continue in a later attempt) or
    failed (and the error), so that every job of a sweep leaves one; but a start that fails never overwrites the
    ``result.json`` an earlier attempt left in the same run dir. A resumed run carries the earlier attempts on:
    ``history``, ``transitions`` and ``attempts`` cover the whole run, ``wall_time_s`` is the sum over attempts.
    Under DDP rank 0 writes the file; when several ranks fail, ``error`` is the first failure, naming its rank, and
    ``rank_errors`` holds each rank's (:mod:`ftexp.rank_errors`).
    With ``dry_run=true`` it prints the phase plan instead (:func:`ftexp.dry_run.dry_run`) and writes nothing.
    """
    if cfg.get("dry_run"):
        return dry_run(cfg)
    started, started_wall = time.perf_counter(), time.time()
    run_dir = Path(cfg.paths.output_dir)
    earlier = read_earlier_result(run_dir / "result.json")
    ckpt_path = resume_path(cfg)
    attempt: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed_from": ckpt_path,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    result: dict[str, Any] = {
        "name": OmegaConf.select(cfg, "name", throw_on_resolution_failure=False),
        "scenario": OmegaConf.select(cfg, "schedule.name", throw_on_resolution_failure=False),
        "seed": OmegaConf.select(cfg, "seed", throw_on_resolution_failure=False),
        "sweep": OmegaConf.select(cfg, "sweep.name", throw_on_resolution_failure=False),
        "overrides": job_overrides(),
        "status": "failed",
        "resumed_from": ckpt_path,
        "run_dir": str(run_dir),
        "result_file": str(run_dir / "result.json"),
    }
    objects = None
    requeue: PreemptionCheckpoint | None = None
    failed_at = 0.0
    try:
        validate_config(cfg)
        if cfg.get("cpu_threads"):
            torch.set_num_threads(cfg.cpu_threads)
        pl.seed_everything(cfg.seed, workers=True)
        objects = build(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        print_config_tree(cfg, run_dir / "config_tree.log")
        if ckpt_path:
            log.info(f"resuming from {ckpt_path}")
        objects.trainer.fit(objects.model, datamodule=objects.datamodule, ckpt_path=ckpt_path)
        if cfg.test and not objects.trainer.interrupted:
            result["test"] = evaluate_best(objects)
        result["status"] = "interrupted" if objects.trainer.interrupted else "completed"
    except RequeueRequested as err:
        requeue = objects.preemption if objects is not None else None
        result["status"] = "requeued" if requeue is not None and requeue.can_requeue else "interrupted"
        result["error"] = str(err)
        raise
    except BaseException as err:
        # Lightning marks the trainer interrupted after any exception in fit; only a stop is an interruption: Ctrl-C
        # (which Lightning turns into SystemExit after a graceful shutdown) or SIGTERM (SIGTERMException)
        stopped = isinstance(err, (KeyboardInterrupt, SystemExit))
        interrupted = stopped and objects is not None and objects.trainer.interrupted
        result["status"] = "interrupted" if interrupted else "failed"
        result["error"] = f"{type(err).__name__}: {err}"
        failed_at = time.time()
        raise
    finally:
        if objects is not None:
            result.update(summarize(cfg, objects))
            if result["status"] == "failed":
                # the first failure among the ranks, not the connection error it caused on rank 0
                attribute_failure(result, run_dir, rank_zero_only.rank, failed_at, since=started_wall)
        attempt.update(
            status=result["status"],
            start_epoch=objects.metrics.first_epoch if objects is not None else None,
            end_epoch=objects.trainer.current_epoch if objects is not None else None,
            wall_time_s=round(time.perf_counter() - started, 2),
        )
        attempts = [*earlier.get("attempts", []), attempt] if ckpt_path else [attempt]
        result["attempts"] = attempts
        result["wall_time_s"] = round(sum(a.get("wall_time_s") or 0.0 for a in attempts), 2)
        if objects is not None or not earlier:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_result(result)
        if requeue is not None:
            hand_over(requeue, result, attempt, objects.trainer.global_rank)
    report_locations(result)
    return result


def read_earlier_result(path: Path) -> dict[str, Any]:
    """The ``result.json`` a previous attempt in this run dir left (``{}`` if none or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def job_overrides() -> list[str]:
    """The command-line overrides of this Hydra job (``[]`` outside Hydra, e.g. the compose API in tests): what
    sets a sweep's jobs apart, and so what the summary groups scenarios by."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def hand_over(requeue: PreemptionCheckpoint, result: dict[str, Any], attempt: dict[str, Any], rank: int) -> None:
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
        result["status"] = attempt["status"] = "failed"
        result["error"] = f"{type(err).__name__}: {err}"
        write_result(result)
        raise
    if rank != 0 and requeue.can_requeue:
        log.info(f"rank {rank}: the preemption signal's owner leaves the requeue to rank 0; this task ends here")
        raise SystemExit(0)


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


def evaluate_best(objects: RunObjects) -> dict[str, Any]:
    """Test the best checkpoint (the current weights when there is none). Under DDP every rank tests rank 0's best
    checkpoint, the file rank 0 wrote: with synchronized metrics the ranks already agree on it, and a user's module
    whose checkpoint monitor is not synchronized must not make a rank look for a file that was never written."""
    best = objects.checkpoint.best_model_path if objects.checkpoint is not None else ""
    best = objects.trainer.strategy.broadcast(best, src=0)
    metrics = objects.trainer.test(objects.model, datamodule=objects.datamodule, ckpt_path=best or None)
    return {**scalars(metrics[0] if metrics else {}), "checkpoint": best or None}


def summarize(cfg: DictConfig, objects: RunObjects) -> dict[str, Any]:
    history = objects.metrics.history
    checkpoint = objects.checkpoint
    monitor, mode = (checkpoint.monitor, checkpoint.mode) if checkpoint and checkpoint.monitor else ("val_loss", "min")
    logger = objects.trainer.logger
    return {
        "epochs_run": objects.trainer.current_epoch,
        "best": {"monitor": monitor, "mode": mode, **(best_epoch(history, monitor, mode) or {})},
        "final": history[-1] if history else {},
        **phase_summary(objects.fts, objects.model, objects.metrics.first_epoch),
        "total_params": sum(p.numel() for p in objects.model.parameters()),
        **checkpoint_summary(checkpoint, Path(cfg.paths.checkpoint_dir) / "last.ckpt"),
        "tensorboard_dir": logger.log_dir if logger is not None else None,
        "hardware": hardware_summary(objects.trainer),
        "history": history,
    }


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: Path) -> None:
    """Print the resolved config as a tree (top-level values first, then one branch per group) and save the same
    text to ``save_to``."""
    tree = Tree("config", guide_style="dim")
    values = {key: value for key, value in cfg.items() if not OmegaConf.is_config(value)}
    branches = {"(top level)": OmegaConf.create(values)} | {k: v for k, v in cfg.items() if OmegaConf.is_config(v)}
    for key, node in branches.items():
        text = OmegaConf.to_yaml(node, resolve=True).rstrip()
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    Console().print(tree)
    with save_to.open("w") as file:
        Console(file=file, width=120, color_system=None).print(tree)


@rank_zero_only
def write_result(result: dict[str, Any]) -> None:
    write_json(Path(result["result_file"]), result)


@rank_zero_only
def report_locations(result: dict[str, Any]) -> None:
    places = {
        "run dir": result["run_dir"],
        "result": result["result_file"],
        "best ckpt": result.get("best_checkpoint"),
        "last ckpt": result.get("last_checkpoint"),
        "schedule": result.get("schedule_path"),
        "tensorboard": f"tensorboard --logdir {result['tensorboard_dir']}" if result.get("tensorboard_dir") else None,
    }
    log.info("outputs:\n" + "\n".join(f"  {label:<12} {place}" for label, place in places.items() if place))
