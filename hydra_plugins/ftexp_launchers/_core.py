"""How :class:`~hydra_plugins.ftexp_launchers.local_gpus.LocalGPUsLauncher` runs a sweep: job files, one process per
job, the GPU ids handed out and taken back, the results read back. Imported by ``launch`` only: the leading
underscore keeps Hydra's plugin scan, which runs on every start, from importing it (and subprocess, threading,
cloudpickle with it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle  # a submitit dependency
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

if TYPE_CHECKING:
    from hydra_plugins.ftexp_launchers.local_gpus import LocalGPUsLauncher

log = logging.getLogger("hydra_plugins.ftexp_launchers.local_gpus")  # the launcher's logger, as before the split

JOB_MODULE = "hydra_plugins.ftexp_launchers._job"
STATE_DIR = ".local_gpus"
JOB_LOG = "launcher.log"
# Set when this launcher itself runs inside a distributed job: each job is its own process group, and an inherited
# MASTER_PORT would make parallel DDP jobs meet on the same port.
DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "GLOBAL_RANK", "RANK", "WORLD_SIZE")
# how long an interrupted sweep gives its jobs to stop on SIGINT (Lightning saves and writes its results) before SIGKILL
STOP_GRACE_S = 30.0


@dataclass
class _Job:
    idx: int
    overrides: list[str]
    config: DictConfig
    job_dir: Path
    job_file: Path
    return_file: Path


@dataclass
class _Running:
    job: _Job
    gpus: list[str]
    process: subprocess.Popen
    started: float


def launch(
    launcher: LocalGPUsLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """``launcher.launch``: runs the jobs on the launcher's GPU pool; their ``JobReturn``s in job order."""
    config, gpus_per_job, pool = launcher.config, launcher.gpus_per_job, launcher.pool
    if config is None or launcher.hydra_context is None or launcher.task_function is None:
        raise RuntimeError("LocalGPUsLauncher.launch() called before setup()")
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    state_dir = sweep_dir / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    slots = len(pool) // gpus_per_job
    log.info(
        f"Launching {len(job_overrides)} jobs on GPUs {','.join(pool)}, {gpus_per_job} per job, "
        f"at most {slots} at once; sweep dir: {sweep_dir}"
    )
    jobs = [_prepare(launcher, initial_job_idx + n, overrides, state_dir) for n, overrides in enumerate(job_overrides)]
    returns = _JobQueue(pool, gpus_per_job, state_dir / "jobs.jsonl").run(jobs)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return [returns[job.idx] for job in jobs]


def _prepare(launcher: LocalGPUsLauncher, idx: int, overrides: Sequence[str], state_dir: Path) -> _Job:
    """The job's config (as the basic launcher builds it) and the file its process loads."""
    assert launcher.config is not None and launcher.hydra_context is not None
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    job_dir = Path(str(sweep_config.hydra.sweep.dir), str(sweep_config.hydra.sweep.subdir)).absolute()
    files = state_dir / f"{idx}.job.pkl", state_dir / f"{idx}.return.pkl"
    job = _Job(idx, list(overrides), sweep_config, job_dir, *files)
    payload = {
        "idx": idx,
        "config": sweep_config,
        "task_function": launcher.task_function,
        "hydra_context": launcher.hydra_context,
        "singleton_state": Singleton.get_state(),
    }
    job.job_file.write_bytes(cloudpickle.dumps(payload))
    job.return_file.unlink(missing_ok=True)
    return job


