"""The Hydra callback that keeps a sweep's summary current (``hydra.callbacks`` in ``ftexp/conf/config.yaml``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from ftexp.sweeps.differences import DEFAULT_BASELINE
from ftexp.sweeps.report import summarize_sweep
from ftexp.trackers import log_sweep_summary

log = logging.getLogger(__name__)

# set by launchers to a process's rank (torchrun / Lightning's DDP subprocesses, SLURM tasks)
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


class SummarizeSweep(HydraCallback):
    """Write ``summary.md``, ``summary.csv`` and ``jobs.csv`` into the sweep dir after every job (no plots: quick),
    and the tables, the plots and the printed table when the sweep ends.

    The per-job update is what a sweep with a failed job leaves: Hydra skips ``on_multirun_end`` when a job fails.
    Under SLURM it runs on the job's node (the sweep dir is on a shared file system), once per job: ranks other
    than 0 do nothing. The summary is a by-product, so a problem writing it is logged as a warning and never reaches
    Hydra or the job.

    ``baseline`` selects the scenario the others are compared with, seed by seed (:mod:`ftexp.sweeps.differences`;
    ``null``: no differences section). Hydra's parser needs a value holding ``=`` quoted:
    ``'hydra.callbacks.summarize_sweep.baseline="lr_reinit=none"'``.
    """

    def __init__(self, plots: bool = True, baseline: str | None = DEFAULT_BASELINE) -> None:
        self.plots = plots
        self.baseline = baseline

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if _mode(config) != "MULTIRUN" or not _rank_zero():
            return
        self._summarize(config, plots=False, show=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarize(config, plots=self.plots, show=True)
        log_sweep_summary(config)  # logger=mlflow: into the jobs' MLflow store too (a warning at worst)

    def _summarize(self, config: DictConfig, plots: bool, show: bool) -> None:
        sweep_dir = None
        try:
            selected = OmegaConf.select(config, "hydra.sweep.dir", default=None)
            if selected is None:
                raise ValueError("the config has no hydra.sweep.dir")
            sweep_dir = Path(str(selected))
            summary = summarize_sweep(sweep_dir, plots=plots, baseline=self.baseline)
        except Exception as err:  # the summary must never fail the sweep
            log.warning(f"could not summarize the sweep in {sweep_dir}: {type(err).__name__}: {err}")
            return
        if show:
            print(summary.markdown)
        log.info(f"sweep summary: {sweep_dir / 'summary.md'}")


def _mode(config: DictConfig) -> str | None:
    mode = OmegaConf.select(config, "hydra.mode", default=None, throw_on_resolution_failure=False)
    return getattr(mode, "name", None if mode is None else str(mode))


def _rank_zero() -> bool:
    return all(os.environ.get(variable, "0") == "0" for variable in _RANK_VARIABLES)
