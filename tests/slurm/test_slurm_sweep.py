"""The compare_schedules sweep submitted to a real SLURM cluster through ``hardware=slurm_cpu``, as a user runs it:
``python -m ftexp +sweep=compare_schedules seed=1 hardware=slurm_cpu ...`` (one seed and ``debug=limit`` to keep
it short). Three sweeps run side by side on the cluster, one per way a sweep can end:

- every job completes: exit status 0, each job's ``result.json`` says completed and names its SLURM job, which the
  cluster knows as a completed job of the array the sweep submitted;
- one job fails at start (an exception in the task): the sweep exits non-zero after the other jobs completed;
- one job dies without writing anything (the process exits): the sweep ends non-zero instead of waiting forever,
  because submitit reads the job's end from ``sacct`` (why scripts/local_slurm.sh keeps accounting on).

The sweep summary (``python -m ftexp.summarize <sweep dir>``) counts the completed jobs and lists the others.

Each job asks for 1 CPU and 1 GB, so all of them fit at once on the local cluster (8 CPUs advertised).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SWEEP_TIMEOUT_S = 480  # far above the ~1-2 minutes the sweeps take; a stuck sweep fails instead of hanging CI
ON_THE_CLUSTER = [
    "seed=1",
    "debug=limit",
    "hardware=slurm_cpu",
    "hardware.cpus_per_task=1",
    "hardware.mem_gb=1",
    "hardware.timeout_min=10",
    "trainer.enable_progress_bar=false",
]
# For schedule=nofts this creates a scheduler node with no _target_ (nofts has no scheduler), which the job rejects
# when it starts; implicit and explicit already have a max_depth of -1. So exactly one job of the sweep fails.
FAIL_NOFTS_AT_START = "++schedule.callbacks.fts.max_depth=-1"
# os._exit(3) while the trainer is being built: the process ends at once, leaving no result.json and no result
# pickle for submitit, as after a segfault or the OOM killer
DIE_WITHOUT_RESULT = "+callbacks.die={_target_:os._exit,_args_:[3]}"
SWEEPS = {
    "completes": ["+sweep=compare_schedules", *ON_THE_CLUSTER],
    "one_fails": ["+sweep=compare_schedules", *ON_THE_CLUSTER, FAIL_NOFTS_AT_START],
    "one_dies": ["-m", *ON_THE_CLUSTER, DIE_WITHOUT_RESULT],
}


@dataclass
class Sweep:
    dir: Path
    returncode: int
    output: str

    def results(self) -> dict[str, dict]:
        """``result.json`` of every job, by scenario (schedule name)."""
        results = [json.loads(path.read_text()) for path in self.dir.glob("*/result.json")]
        return {result["scenario"]: result for result in results}

    def job_dirs(self) -> list[Path]:
        return sorted(path.parent for path in self.dir.glob("*/.hydra"))

    def slurm_jobs(self) -> dict[str, dict[str, str]]:
        """The SLURM jobs this sweep submitted (the submitit folder names them: <array id>_<task>), by job id as the
        job sees it (SLURM_JOB_ID): the job's name, state and exit code."""
        arrays = submitted(self.dir)
        assert arrays, f"no job was submitted: {self.dir / '.submitit'} names none"
        return ended_jobs(arrays)