class _JobQueue:
    """Hands the GPU ids out to jobs in order, ``gpus_per_job`` at a time, and collects what each job returns."""

    def __init__(self, pool: list[str], gpus_per_job: int, events_file: Path) -> None:
        self.free = deque(pool)
        self.gpus_per_job = gpus_per_job
        self.events_file = events_file
        self.ended: queue.Queue[tuple[int, int]] = queue.Queue()

    def run(self, jobs: list[_Job]) -> dict[int, JobReturn]:
        pending = deque(jobs)
        running: dict[int, _Running] = {}
        returns: dict[int, JobReturn] = {}
        try:
            while pending or running:
                while pending and len(self.free) >= self.gpus_per_job:
                    job = pending.popleft()
                    running[job.idx] = self._start(job, [self.free.popleft() for _ in range(self.gpus_per_job)])
                idx, exit_code = self.ended.get()
                ended = running.pop(idx)
                _end_process_group(ended.process)
                self.free.extend(ended.gpus)
                returns[idx] = self._finish(ended, exit_code)
        finally:
            if running:  # interrupted (Ctrl-C) or failed here: stop the jobs still running
                _stop([r.process for r in running.values()])
        return returns

    def _start(self, job: _Job, gpus: list[str]) -> _Running:
        env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        env["PYTHONUNBUFFERED"] = "1"  # the log file follows the job as it runs
        # modules next to a script run as `python app.py` are importable here; the job runs with `-m` from the cwd
        env["PYTHONPATH"] = os.pathsep.join(p for p in (sys.path[0], os.environ.get("PYTHONPATH")) if p)
        job.job_dir.mkdir(parents=True, exist_ok=True)
        log_path = job.job_dir / JOB_LOG
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", JOB_MODULE, str(job.job_file), str(job.return_file)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: ended as a whole, see _end_process_group
            )
        threading.Thread(target=self._wait, args=(job.idx, process), daemon=True).start()
        started = time.time()
        self._record("start", job, gpus, pid=process.pid, time=started, overrides=job.overrides, log=str(log_path))
        log.info(f"\t#{job.idx} started on GPU {','.join(gpus)} (pid {process.pid}): {_describe(job)}; log: {log_path}")
        return _Running(job, gpus, process, started)

    def _wait(self, idx: int, process: subprocess.Popen) -> None:
        self.ended.put((idx, process.wait()))

    def _finish(self, ended: _Running, exit_code: int) -> JobReturn:
        job = ended.job
        ret = _load_return(job, exit_code)
        now = time.time()
        took = now - ended.started
        status = "completed" if ret.status is JobStatus.COMPLETED else "failed"
        self._record("end", job, ended.gpus, pid=ended.process.pid, time=now, status=status, exit_code=exit_code)
        gpus = ",".join(ended.gpus)
        if ret.status is JobStatus.COMPLETED:
            log.info(f"\t#{job.idx} completed on GPU {gpus} in {took:.1f} s")
        else:
            error = ret._return_value
            log.error(
                f"\t#{job.idx} failed on GPU {gpus} in {took:.1f} s: {type(error).__name__}: {error}; "
                f"log: {job.job_dir / JOB_LOG}"
            )
        return ret

    def _record(self, event: str, job: _Job, gpus: list[str], **fields: Any) -> None:
        with self.events_file.open("a") as file:
            file.write(json.dumps({"event": event, "job": job.idx, "gpus": gpus, **fields}) + "\n")


def _load_return(job: _Job, exit_code: int) -> JobReturn:
    """The JobReturn the job's process wrote, or a failed one when it wrote none (killed, crashed interpreter)."""
    reason = f"the job process exited with code {exit_code} without returning a result"
    if exit_code < 0:
        reason += f" (killed by {signal.Signals(-exit_code).name})"
    if job.return_file.is_file():
        try:
            return cloudpickle.loads(job.return_file.read_bytes())
        except Exception as err:  # whatever it is, the job's result is lost: report it as the job's failure
            reason = f"cannot read the job's result {job.return_file} ({type(err).__name__}: {err})"
    task_config = OmegaConf.masked_copy(job.config, [k for k in job.config if k != "hydra"])
    return JobReturn(
        overrides=job.overrides,
        cfg=task_config,
        hydra_cfg=OmegaConf.create({"hydra": job.config.hydra}),
        working_dir=os.getcwd(),
        task_name=str(job.config.hydra.job.name),
        status=JobStatus.FAILED,
        _return_value=RuntimeError(f"job #{job.idx}: {reason}; see {job.job_dir / JOB_LOG}"),
    )


def _describe(job: _Job) -> str:
    return " ".join(filter_overrides(job.overrides)) or "(no overrides)"


def _end_process_group(process: subprocess.Popen) -> None:
    """Kill what a job left behind (DDP ranks, dataloader workers) once its main process has exited, so that its
    GPUs are really free when the next job gets them."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left: the usual case
        os.killpg(process.pid, signal.SIGKILL)


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGINT to each job's process group (Lightning stops cleanly and the job records it), SIGKILL after a grace."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        _end_process_group(process)
