"""The rules that span config groups, which no single schema can say: LR reinitialization vs. schedule kind, a
schedule file that must exist and parse, launcher tasks vs. trainer devices. They run once every node is
well-formed (:func:`ftexp.config.validate.config_problems`), and the nodes they read (:func:`scheduler_node`,
:func:`hydra_launcher`) are found by the same functions the run uses.

A schedule that does not fit the model needs the model: :func:`ftexp.run_schedule.resolve_run_schedule` checks it
once the model is built.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
# the config keys errors about the schedule and lr_reinit's scheduler are reported under, here and by the run
SCHEDULE_KEY = "schedule.callbacks.fts.ft_schedule"
REINIT_KEY = "lr_reinit.reinit_lr_cfg"
MISSING_REINIT_LR = f"{REINIT_KEY}: lr_reinit=implicit needs the LR scheduler to start each phase"


def is_preset(ft_schedule: object) -> bool:
    """A preset is given as a node with a ``_target_`` (a function building the schedule from the model)."""
    return OmegaConf.is_dict(ft_schedule) and "_target_" in ft_schedule


LOCAL_GPUS_LAUNCHER = "hydra_plugins.ftexp_launchers.local_gpus.LocalGPUsLauncher"


def check_cross_group_rules(cfg: DictConfig, problems: list[str]) -> None:
    """Append to ``problems`` each rule between groups that ``cfg`` (well-formed: it passed the schema) breaks."""
    _check_lr_reinit(cfg, problems)
    _check_schedule_file(cfg, problems)
    _check_launcher(cfg, problems)
    _check_tracker_installed(cfg, problems)


def _check_lr_reinit(cfg: DictConfig, problems: list[str]) -> None:
    fts = scheduler_node(cfg)
    choice = cfg.lr_reinit.name
    schedule = cfg.schedule.name
    if fts is not None and fts.get("reinit_lr_cfg") is not None:
        problems.append(
            "schedule.callbacks.fts.reinit_lr_cfg: choose LR reinitialization with the lr_reinit group instead "
            "(lr_reinit=implicit, lr_reinit.reinit_lr_cfg=...)"
        )
    if choice == "implicit":
        if not cfg.lr_reinit.get("reinit_lr_cfg"):
            problems.append(MISSING_REINIT_LR)
        if fts is None:
            problems.append(f"lr_reinit=implicit: schedule={schedule} has no phase transitions to reinitialize at")
        if cfg.schedule.get("lr_scheduler"):
            problems.append(
                f"lr_reinit=implicit: schedule={schedule} brings one LR scheduler for the whole run "
                "(schedule.lr_scheduler), which a new scheduler at every phase would replace after phase 0; use "
                "lr_reinit=explicit (its default) or none"
            )


def _check_schedule_file(cfg: DictConfig, problems: list[str]) -> None:
    """A schedule file must exist and parse; matching it against the model's parameters happens once the model is
    built (:func:`ftexp.run_schedule.resolve_run_schedule`)."""
    from ftexp.schedule import ScheduleError, load_schedule

    fts = scheduler_node(cfg)
    ft_schedule = fts.get("ft_schedule") if fts is not None else None
    if ft_schedule is None or is_preset(ft_schedule):
        return
    key = SCHEDULE_KEY
    if isinstance(ft_schedule, str) and not Path(ft_schedule).is_file():
        problems.append(f"{key}: schedule file does not exist: {ft_schedule}")
        return
    try:
        load_schedule(ft_schedule)
    except ScheduleError as err:
        problems.append(f"{key}: {err}")


def _check_launcher(cfg: DictConfig, problems: list[str]) -> None:
    """Under the submitit SLURM launcher each task drives one device: Lightning reads the SLURM environment and
    expects ``tasks_per_node == devices`` and ``nodes == num_nodes``; a mismatch hangs or idles GPUs. Under the
    local_gpus launcher a job sees exactly ``gpus_per_job`` GPUs: a GPU trainer must use that many devices."""
    launcher = hydra_launcher(cfg)
    target = launcher.get("_target_") if launcher is not None else None
    if target == LOCAL_GPUS_LAUNCHER:
        devices, per_job = cfg.trainer.get("devices", 1), launcher.get("gpus_per_job")
        if cfg.trainer.get("accelerator") != "cpu" and isinstance(devices, int) and devices != per_job:
            problems.append(
                f"hydra.launcher.gpus_per_job={per_job} but trainer.devices={devices}: each job sees only its "
                "gpus_per_job GPUs, so they must be equal (set hardware.gpus_per_job)"
            )
    if target != SLURM_LAUNCHER:
        return
    pairs = (("tasks_per_node", "devices"), ("nodes", "num_nodes"))
    for launcher_key, trainer_key in pairs:
        ours, theirs = launcher.get(launcher_key), cfg.trainer.get(trainer_key, 1)
        if ours != theirs:
            problems.append(
                f"hydra.launcher.{launcher_key}={ours} but trainer.{trainer_key}={theirs}: under SLURM each task "
                f"drives one device, so they must be equal (set both, or hardware.gpus_per_node / hardware.nodes)"
            )


def _check_tracker_installed(cfg: DictConfig, problems: list[str]) -> None:
    """A tracker logger is an optional extra: say how to install it before the run dir exists, rather than fail in
    the middle of building the run with the logger's own import error."""
    from ftexp.trackers import INSTALL_HINT, missing_modules

    target = cfg.logger.get("_target_") if cfg.get("logger") else None
    missing = missing_modules(str(target)) if target else []
    if missing:
        problems.append(f"logger: {target} needs {', '.join(missing)} (not installed here): {INSTALL_HINT}")


def hydra_launcher(cfg: DictConfig) -> DictConfig | None:
    """The launcher config: from ``cfg.hydra`` (Hydra callbacks see it) or the running job's Hydra config."""
    if "hydra" in cfg:
        return cfg.hydra.get("launcher")
    if HydraConfig.initialized():
        return HydraConfig.get().get("launcher")
    return None


def scheduler_node(cfg: DictConfig) -> DictConfig | None:
    """The schedule group's FinetuningScheduler node (``None`` for schedule=nofts)."""
    return cfg.schedule.callbacks.get("fts")
