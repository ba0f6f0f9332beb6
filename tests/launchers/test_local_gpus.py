"""hydra/launcher=local_gpus (hydra_plugins/ftexp_launchers/local_gpus.py): the jobs of a multirun run in parallel,
each in its own process that sees only its GPU ids (CUDA_VISIBLE_DEVICES), never two jobs on one id.

No GPU is needed: the ids are fake, and the jobs either train on the CPU (trainer.accelerator=cpu) or are toy task
functions that return the ids they were given. Which jobs ran at the same time is read from the launcher's own start
and end records (<sweep dir>/.local_gpus/jobs.jsonl), never from timings.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.callbacks import Callbacks  # Hydra-internal, checked against hydra-core 1.3.8
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobStatus
from hydra.types import HydraContext
from hydra.utils import instantiate

from ftexp.config import LOCAL_GPUS_LAUNCHER, config_problems

# Hydra's plugin scan (at the first compose of the session) executes this module again, in place: its classes and
# functions are looked up on the module when used, never imported by name
from hydra_plugins.ftexp_launchers import local_gpus
from tests.helpers import compose_config, python_m_ftexp


def compose_ftexp(tmp_path: Path, *overrides: str):
    return compose_config(tmp_path, *overrides, hydra=True)


def job_records(sweep_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep_dir / ".local_gpus" / "jobs.jsonl").read_text().splitlines()]


def most_jobs_at_once(records: list[dict]) -> int:
    """Replays the launcher's start/end records; fails if a job was given an id another running job held."""
    held: dict[str, int] = {}
    most = 0
    for record in records:
        if record["event"] == "start":
            taken = {gpu: held[gpu] for gpu in record["gpus"] if gpu in held}
            assert not taken, f"job {record['job']} got GPU ids still held by running jobs: {taken}"
            held.update(dict.fromkeys(record["gpus"], record["job"]))
            most = max(most, len(set(held.values())))
        else:
            for gpu in record["gpus"]:
                del held[gpu]
    assert not held, "every started job ended"
    return most


