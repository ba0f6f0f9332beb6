"""`python -m ftexp strategy=ddp trainer.devices=2` on CPU (gloo) as a user runs it: fit and test complete with one
result, every rank acts on the same (synchronized) validation metrics, and the run is deterministic.

Each run is the demo experiment cut short (``debug=limit``, at most 5 epochs) with a patience of 1 and a min_delta
of 0.01, so that early stopping ends phases before their ``max_transition_epoch``. A probe callback
(tests/rank_probe.py) writes what each rank saw; rank 1 is Lightning's second process, started with the same
command. The same run through a SLURM cluster: tests/slurm/test_slurm_ddp.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TWO_CPU_PROCESSES = ["trainer.devices=2", "trainer.accelerator=cpu"]
SHORT_WITH_EARLY_STOPPING = [
    "debug=limit",
    "trainer.max_epochs=5",
    "schedule.callbacks.early_stopping.patience=1",
    "early_stopping_min_delta=0.01",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
LAUNCH_GUARD_S = 600  # only to turn a deadlocked process group into a failure; not a timing assertion


@dataclass
class Run:
    returncode: int
    output: str
    run_dir: Path

    @property
    def result(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "result.json").read_text())

    def probe(self, stage: str, rank: int) -> dict[str, Any]:
        """What rank ``rank`` saw in ``stage`` (fit or test), without the rank's own number."""
        record = json.loads((self.run_dir / "probe" / f"{stage}_rank{rank}.json").read_text())
        assert record.pop("rank") == rank
        return record


def probe_callback(run_dir: Path) -> str:
    return f"+callbacks.probe={{_target_:tests.rank_probe.RankProbe,out_dir:'{run_dir / 'probe'}'}}"


@dataclass
class Started:
    name: str
    run_dir: Path
    process: subprocess.Popen


def start_ftexp(root: Path, name: str, port: int, *overrides: str) -> Started:
    """Start ``python -m ftexp <overrides>`` in a run dir of its own, with this repository's tests importable (the
    probe) and a rendezvous port of its own (the runs of this module run side by side)."""
    run_dir = root / name
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    for variable in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "PL_GLOBAL_SEED"):
        env.pop(variable, None)  # the run must launch its own process group
    env["MASTER_PORT"] = str(port)
    command = [sys.executable, "-m", "ftexp", *overrides, probe_callback(run_dir), f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # rank 1 joins this session, so a hang can be cleaned up by process group
    )
    return Started(name, run_dir, process)


def finish(started: Started, deadline: float) -> Run:
    try:
        output, _ = started.process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(started.process.pid, signal.SIGKILL)
        output, _ = started.process.communicate()
        pytest.fail(f"{started.name} did not finish (deadlocked process group?):\n{output[-6000:]}")
    return Run(started.process.returncode, output, started.run_dir)


