"""A Hydra launcher that runs the jobs of a multirun in parallel on this machine's GPUs, each job on its own GPU(s).

Hydra's basic launcher runs jobs one after another, and ``submitit_local`` gives every job the same devices. This one
keeps a pool of GPU ids and runs at most one job per ``gpus_per_job`` ids at a time; a queued job starts as soon as a
running one ends and gives its ids back. Each job is a fresh ``python -m hydra_plugins.ftexp_launchers._job``
process whose ``CUDA_VISIBLE_DEVICES`` is its ids, set before the process starts, so it never sees another job's GPUs
and inherits no CUDA state from this one. Inside it the job runs through Hydra's ``run_job``, as under the basic
launcher: same job dir (``hydra.sweep.dir``/``hydra.sweep.subdir``), ``.hydra`` files, callbacks and ``JobReturn``.

Files, besides what the job itself writes::

    <sweep dir>/.local_gpus/jobs.jsonl     one line per job start and end: job, GPU ids, pid, time, status
    <sweep dir>/.local_gpus/<n>.job.pkl    what job n runs (config, task function, Hydra state), for its process
    <sweep dir>/.local_gpus/<n>.return.pkl its JobReturn, read back here
    <job dir>/launcher.log                 the job process's stdout and stderr

A job that raises, or whose process dies without a result, comes back as a failed ``JobReturn`` (the sweeper then
reports it as with the basic launcher) and its GPUs go back to the pool; the other jobs carry on. The whole process
group of a job is ended when its main process exits, so a crashed job leaves no DDP rank or dataloader worker on its
GPU. POSIX only.

Config: ``hydra/launcher=local_gpus``, the dataclass in :mod:`.config` (Hydra's ConfigStore); ``hardware=local_gpus``
selects it with the trainer. As in Hydra's own launcher plugins, this module, which Hydra's plugin scan imports on
every start, holds only the class and the check of its GPU ids; ``launch`` imports the machinery (:mod:`._core`).
"""

# no `from __future__ import annotations`: Hydra's plugin scan may execute this module before it is in sys.modules
import os
from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GPUPoolError(CompactHydraException, ValueError):
    """The launcher's GPU ids cannot work; raised before any job starts (Hydra prints the message alone)."""


def gpu_pool(gpus: Sequence[int | str] | None, gpus_per_job: int) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` values to hand out to jobs.

    ``gpus`` are ids as the launching shell sees them: with its ``CUDA_VISIBLE_DEVICES=2,3``, ``gpus=[1]`` is
    physical GPU 3, so a sweep never escapes the devices it was given. ``None``: every GPU the shell sees.

    >>> gpu_pool([0, 2], gpus_per_job=1)  # no CUDA_VISIBLE_DEVICES in the environment
    ['0', '2']
    """
    if not isinstance(gpus_per_job, int) or isinstance(gpus_per_job, bool) or gpus_per_job < 1:
        raise GPUPoolError(f"hydra.launcher.gpus_per_job must be a positive integer (got {gpus_per_job!r})")
    visible_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = None if visible_env is None else [v.strip() for v in visible_env.split(",") if v.strip()]
    if gpus is None:
        pool = visible if visible is not None else [str(i) for i in range(_cuda_device_count())]
        if not pool:
            where = f"CUDA_VISIBLE_DEVICES={visible_env!r}" if visible is not None else "torch.cuda.device_count() is 0"
            raise GPUPoolError(
                f"the local_gpus launcher found no GPU ({where}) and hydra.launcher.gpus is null: run on a machine "
                "with GPUs, list the ids to use (hardware.gpus=[0,1] or hydra.launcher.gpus=[0,1]), or use another "
                "launcher (the default runs the jobs one after another on this machine)"
            )
    else:
        pool = [str(g) for g in gpus]
        if visible is not None:
            outside = [g for g in pool if not (g.isdigit() and int(g) < len(visible))]
            if outside:
                raise GPUPoolError(
                    f"hydra.launcher.gpus={list(gpus)}: {outside} not among the {len(visible)} GPU(s) this shell "
                    f"sees (CUDA_VISIBLE_DEVICES={visible_env}); ids count from 0 within CUDA_VISIBLE_DEVICES"
                )
            pool = [visible[int(g)] for g in pool]
    if len(set(pool)) != len(pool):
        raise GPUPoolError(f"hydra.launcher.gpus lists a GPU twice: {pool}")
    if len(pool) < gpus_per_job:
        raise GPUPoolError(
            f"hydra.launcher.gpus_per_job={gpus_per_job} but only {len(pool)} GPU id(s) to hand out: {pool}"
        )
    return pool


def _cuda_device_count() -> int:
    # torch asks NVML, without creating a CUDA context here (and each job is a new process anyway)
    import torch

    return torch.cuda.device_count()


class LocalGPUsLauncher(Launcher):
    """Runs a sweep's jobs in parallel, each in a process of its own on ``gpus_per_job`` ids of ``gpus`` (see the
    module docstring); returns their ``JobReturn``s in job order, as the basic launcher does."""

    def __init__(self, gpus: Sequence[int | str] | None = None, gpus_per_job: int = 1) -> None:
        self.gpus = None if gpus is None else list(gpus)
        self.gpus_per_job = gpus_per_job
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.pool: list[str] = []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # the sweeper sets its launcher up before it creates the sweep dir: a pool that cannot work fails first
        self.pool = gpu_pool(self.gpus, self.gpus_per_job)
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.ftexp_launchers import _core  # process and pool machinery: only when a sweep launches

        return _core.launch(self, job_overrides, initial_job_idx)
