"""A two-process DDP job through SLURM, as a user submits it to the local cluster of scripts/local_slurm.sh:
``python -m ftexp -m hardware=slurm_cpu strategy=ddp trainer.devices=2 hydra.launcher.tasks_per_node=2
hardware.cpus_per_task=1 hardware.mem_gb=2 debug=limit``, cut to the short early-stopping run of
tests/test_ddp_runs.py. The two ranks are two SLURM tasks of one job (submitit starts both; Lightning finds its
ranks in SLURM's variables). The job completes fit and test, both ranks saw the same metrics and phases, and the
sweep's summary, written by rank 0 only, counts it as completed."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

from tests.helpers import python_m_ftexp
from tests.slurm.test_slurm_sweep import cancel
from tests.test_ddp_runs import SHORT_WITH_EARLY_STOPPING

REPO_ROOT = Path(__file__).resolve().parents[2]
SWEEP_TIMEOUT_S = 480  # far above the ~30 s the job takes; a stuck job fails instead of hanging CI
TWO_TASKS_ON_THE_CLUSTER = [
    "hardware=slurm_cpu",
    "strategy=ddp",
    "trainer.devices=2",
    "hydra.launcher.tasks_per_node=2",
    "hardware.cpus_per_task=1",
    "hardware.mem_gb=2",
    "hardware.timeout_min=10",
]


def test_a_two_task_ddp_job_completes_fit_and_test_with_one_result_and_one_summary(tmp_path):
    sweep_dir = tmp_path / "sweep"
    probe_dir = tmp_path / "probe"
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    args = [
        *("-m", *TWO_TASKS_ON_THE_CLUSTER, *SHORT_WITH_EARLY_STOPPING),
        f"+callbacks.probe={{_target_:tests.rank_probe.RankProbe,out_dir:'{probe_dir}'}}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    try:
        done = python_m_ftexp(tmp_path, *args, env={"PYTHONPATH": pythonpath}, timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        cancel(sweep_dir)
        raise
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]

    (result_file,) = sweep_dir.glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "completed" and "error" not in result
    assert {"test_loss", "test_acc"} <= set(result["test"])
    assert result["hardware"]["slurm_job_id"] and result["hardware"]["devices"] == 2

    ranks = {}
    for stage in ("fit", "test"):
        records = [json.loads((probe_dir / f"{stage}_rank{rank}.json").read_text()) for rank in (0, 1)]
        assert [record.pop("rank") for record in records] == [0, 1]
        assert records[0] == records[1], f"both ranks saw the same {stage}"
        ranks[stage] = records[0]
    assert ranks["fit"]["world_size"] == 2
    assert [t["epoch"] for t in ranks["fit"]["transitions"]] == [t["epoch"] for t in result["transitions"]]
    assert ranks["test"]["checkpoint"] == result["best_checkpoint"] == result["test"]["checkpoint"]

    with (sweep_dir / "summary.csv").open(newline="") as file:
        (row,) = csv.DictReader(file)
    assert (row["jobs"], row["completed"], row["failed"]) == ("1", "1", "0")
    assert float(row["test_acc_mean"]) == result["test"]["test_acc"]
    (job_dir,) = (sweep_dir / ".submitit").glob("[0-9]*")
    task_logs = {task: (job_dir / f"{job_dir.name}_{task}_log.out").read_text() for task in (0, 1)}
    assert "sweep summary:" in task_logs[0] and "sweep summary:" not in task_logs[1], "rank 0 summarizes, alone"
