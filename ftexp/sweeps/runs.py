"""Find the jobs of a sweep directory and load what each one left: ``result.json`` and ``.hydra/``.

A job is a directory holding ``.hydra/`` or ``result.json``. Hydra's basic launcher puts them directly under the
sweep dir (``<sweep>/<num>_<schedule>/``); under SLURM they may sit one level deeper, so the sweep dir is walked.
A job without ``result.json`` is still running, or was killed before it could write one (SIGKILL, node failure):
its status is :data:`RUNNING_OR_MISSING` and its overrides come from ``.hydra/overrides.yaml``. ``result.json`` is
read as the run's typed record, :class:`ftexp.record.RunRecord`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from ftexp.overrides import override_key
from ftexp.record import RunRecord, RunStatus

RUNNING_OR_MISSING = RunStatus.RUNNING_OR_MISSING
NO_STATUS = "unknown"  # the status of a result.json that records none
# directories a job dir contains that never hold another job; and a tuning's trials (+sweep=tune,
# hydra_plugins/ftexp_tuner), which the sweep's summary leaves out: it compares the final runs
_NOT_JOBS = {"checkpoints", "tensorboard", "plots", "csv", "wandb", "lightning_logs", "tuning"}


@dataclass
class Job:
    """One job of a sweep: its directory, Hydra task overrides and ``result.json`` (``None`` when absent)."""

    dir: Path
    overrides: list[str] = field(default_factory=list)
    result: RunRecord | None = None
    num: int | None = None  # hydra.job.num: the job's place in the sweep
    config: dict[str, Any] = field(default_factory=dict)  # .hydra/config.yaml, unresolved
    problem: str | None = None  # why result.json could not be read

    @property
    def status(self) -> RunStatus | str:
        """The recorded status; :data:`RUNNING_OR_MISSING` without ``result.json``, :data:`NO_STATUS` when it records
        none, and a status this version does not know as the file has it."""
        if self.result is None:
            return RUNNING_OR_MISSING
        return self.result.status or NO_STATUS

    @property
    def completed(self) -> bool:
        return self.status == RunStatus.COMPLETED

    @property
    def seed(self) -> int | None:
        if self.result is not None and self.result.seed is not None:
            return self.result.seed
        for override in self.overrides:
            value = override.partition("=")[2].strip()
            if override_key(override) == "seed" and value.lstrip("-").isdigit():
                return int(value)
        seed = self.config.get("seed")
        return seed if isinstance(seed, int) else None

    @property
    def scenario_name(self) -> str | None:
        """The recorded ``scenario`` (the schedule's name), else the composed config's ``schedule.name``."""
        if self.result is not None and self.result.scenario:
            return str(self.result.scenario)
        name = (self.config.get("schedule") or {}).get("name")
        return str(name) if name else None

    @property
    def error(self) -> str | None:
        return (self.result.error if self.result is not None else None) or self.problem

    def name_in(self, sweep_dir: Path) -> str:
        """The job dir relative to the sweep dir, e.g. ``3_explicit``."""
        try:
            return self.dir.relative_to(sweep_dir).as_posix() or "."
        except ValueError:
            return str(self.dir)


def find_job_dirs(sweep_dir: str | os.PathLike) -> list[Path]:
    """Every directory under ``sweep_dir`` (itself included) holding ``.hydra/`` or ``result.json``; jobs do not
    nest, so the walk stops at the first level where it finds one."""
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        if ".hydra" in dirs or "result.json" in files:
            found.append(Path(root))
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _NOT_JOBS)
    return found


def load_job(job_dir: str | os.PathLike) -> Job:
    job_dir = Path(job_dir)
    job = Job(dir=job_dir, config=_read_yaml(job_dir / ".hydra" / "config.yaml") or {})
    result_file = job_dir / "result.json"
    if result_file.is_file():
        job.result, job.problem = read_result(result_file)
    overrides = job.result.overrides if job.result is not None else None
    if overrides is None:
        overrides = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
    job.overrides = [str(o) for o in overrides or []]
    hydra_job = ((_read_yaml(job_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}).get("job") or {}
    job.num = hydra_job.get("num") if isinstance(hydra_job.get("num"), int) else None
    return job


def read_result(path: Path) -> tuple[RunRecord | None, str | None]:
    """``(record, None)``, or ``(None, why)`` when the file cannot be read or holds no run record: a job with a
    damaged ``result.json`` shows in the summary as not completed, with the reason, instead of failing it."""
    try:
        return RunRecord.read(path), None
    except (OSError, ValueError) as err:  # ValueError: not JSON (JSONDecodeError), or not a record (RecordError)
        return None, f"unreadable result.json: {err}"


def load_jobs(sweep_dir: str | os.PathLike) -> list[Job]:
    """The jobs of a sweep in sweep order (``hydra.job.num``, then directory name).

    >>> [job.status for job in load_jobs("multirun/demo/2026-11-23_10-00-00.000000")]  # doctest: +SKIP
    ['completed', 'completed', 'failed', 'running/missing']
    """
    jobs = [load_job(path) for path in find_job_dirs(sweep_dir)]
    return sorted(jobs, key=lambda job: (job.num is None, job.num or 0, job.dir.as_posix()))


def hardware(job: Job) -> dict[str, Any]:
    """The recorded ``hardware``; for files written before it existed, what the composed config says (accelerator,
    ``devices`` x ``num_nodes``, ``cpu_threads``), leaving out values it does not pin down ("auto", null)."""
    if job.result is not None and isinstance(job.result.hardware, dict):
        return job.result.hardware
    if not job.config:
        return {}
    cfg = OmegaConf.create(job.config)

    def select(key: str) -> Any:
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)

    found: dict[str, Any] = {}
    if select("trainer.accelerator") in ("cpu", "gpu", "cuda"):
        found["accelerator"] = "gpu" if select("trainer.accelerator") == "cuda" else select("trainer.accelerator")
    devices, nodes = select("trainer.devices"), select("trainer.num_nodes") or 1
    if isinstance(devices, int) and devices > 0 and isinstance(nodes, int):
        found["devices"] = devices * nodes
    if isinstance(select("cpu_threads"), int):
        found["cpu_threads"] = select("cpu_threads")
    return found


def find_latest_sweep(root: str | os.PathLike) -> Path | None:
    """The most recently started sweep under ``root`` (the directory whose ``multirun.yaml`` is newest)."""
    marks = list(Path(root).rglob("multirun.yaml")) if Path(root).is_dir() else []
    return max(marks, key=lambda mark: mark.stat().st_mtime).parent if marks else None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