def ended_jobs(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """What the controller knows of the given jobs (array tasks included) once all of them have ended, in
    ``sacct``'s field names: job id as the job sees it, job id as listed, name, state and exit code.

    A job has handed back its result a moment before SLURM ends it, so the sweep's end does not mean the jobs'
    end: a job that depends on theirs (``afterany``), submitted with ``sbatch --wait``, returns once they have
    all ended. Finished jobs stay known to the controller for MinJobAge (5 minutes, scripts/local_slurm.sh)."""
    dependency = f"--dependency=afterany:{':'.join(job_ids)}"
    subprocess.run(
        ["sbatch", "--wait", "--quiet", dependency, "--output=/dev/null", "--time=1", "--wrap=true"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rows = {}
    for job_id in job_ids:
        answer = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True)
        for line in answer.stdout.splitlines():
            fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
            array_id, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
            rows[fields["JobId"]] = {
                "JobIDRaw": fields["JobId"],
                "JobID": f"{array_id}_{task}" if array_id and task else fields["JobId"],
                "JobName": fields["JobName"],
                "State": fields["JobState"],
                "ExitCode": fields["ExitCode"],
            }
    return rows


def summarize(sweep: Sweep, out_dir: Path) -> tuple[str, dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """``python -m ftexp.summarize``'s printed summary, and its per-scenario and per-job tables by scenario."""
    command = [sys.executable, "-m", "ftexp.summarize", str(sweep.dir), "--no-plots", "--out", str(out_dir)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    tables = {}
    for name in ("summary", "jobs"):
        with (out_dir / f"{name}.csv").open(newline="") as file:
            tables[name] = {row["scenario"]: row for row in csv.DictReader(file)}
    return printed, tables["summary"], tables["jobs"]


def cancel(sweep_dir: Path) -> None:
    """scancel what a timed-out sweep left on the cluster (by the array ids in its submitit folder)."""
    arrays = submitted(sweep_dir)
    if arrays:
        subprocess.run(["scancel", *arrays], check=False)


def submitted(sweep_dir: Path) -> list[str]:
    """Ids of the jobs (or job arrays) a sweep submitted: submitit's folder holds one directory per job (``<id>``)
    or array task (``<array id>_<task>``), next to its own temporary files."""
    folder = sweep_dir / ".submitit"
    names = [path.name for path in folder.iterdir() if path.is_dir()] if folder.is_dir() else []
    return sorted({match[1] for name in names if (match := re.fullmatch(r"(\d+)(_\d+)?", name))})


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Iterator[dict[str, Sweep]]:
    """Start the three sweeps at once and wait for all of them (their jobs share the cluster)."""
    root = tmp_path_factory.mktemp("slurm_sweeps")
    started = {}
    for name, overrides in SWEEPS.items():
        sweep_dir = root / name
        log = (root / f"{name}.log").open("w")
        command = [sys.executable, "-m", "ftexp", *overrides, f"hydra.sweep.dir={sweep_dir}"]
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the child holds its own copy
        started[name] = (sweep_dir, process)
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    try:
        for process in (process for _, process in started.values()):
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for sweep_dir, process in started.values():
            process.kill()
            process.wait()
            cancel(sweep_dir)
        pytest.fail(f"the sweeps did not end in {SWEEP_TIMEOUT_S} s; their output is in {root}/*.log")
    yield {
        name: Sweep(sweep_dir, process.returncode, (root / f"{name}.log").read_text())
        for name, (sweep_dir, process) in started.items()
    }


def test_every_job_of_the_sweep_completes_as_a_slurm_job(sweeps):
    sweep = sweeps["completes"]
    assert sweep.returncode == 0, sweep.output[-3000:]
    results = sweep.results()
    assert set(results) == {"nofts", "implicit", "explicit"}
    assert {scenario: result["status"] for scenario, result in results.items()} == dict.fromkeys(results, "completed")

    (array,) = submitted(sweep.dir)
    script = (sweep.dir / ".submitit" / array / f"{array}_submission.sh").read_text()
    assert "srun --unbuffered" in script and f" {sys.executable} -u -m submitit" in script, "the submitting Python"
    jobs = sweep.slurm_jobs()
    ran_as = {scenario: result["hardware"]["slurm_job_id"] for scenario, result in results.items()}
    assert len(set(ran_as.values())) == 3, f"each job ran as its own SLURM job: {ran_as}"
    for scenario, job_id in ran_as.items():
        assert job_id in jobs, f"{scenario} ran as SLURM job {job_id}, not one this sweep submitted: {jobs}"
        assert (jobs[job_id]["State"], jobs[job_id]["JobName"]) == ("COMPLETED", "train")
        assert results[scenario]["hardware"]["accelerator"] == "cpu"


def test_the_summary_of_a_completed_sweep_counts_every_job(sweeps, tmp_path):
    _, scenarios, jobs = summarize(sweeps["completes"], tmp_path)
    assert set(scenarios) == {"schedule=nofts", "schedule=implicit", "schedule=explicit"}
    assert {(row["jobs"], row["completed"], row["failed"]) for row in scenarios.values()} == {("1", "1", "0")}
    results = sweeps["completes"].results()
    assert {row["scenario"]: row["slurm_job_id"] for row in jobs.values()} == {
        f"schedule={scenario}": result["hardware"]["slurm_job_id"] for scenario, result in results.items()
    }


def test_a_job_failing_at_start_fails_the_sweep_after_the_others_complete(sweeps):
    sweep = sweeps["one_fails"]
    assert sweep.returncode != 0
    (failed_job,) = [line for line in sweep.output.splitlines() if line.startswith("Error executing job")]
    assert "'schedule=nofts'" in failed_job
    results = sweep.results()
    assert {scenario: result["status"] for scenario, result in results.items()} == {
        "nofts": "failed",
        "implicit": "completed",
        "explicit": "completed",
    }
    assert "schedule.callbacks.fts: must be a mapping with a _target_" in results["nofts"]["error"]
    assert results["nofts"]["attempts"][-1]["slurm_job_id"] in sweep.slurm_jobs()
    # the task raised, but the SLURM job itself ended normally: Hydra caught the error and submitit returned it
    assert {job["State"] for job in sweep.slurm_jobs().values()} == {"COMPLETED"}


def test_the_summary_counts_the_completed_jobs_and_lists_the_failed_one(sweeps, tmp_path):
    printed, scenarios, jobs = summarize(sweeps["one_fails"], tmp_path)
    assert sum(int(row["completed"]) for row in scenarios.values()) == 2
    assert (scenarios["schedule=nofts"]["completed"], scenarios["schedule=nofts"]["failed"]) == ("0", "1")
    assert {scenario: row["status"] for scenario, row in jobs.items()} == {
        "schedule=nofts": "failed",
        "schedule=implicit": "completed",
        "schedule=explicit": "completed",
    }
    (listed,) = [line for line in printed.splitlines() if line.startswith("- ") and "failed" in line]
    assert jobs["schedule=nofts"]["job"] in listed and "must be a mapping with a _target_" in listed


def test_a_job_dying_without_a_result_ends_the_sweep_instead_of_hanging_it(sweeps):
    sweep = sweeps["one_dies"]
    assert sweep.returncode != 0
    assert "has not produced any output" in sweep.output, sweep.output[-3000:]
    (job_dir,) = sweep.job_dirs()
    assert not (job_dir / "result.json").exists()
    (job,) = sweep.slurm_jobs().values()
    assert (job["State"], job["ExitCode"]) == ("FAILED", "3:0")


def test_the_summary_lists_a_job_that_left_no_result_as_not_completed(sweeps, tmp_path):
    printed, scenarios, jobs = summarize(sweeps["one_dies"], tmp_path)
    ((scenario, row),) = scenarios.items()
    assert (row["jobs"], row["completed"]) == ("1", "0")
    assert jobs[scenario]["status"] != "completed"
    assert any(line.startswith("- ") and jobs[scenario]["job"] in line for line in printed.splitlines())
