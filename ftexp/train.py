"""The task function: config -> objects -> fit (and test) -> ``result.json`` in the run directory.

``run`` is importable and picklable (launchers such as submitit ship it to other processes), never changes the
working directory, and writes everything under ``cfg.paths.output_dir``::

    <run_dir>/
      .hydra/                 composed config, Hydra's own settings, the command-line overrides
      config_tree.log         the resolved config as a tree (the console says where it is)
      attempts.log            one line per start of the run (ftexp.attempt_log: attempts that died are listed too)
      checkpoints/            best and last.ckpt (a rerun in the same dir resumes from last.ckpt)
      tensorboard/            event files (the logger group's: csv/ with logger=csv, wandb/ with logger=wandb)
      mlflow.db, mlartifacts/ logger=mlflow's local store (a sweep's jobs share the sweep dir's: ftexp.trackers)
      <Module>_ft_schedule.yaml   the resolved fine-tuning schedule (scheduled scenarios)
      result.json             scenario, seed, metrics, phases, timings
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from ftexp.callbacks import FinetuningScheduler
from ftexp.callbacks.ddp import DestroyProcessGroupAtExit
from ftexp.callbacks.preemption import PreemptionCheckpoint
from ftexp.config import instantiate, scheduler_node, validate_config
from ftexp.dry_run import dry_run
from ftexp.record import RunRecord, TestResult
from ftexp.results import EpochMetrics, RunRecorder, scalars
from ftexp.run_schedule import (
    RunSchedule,
    model_inputs,
    model_node,
    replaced_schedulers_note,
    resolve_run_schedule,
)
from ftexp.trackers import close_trackers, log_config

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
    (:class:`ftexp.config.ConfigError`)."""
    datamodule = instantiate(cfg.data)
    model = instantiate(model_node(cfg), **model_inputs(datamodule))
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
    callbacks += [metrics, DestroyProcessGroupAtExit()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger if logger is not None else False)
    fts = next((cb for cb in callbacks if isinstance(cb, FinetuningScheduler)), None)
    checkpoint = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)
    preemption = next((cb for cb in callbacks if isinstance(cb, PreemptionCheckpoint)), None)
    return RunObjects(datamodule, model, trainer, metrics, fts, checkpoint, preemption)


def build_scheduler(cfg: DictConfig, run_schedule: RunSchedule) -> FinetuningScheduler:
    """The schedule group's FinetuningScheduler with the schedule resolved for this model (a preset built, the LR
    schedulers that lr_reinit=none drops removed) and lr_reinit=implicit's ``reinit_lr_cfg``."""
    node = OmegaConf.to_container(scheduler_node(cfg), resolve=True)
    node.pop("ft_schedule", None)  # passed below as the resolved Schedule object: parsed once, never as YAML again
    if cfg.lr_reinit.name == "implicit" and run_schedule.kind == "implicit":
        node["reinit_lr_cfg"] = OmegaConf.to_container(cfg.lr_reinit.reinit_lr_cfg, resolve=True)
    # (an explicit or preset schedule carries lr_reinit=implicit's scheduler in its phases: resolve_run_schedule)
    if run_schedule.replaced_lr_schedulers:
        log.info(replaced_schedulers_note(cfg.lr_reinit.name, run_schedule))
    return instantiate(node, _partial_=True)(ft_schedule=run_schedule.argument)


def resume_path(cfg: DictConfig) -> str | None:
    """``cfg.ckpt_path`` when set, else ``<checkpoint_dir>/last.ckpt`` when a previous attempt left one."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    return str(last) if last.is_file() else None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train (and test) one configuration; returns what it writes to ``<run_dir>/result.json`` (the dict of its
    :class:`ftexp.record.RunRecord`).

    The config is validated (:func:`ftexp.config.validate_config`) and the schedule resolved against the model
    before any callback, logger or trainer is built. The file is written however the run ends, with ``status``
    completed, interrupted, requeued (a cluster job stopped at a checkpoint, to continue in a later attempt) or
    failed (and the error), so that every job of a sweep leaves one; the bookkeeping (attempts, statuses, the
    failing rank under DDP) is :class:`ftexp.results.RunRecorder`'s.
    With ``dry_run=true`` it prints the phase plan instead (:func:`ftexp.dry_run.dry_run`) and writes nothing.
    """
    if cfg.get("dry_run"):
        return dry_run(cfg)
    ckpt_path = resume_path(cfg)
    recorder = RunRecorder(cfg, ckpt_path, job_overrides())
    objects = None
    try:
        validate_config(cfg)
        if cfg.get("cpu_threads"):
            torch.set_num_threads(cfg.cpu_threads)
        pl.seed_everything(cfg.seed, workers=True)
        objects = build(cfg)
        recorder.run_dir.mkdir(parents=True, exist_ok=True)
        recorder.started()
        save_config_tree(cfg, recorder.run_dir / "config_tree.log")
        log_config(objects.trainer.loggers, cfg)
        if ckpt_path:
            log.info(f"resuming from {ckpt_path}")
        objects.trainer.fit(objects.model, datamodule=objects.datamodule, ckpt_path=ckpt_path)
        test = evaluate_best(objects) if cfg.test and not objects.trainer.interrupted else None
        recorder.fit_ended(objects.trainer.interrupted, test)
    except BaseException as err:
        recorder.stopped(err, objects)
        raise
    finally:
        recorder.finish(objects)
        if objects is not None:
            close_trackers(objects.trainer.loggers, recorder.record)
    report_locations(recorder.record)
    return recorder.record.to_dict()