# ------------------------------------------------------------------ which ids the jobs get
def test_the_ids_are_every_gpu_the_launching_shell_sees(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert local_gpus.gpu_pool(None, gpus_per_job=1) == ["2", "3"]

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(local_gpus, "_cuda_device_count", lambda: 3)
    assert local_gpus.gpu_pool(None, gpus_per_job=1) == ["0", "1", "2"]


def test_listed_ids_count_within_the_shell_s_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert local_gpus.gpu_pool([0, 2, 3], gpus_per_job=1) == ["0", "2", "3"]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert local_gpus.gpu_pool([1], gpus_per_job=1) == ["6"]
    with pytest.raises(local_gpus.GPUPoolError, match=r"\['2'\] not among the 2 GPU\(s\) this shell sees"):
        local_gpus.gpu_pool([2], gpus_per_job=1)


@pytest.mark.parametrize(
    ("gpus", "gpus_per_job", "message"),
    [
        ([0, 1], 3, "gpus_per_job=3 but only 2 GPU id"),
        ([0, 0], 1, "lists a GPU twice"),
        ([0, 1], 0, "gpus_per_job must be a positive integer"),
    ],
)
def test_ids_that_cannot_work_are_refused(monkeypatch, gpus, gpus_per_job, message):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(local_gpus.GPUPoolError, match=message):
        local_gpus.gpu_pool(gpus, gpus_per_job)


def test_without_any_gpu_the_sweep_stops_with_a_clear_error_before_any_job(tmp_path, monkeypatch):
    cfg = compose_ftexp(tmp_path, "hardware=local_gpus", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    launcher = instantiate(cfg.hydra.launcher)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(local_gpus, "_cuda_device_count", lambda: 0)

    # the sweeper calls setup() before it creates the sweep dir
    with pytest.raises(
        local_gpus.GPUPoolError, match=r"found no GPU \(torch.cuda.device_count\(\) is 0\).*hardware.gpus=\[0,1\]"
    ):
        launcher.setup(hydra_context=None, task_function=None, config=cfg)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(local_gpus.GPUPoolError, match="found no GPU \\(CUDA_VISIBLE_DEVICES=''\\)"):
        launcher.setup(hydra_context=None, task_function=None, config=cfg)
    assert not (tmp_path / "sweep").exists()


# ------------------------------------------------------------------ hardware=local_gpus
def test_hardware_local_gpus_gives_each_job_gpus_per_job_devices_and_the_launcher_the_same_values(tmp_path):
    cfg = compose_ftexp(tmp_path, "hardware=local_gpus")
    assert cfg.hydra.launcher._target_ == LOCAL_GPUS_LAUNCHER, "the launcher the config checks recognise"
    assert (cfg.hydra.launcher.gpus, cfg.hydra.launcher.gpus_per_job) == (None, 1)
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy) == ("gpu", 1, "auto")
    assert config_problems(cfg) == []

    cfg = compose_ftexp(tmp_path, "hardware=local_gpus", "hardware.gpus=[0,2,3]", "hardware.gpus_per_job=2")
    assert (list(cfg.hydra.launcher.gpus), cfg.hydra.launcher.gpus_per_job, cfg.trainer.devices) == ([0, 2, 3], 2, 2)
    assert config_problems(cfg) == [], "strategy=auto: Lightning runs DDP over a job's 2 devices"


def test_a_trainer_that_would_not_use_exactly_its_job_s_gpus_is_refused(tmp_path):
    cfg = compose_ftexp(tmp_path, "hardware=local_gpus", "hardware.gpus_per_job=2", "trainer.devices=1")
    assert config_problems(cfg) == [
        "hydra.launcher.gpus_per_job=2 but trainer.devices=1: each job sees only its gpus_per_job GPUs, so they must "
        "be equal (set hardware.gpus_per_job)"
    ]
    cpu = compose_ftexp(
        tmp_path, "hardware=local_gpus", "hardware.gpus_per_job=2", "trainer.devices=1", "trainer.accelerator=cpu"
    )
    assert config_problems(cpu) == [], "on the CPU the ids are only environment values"


# ------------------------------------------------------------------ toy jobs through the launcher, in this process
def toy_task():
    """The task function of the toy sweeps; nested, so that it is pickled by value and the job processes do not
    import this test module. ``cfg.mode`` says what the job does; it returns the CUDA_VISIBLE_DEVICES it saw."""

    def task(cfg):
        import os
        import signal
        from pathlib import Path

        shared = Path(cfg.shared_dir)
        if cfg.mode == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if cfg.mode in ("waits_for_next", "next"):
            # a rendezvous on a FIFO: opening one end blocks until the other end is opened, so "waits_for_next"
            # holds its GPU until "next" is running on the other one; an alarm bounds the wait if it never comes
            def give_up(signum, frame):
                raise TimeoutError(f"{cfg.mode}: the other job never ran while this one was running")

            signal.signal(signal.SIGALRM, give_up)
            signal.alarm(120)
            with (shared / "rendezvous").open("rb" if cfg.mode == "waits_for_next" else "wb"):
                signal.alarm(0)
        if cfg.mode == "raises":
            raise ValueError("this job fails")
        return os.environ["CUDA_VISIBLE_DEVICES"]

    return task


def launch_toy_jobs(tmp_path: Path, modes: list[str], **launcher_args):
    """One toy job per mode through local_gpus.LocalGPUsLauncher, as Hydra's basic sweeper drives a launcher."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "toy.yaml").write_text(f"mode: ok\nshared_dir: {tmp_path}\n")
    os.mkfifo(tmp_path / "rendezvous")
    overrides = [f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra/hydra_logging=none"]
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3", job_name="toy"):
        cfg = compose("toy", overrides=overrides, return_hydra_config=True)
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks(cfg))
        launcher = local_gpus.LocalGPUsLauncher(**launcher_args)
        launcher.setup(hydra_context=context, task_function=toy_task(), config=cfg)
        return launcher.launch([[f"mode={mode}"] for mode in modes], initial_job_idx=0)


@pytest.mark.slow
def test_a_killed_or_failing_job_gives_its_gpu_to_the_next_job_and_the_others_complete(tmp_path):
    returns = launch_toy_jobs(tmp_path, ["killed", "waits_for_next", "next", "raises", "ok"], gpus=[0, 1])
    killed, waiting, after_killed, raises, last = returns

    failed, completed = JobStatus.FAILED, JobStatus.COMPLETED
    assert [r.status for r in returns] == [failed, completed, completed, failed, completed]
    with pytest.raises(RuntimeError, match=r"job #0: the job process exited with code -9 .*\(killed by SIGKILL\)"):
        _ = killed.return_value  # what the sweeper reads: the job's failure
    with pytest.raises(ValueError, match="this job fails"):
        _ = raises.return_value
    assert {waiting.return_value, after_killed.return_value} == {"0", "1"}, "one id each"
    assert last.return_value in {"0", "1"}
    records = job_records(tmp_path / "sweep")
    started = {r["job"]: r["gpus"] for r in records if r["event"] == "start"}
    assert started[2] == started[0] == [after_killed.return_value], "the killed job's id went to the next job"
    ended = {r["job"]: r["status"] for r in records if r["event"] == "end"}
    assert [ended[n] for n in range(5)] == ["failed", "completed", "completed", "failed", "completed"]
    assert most_jobs_at_once(records) == 2
    for n in range(5):  # Hydra's run_job ran each job in its own dir
        assert (tmp_path / "sweep" / str(n) / ".hydra" / "overrides.yaml").is_file()
    assert "ValueError: this job fails" in (tmp_path / "sweep" / "3" / "launcher.log").read_text()


@pytest.mark.slow
def test_with_gpus_per_job_each_job_gets_that_many_ids_of_its_own(tmp_path):
    returns = launch_toy_jobs(tmp_path, ["ok", "ok", "ok"], gpus=[0, 1, 2, 3], gpus_per_job=2)

    seen = [r.return_value.split(",") for r in returns]
    assert all(len(ids) == 2 for ids in seen)
    assert sorted(seen[0] + seen[1]) == ["0", "1", "2", "3"], "the two first jobs ran side by side on all four"
    records = job_records(tmp_path / "sweep")
    assert [r["gpus"] for r in records if r["event"] == "start"] == seen
    assert most_jobs_at_once(records) == 2


# ------------------------------------------------------------------ python -m ftexp -m hardware=local_gpus
@pytest.mark.slow
def test_a_sweep_trains_two_jobs_at_a_time_each_on_its_own_gpu_id(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [
        *("-m", "hardware=local_gpus", "hardware.gpus=[0,1]", "trainer.accelerator=cpu"),
        *("schedule=nofts,explicit", "seed=1,2", "debug=fast_dev_run", "test=false", "cpu_threads=1"),
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = python_m_ftexp(tmp_path, *args, unset=["CUDA_VISIBLE_DEVICES"])
    assert done.returncode == 0, done.stderr[-3000:]

    records = job_records(sweep_dir)
    assert most_jobs_at_once(records) == 2
    assert sorted(r["job"] for r in records if r["event"] == "end" and r["status"] == "completed") == [0, 1, 2, 3]
    for start in (r for r in records if r["event"] == "start"):
        job_dir = Path(start["log"]).parent
        (gpu,) = start["gpus"]
        log = (job_dir / "launcher.log").read_text()
        assert re.search(rf"^\[local_gpus\] job #{start['job']}: CUDA_VISIBLE_DEVICES={gpu}$", log, re.MULTILINE)
        result = json.loads((job_dir / "result.json").read_text())
        assert result["status"] == "completed"
        assert result["hardware"]["cuda_visible_devices"] == gpu, "the job saw exactly its one id"
        assert (job_dir / ".hydra" / "config.yaml").is_file()
        assert re.search(rf"#{start['job']} started on GPU {gpu} ", done.stdout + done.stderr)
        assert re.search(rf"#{start['job']} completed on GPU {gpu} ", done.stdout + done.stderr)


@pytest.mark.slow
def test_a_job_with_two_gpu_ids_runs_one_ddp_process_on_each(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [
        *("-m", "hardware=local_gpus", "hardware.gpus=[0,1]", "hardware.gpus_per_job=2"),
        *(
            "trainer.accelerator=cpu",
            "schedule=explicit",
            "seed=1",
            "debug=fast_dev_run",
            "test=false",
            "cpu_threads=1",
        ),
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = python_m_ftexp(tmp_path, *args, unset=["CUDA_VISIBLE_DEVICES"])
    assert done.returncode == 0, done.stderr[-3000:]

    (start,) = (r for r in job_records(sweep_dir) if r["event"] == "start")
    assert start["gpus"] == ["0", "1"]
    job_dir = Path(start["log"]).parent
    log = (job_dir / "launcher.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1" in log
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log, "Lightning started rank 1 (strategy=auto with 2 devices: DDP)"
    assert (job_dir / "train_ddp_process_1.log").is_file(), "rank 1 ran the same job, logging to a file of its own"
    result = json.loads((job_dir / "result.json").read_text())
    assert (result["status"], result["hardware"]["cuda_visible_devices"]) == ("completed", "0,1")
