"""A SLURM job that is requeued, or reaches its time limit, finishes as one run: it checkpoints at a batch
boundary, SLURM (or submitit) requeues it, and the next attempt resumes from its own ``last.ckpt`` at the same phase.

- ``scontrol requeue`` mid-run: SLURM sends SIGTERM; Lightning stops at the next batch, ftexp's
  PreemptionCheckpoint writes last.ckpt, the job leaves no result for submitit, and SLURM starts it again.
- a time limit with ``--signal=USR2@<s>`` (submitit's ``signal_delay_s``): PreemptionCheckpoint takes the signal,
  saves at the next batch, and hands it to submitit, which requeues the job (``max_num_timeout`` times at most).

Each test runs one job of the demo experiment (explicit 3-phase schedule) through ``hardware=slurm_cpu``. Its first
attempt waits in phase 1 until it is signalled (tests/slurm/hold.py): the demo trains faster than a SLURM time limit
can be set, and a requeue must not race the job's end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ftexp.train import run
from tests.helpers import compose_config
from tests.test_exact_resume import differences

REPO_ROOT = Path(__file__).parents[2]
ONE_JOB = [
    "-m",
    "hardware=slurm_cpu",
    "hardware.cpus_per_task=1",
    "hardware.mem_gb=2",
    "trainer.enable_progress_bar=false",
    "test=false",
    "+callbacks.hold._target_=tests.slurm.hold.HoldFirstAttemptUntilSignalled",
]
TIMEOUT_S = 480
# the job's settings that decide its result, also given to the unpreempted run it is compared with (one thread: the
# job's cpus_per_task, so that both sum in the same order)
SAME_RUN = ["trainer.max_epochs=10", "cpu_threads=1"]


def start_sweep(root: Path, *overrides: str) -> tuple[subprocess.Popen, Path]:
    sweep_dir = root / "sweep"
    log = (root / "sweep.log").open("w")
    command = [sys.executable, "-m", "ftexp", *ONE_JOB, f"hydra.sweep.dir={sweep_dir}", *overrides]
    # sbatch exports the submitting environment: the job imports the hold callback from this checkout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT), sweep_dir


def wait_for(condition, what: str, process: subprocess.Popen, timeout_s: float = TIMEOUT_S):
    """Check ``condition`` once a second while the sweep runs (the wait ends early if the sweep does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the sweep ended (exit status {process.returncode}) before {what}")
    pytest.fail(f"timed out waiting for {what}")


def finish(process: subprocess.Popen, root: Path, sweep_dir: Path) -> dict:
    try:
        process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", *job_ids(sweep_dir)], check=False)
        process.kill()
        pytest.fail(f"the sweep did not end within {TIMEOUT_S} s:\n{(root / 'sweep.log').read_text()[-3000:]}")
    assert process.returncode == 0, (root / "sweep.log").read_text()[-3000:]
    (result_file,) = sweep_dir.glob("*/result.json")
    return json.loads(result_file.read_text())


def job_ids(sweep_dir: Path) -> list[str]:
    folder = sweep_dir / ".submitit"
    return sorted(path.name for path in folder.iterdir() if path.is_dir() and path.name[0].isdigit())


def train_log(sweep_dir: Path) -> str:
    logs = list(sweep_dir.glob("*/train.log"))
    return logs[0].read_text() if logs else ""


def assert_one_run(result: dict) -> None:
    """Completed, with each epoch trained once (the last phase's early stopping may end it before max_epochs)."""
    assert result["status"] == "completed"
    epochs = result["epochs_run"]
    assert [row["epoch"] for row in result["history"]] == list(range(epochs)), "every epoch once, none from zero again"
    assert result["attempts"][0]["resumed_from"] is None
    later = result["attempts"][1:]
    assert later and all(a["resumed_from"] and a["resumed_from"].endswith("last.ckpt") for a in later)
    for stopped, resumed in zip(result["attempts"], later, strict=False):
        assert resumed["start_epoch"] == stopped["end_epoch"], "resumed where the attempt before stopped"
    depths = [row["finetuning_depth"] for row in result["history"]]
    assert depths == sorted(depths) and depths[-1] == 2, "the phases go on from where they were, up to the last"
    assert [t["depth"] for t in result["transitions"]] == [1, 2]


def test_a_job_requeued_mid_run_resumes_at_its_phase_and_finishes_as_the_same_run_unpreempted(tmp_path):
    process, sweep_dir = start_sweep(tmp_path, *SAME_RUN)
    wait_for(lambda: "hold: phase 1" in train_log(sweep_dir), "the job to wait in phase 1", process)
    (job_id,) = job_ids(sweep_dir)
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)

    result = finish(process, tmp_path, sweep_dir)

    assert_one_run(result)
    first, *_ = result["attempts"]
    assert first["status"] == "interrupted" and first["end_epoch"] >= 3, "stopped in phase 1 with a checkpoint"
    assert "state saved" in train_log(sweep_dir), "ftexp took SIGTERM and checkpointed at a batch boundary"
    threads = torch.get_num_threads()  # run() applies cpu_threads to this process
    try:
        unpreempted = run(compose_config(tmp_path / "unpreempted", *SAME_RUN, "test=false"))
    finally:
        torch.set_num_threads(threads)
    assert differences(result, unpreempted) == [], "the requeue changed nothing the run found"


def test_a_time_limit_with_a_signal_leads_to_a_checkpoint_and_a_requeue_that_finishes_the_job(tmp_path):
    # 1 minute per attempt, SIGUSR2 about 35 s before it; the first attempt waits for it in phase 1
    process, sweep_dir = start_sweep(tmp_path, "hardware.timeout_min=1", "hydra.launcher.signal_delay_s=35", *SAME_RUN)

    result = finish(process, tmp_path, sweep_dir)

    assert_one_run(result)
    assert result["attempts"][0]["status"] == "requeued"
    assert "handing SIGUSR2" in train_log(sweep_dir), "submitit requeued the job after ftexp's checkpoint"
