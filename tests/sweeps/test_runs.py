"""Finding and loading the jobs of a sweep directory (ftexp/sweeps/runs.py)."""

from __future__ import annotations

import os

from ftexp.sweeps.runs import RUNNING_OR_MISSING, find_job_dirs, find_latest_sweep, hardware, load_jobs
from tests.sweeps.fake_sweeps import result, write_job


def test_jobs_come_in_sweep_order_with_status_seed_and_overrides(fake_sweep):
    jobs = load_jobs(fake_sweep)
    assert [job.dir.name for job in jobs] == [
        "0_nofts",
        "1_nofts",
        "2_implicit",
        "3_implicit",
        "4_explicit",
        "5_explicit",
    ]
    assert [job.status for job in jobs] == [
        "completed",
        "completed",
        "completed",
        RUNNING_OR_MISSING,
        "completed",
        "failed",
    ]
    assert [job.seed for job in jobs] == [1, 2, 1, 2, 1, 2]
    assert jobs[5].error == "RuntimeError: CUDA out of memory"


def test_a_job_without_result_json_is_running_or_missing_with_the_overrides_hydra_saved(fake_sweep):
    running = next(job for job in load_jobs(fake_sweep) if job.dir.name == "3_implicit")
    assert running.result is None
    assert running.status == "running/missing"
    assert running.overrides == ["+sweep=compare_schedules", "schedule=implicit", "seed=2"]
    assert running.seed == 2


def test_slurm_job_dirs_one_level_deeper_are_found_and_submitit_logs_are_not_jobs(tmp_path):
    write_job(tmp_path, "0_nofts/0", ["schedule=nofts"], result("nofts"), num=0)
    write_job(tmp_path, "1_explicit/1", ["schedule=explicit"], result(), num=1)
    (tmp_path / ".submitit" / "1234_0").mkdir(parents=True)
    (tmp_path / ".submitit" / "1234_0" / "result.json").write_text("{}")
    assert find_job_dirs(tmp_path) == [tmp_path / "0_nofts" / "0", tmp_path / "1_explicit" / "1"]


def test_a_single_run_dir_is_a_sweep_of_one_job(tmp_path):
    write_job(tmp_path, "run", ["schedule=explicit"], result())
    assert find_job_dirs(tmp_path / "run") == [tmp_path / "run"]


def test_overrides_recorded_in_result_json_take_precedence_over_hydras_file(tmp_path):
    payload = result(overrides=["schedule=explicit", "seed=1", "lr_reinit=implicit"])
    write_job(tmp_path, "0", ["schedule=explicit", "seed=1"], payload)
    assert load_jobs(tmp_path)[0].overrides == ["schedule=explicit", "seed=1", "lr_reinit=implicit"]


def test_an_old_result_without_hydra_dir_or_new_fields_loads(tmp_path):
    old = result("nofts", seed=7)
    write_job(tmp_path, "old", overrides=None, payload=old)
    [job] = load_jobs(tmp_path)
    assert (job.status, job.seed, job.scenario_name, job.overrides, job.num) == ("completed", 7, "nofts", [], None)


def test_an_unreadable_result_json_is_reported_not_raised(tmp_path):
    job_dir = write_job(tmp_path, "0_nofts", ["schedule=nofts", "seed=3"], num=0)
    (job_dir / "result.json").write_text('{"status": "compl')
    [job] = load_jobs(tmp_path)
    assert job.status == RUNNING_OR_MISSING
    assert job.error.startswith("unreadable result.json")
    assert job.seed == 3


def test_a_result_json_that_holds_no_json_object_is_reported_not_raised(tmp_path):
    job_dir = write_job(tmp_path, "0_nofts", ["schedule=nofts", "seed=3"], num=0)
    (job_dir / "result.json").write_text("[]")
    [job] = load_jobs(tmp_path)
    assert (job.result, job.status, job.seed) == (None, RUNNING_OR_MISSING, 3)
    assert job.error == "unreadable result.json: not a JSON object but a list"
    assert job.overrides == ["schedule=nofts", "seed=3"]


def test_the_seed_of_a_job_without_result_json_comes_from_its_overrides(tmp_path):
    write_job(tmp_path, "0", ["schedule=nofts", "+seed=-4"], num=0, config={"trainer": {}})
    write_job(tmp_path, "1", ["schedule=nofts", "seeds=4"], num=1, config={"trainer": {}})
    assert [job.seed for job in load_jobs(tmp_path)] == [-4, None]


def test_hardware_is_result_json_s_record_when_present(tmp_path):
    recorded = {"accelerator": "gpu", "devices": 4, "num_nodes": 2, "cpu_threads": 8, "slurm_job_id": "77"}
    write_job(tmp_path, "0", ["schedule=nofts"], result(hardware=recorded), config={"trainer": {"accelerator": "cpu"}})
    assert hardware(load_jobs(tmp_path)[0]) == recorded


def test_hardware_of_older_files_comes_from_the_composed_config(tmp_path):
    config = {
        "cpu_threads": 2,
        "hardware": {"gpus_per_node": 4, "nodes": 2},
        "trainer": {"accelerator": "gpu", "devices": "${hardware.gpus_per_node}", "num_nodes": "${hardware.nodes}"},
    }
    write_job(tmp_path, "0", ["schedule=nofts"], result(), config=config)
    assert hardware(load_jobs(tmp_path)[0]) == {"accelerator": "gpu", "devices": 8, "cpu_threads": 2}


def test_hardware_left_to_lightning_is_unknown(tmp_path):
    write_job(
        tmp_path, "0", ["schedule=nofts"], result(), config={"trainer": {"accelerator": "auto", "devices": "auto"}}
    )
    assert hardware(load_jobs(tmp_path)[0]) == {}


def test_the_latest_sweep_is_the_one_whose_multirun_yaml_is_newest(tmp_path):
    for name, mtime in (("2026-01-02", 200), ("2026-01-01", 100)):
        mark = tmp_path / "demo" / name / "multirun.yaml"
        mark.parent.mkdir(parents=True)
        mark.write_text("hydra: {}")
        os.utime(mark, (mtime, mtime))
    assert find_latest_sweep(tmp_path) == tmp_path / "demo" / "2026-01-02"
    assert find_latest_sweep(tmp_path / "nowhere") is None