def free_ports(count: int) -> list[int]:
    """``count`` different free TCP ports (all held open until each is known, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Side by side (on 2 cores a run mostly waits for its second process to start): the DDP run, the same run
    again, the same under ddp_spawn, and a DDP run whose rank 1 fails at the test stage."""
    root = tmp_path_factory.mktemp("ddp_runs")
    short = [*TWO_CPU_PROCESSES, *SHORT_WITH_EARLY_STOPPING]
    commands = {
        "ddp": ["strategy=ddp", *short],
        "rerun": ["strategy=ddp", *short],
        "spawn": ["strategy=ddp_spawn", *short],
        "fails": [
            "strategy=ddp",
            *TWO_CPU_PROCESSES,
            "debug=limit",
            "trainer.max_epochs=1",
            "+callbacks.fail={_target_:tests.rank_probe.FailOnRank,rank:1}",
        ],
    }
    ports = free_ports(len(commands))
    started = [start_ftexp(root, name, port, *args) for (name, args), port in zip(commands.items(), ports, strict=True)]
    deadline = time.monotonic() + LAUNCH_GUARD_S
    return {run.name: finish(run, deadline) for run in started}


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What a rerun must reproduce: metrics of every epoch, the transitions, the best and the test."""
    transitions = [{k: v for k, v in t.items() if k != "seconds"} for t in result["transitions"]]
    test = {k: v for k, v in result["test"].items() if k != "checkpoint"}
    return {"history": result["history"], "transitions": transitions, "best": result["best"], "test": test}


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_completes_fit_and_test_with_one_result(runs):
    run = runs["ddp"]
    assert run.returncode == 0, run.output[-6000:]
    result = run.result
    assert result["status"] == "completed" and "error" not in result
    assert result["hardware"]["devices"] == 2
    assert {"test_loss", "test_acc"} <= set(result["test"])
    best = Path(result["best_checkpoint"])
    assert best.is_file() and result["test"]["checkpoint"] == str(best), "the test ran on the best checkpoint"
    assert result["best"]["val_loss"] == pytest.approx(result["best_score"])
    assert (run.run_dir / "SequenceClassifier_ft_schedule.yaml").is_file()
    assert not (run.run_dir / ".rank_errors").exists()


@pytest.mark.slow
def test_both_ranks_saw_the_same_monitored_values_best_checkpoints_phases_and_test(runs):
    run = runs["ddp"]
    fit = [run.probe("fit", rank) for rank in (0, 1)]
    test = [run.probe("test", rank) for rank in (0, 1)]
    assert (fit[0]["world_size"], fit[0]["backend"]) == (2, "gloo")
    assert fit[0] == fit[1], "every epoch's metrics, phase, early-stopping state and best checkpoint, and transitions"
    assert test[0] == test[1]
    assert test[0]["checkpoint"] == run.result["best_checkpoint"]
    assert [row["val_loss"] for row in fit[0]["epochs"]] == [row["val_loss"] for row in run.result["history"]]
    assert test[0]["test_acc"] == run.result["test"]["test_acc"]


@pytest.mark.slow
def test_early_stopping_ends_a_phase_before_its_max_transition_epoch_under_ddp(runs):
    run = runs["ddp"]
    result = run.result
    schedule = yaml.safe_load((run.run_dir / "SequenceClassifier_ft_schedule.yaml").read_text())
    first = result["transitions"][0]
    assert first["depth"] == 1
    assert first["epoch"] < schedule[0]["max_transition_epoch"], "only early stopping can end phase 0 this early"
    assert result["reached_depth"] == 2


@pytest.mark.slow
def test_a_rerun_of_the_ddp_run_gives_the_same_result(runs):
    first, rerun = runs["ddp"], runs["rerun"]
    assert rerun.returncode == 0, rerun.output[-6000:]
    assert comparable(rerun.result) == comparable(first.result)


@pytest.mark.slow
def test_ddp_spawn_completes_with_the_test_metrics_and_rank_agreement_of_ddp(runs):
    ddp, run = runs["ddp"], runs["spawn"]
    assert run.returncode == 0, run.output[-6000:]
    assert run.result["status"] == "completed"
    assert run.result["test"] == pytest.approx({**ddp.result["test"], "checkpoint": run.result["test"]["checkpoint"]})
    fit = [run.probe("fit", rank) for rank in (0, 1)]
    assert fit[0] == fit[1]
    assert fit[0]["transitions"] == ddp.probe("fit", 0)["transitions"]
    assert run.probe("test", 0) == run.probe("test", 1)


@pytest.mark.slow
def test_a_failure_on_one_rank_is_recorded_as_that_ranks_error_not_as_the_connection_error_it_causes(runs):
    run = runs["fails"]
    assert run.returncode != 0
    result = run.result
    assert result["status"] == "failed"
    assert result["error"] == "rank 1: RuntimeError: injected failure on rank 1 at the test stage"
    assert set(result["rank_errors"]) == {"0", "1"}, "rank 0's own (consequential) error is kept next to it"
    assert "rank 1 failed first" in run.output