def job_overrides() -> list[str]:
    """The command-line overrides of this Hydra job (``[]`` outside Hydra, e.g. the compose API in tests): what
    sets a sweep's jobs apart, and so what the summary groups scenarios by."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def evaluate_best(objects: RunObjects) -> TestResult:
    """Test the best checkpoint (the current weights when there is none). Under DDP every rank tests rank 0's best
    checkpoint, the file rank 0 wrote: with synchronized metrics the ranks already agree on it, and a user's module
    whose checkpoint monitor is not synchronized must not make a rank look for a file that was never written."""
    best = objects.checkpoint.best_model_path if objects.checkpoint is not None else ""
    best = objects.trainer.strategy.broadcast(best, src=0)
    per_loader = objects.trainer.test(objects.model, datamodule=objects.datamodule, ckpt_path=best or None)
    # one dict per test dataloader, each with metric names of its own (data=transfer: test_*, then test_ood_*)
    metrics = {name: value for loader in per_loader for name, value in loader.items()}
    return TestResult(metrics=scalars(metrics), checkpoint=best or None)


@rank_zero_only
def save_config_tree(cfg: DictConfig, save_to: Path) -> None:
    """Write the resolved config as a tree (top-level values first, then one branch per group) to ``save_to``, wide
    enough that no value is cut, and say where it is in one console line (rank 0 only: one file, one line)."""
    tree = Tree("config", guide_style="dim")
    values = {key: value for key, value in cfg.items() if not OmegaConf.is_config(value)}
    branches = {"(top level)": OmegaConf.create(values)} | {k: v for k, v in cfg.items() if OmegaConf.is_config(v)}
    longest = 0
    for key, node in branches.items():
        text = OmegaConf.to_yaml(node, resolve=True).rstrip()
        longest = max([longest, *map(len, text.splitlines())])
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    with save_to.open("w") as file:
        # the tree's guides indent each value by 8 columns: a console this wide crops nothing
        Console(file=file, width=max(120, longest + 8), color_system=None).print(tree)
    log.info(f"config tree: {save_to}")


def phases_line(record: RunRecord) -> str | None:
    """How far the schedule got, said plainly when the run ended before its final phase (a run that never left the
    head-only phase looks like a weak model otherwise)."""
    if record.final_depth is None or record.reached_depth is None:
        return None
    reached, final = record.reached_depth, record.final_depth
    if reached >= final:
        return f"reached the final phase, {final} (phases 0..{final})"
    last_start = record.transitions[-1].epoch if record.transitions else 0
    epochs = record.epochs_run if record.epochs_run is not None else "?"
    return (
        f"ended in phase {reached} of {final} after {epochs} epochs: no transition since epoch {last_start} "
        "(early stopping never ended the phase and no max_transition_epoch was reached; see min_delta / patience)"
    )


def metrics_line(record: RunRecord) -> str | None:
    shown = {}
    if record.best is not None and record.best.monitor in record.best.metrics:
        shown[f"best {record.best.monitor}"] = (
            f"{record.best.metrics[record.best.monitor]:.4g} (epoch {record.best.epoch})"
        )
    if record.test is not None:
        shown.update({name: f"{value:.4g}" for name, value in record.test.metrics.items()})
    return ", ".join(f"{name} {value}" for name, value in shown.items()) or None


@rank_zero_only
def report_locations(record: RunRecord) -> None:
    places = {
        "phases": phases_line(record),
        "metrics": metrics_line(record),
        "run dir": record.run_dir,
        "result": record.result_file,
        "best ckpt": record.best_checkpoint,
        "last ckpt": record.last_checkpoint,
        "schedule": record.schedule_path,
        "tensorboard": f"tensorboard --logdir {record.tensorboard_dir}" if record.tensorboard_dir else None,
    }
    log.info("outputs:\n" + "\n".join(f"  {label:<12} {place}" for label, place in places.items() if place))
