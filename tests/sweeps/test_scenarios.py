"""Grouping the jobs of a sweep into scenarios and labelling them (ftexp/sweeps/scenarios.py)."""

from __future__ import annotations

import pytest

from ftexp.overrides import varies_between_jobs
from ftexp.sweeps.runs import load_jobs
from ftexp.sweeps.scenarios import group_scenarios, is_scenario_override
from tests.sweeps.fake_sweeps import result, write_job


@pytest.mark.parametrize(
    "override",
    [
        "seed=3",
        "+sweep=compare_schedules",
        "sweep.name=x",
        "+seed=3",
        "hardware=slurm",
        "hardware.partition=gpu",
        "+hardware/extra=x",
        "sweep/grid=big",
        "hydra.sweep.dir=/tmp/x",
        "hydra/launcher=submitit_slurm",
        "++hydra.callbacks.summarize_sweep._target_=x",
    ],
)
def test_seed_sweep_hardware_and_hydra_overrides_do_not_make_a_scenario(override):
    assert not is_scenario_override(override)


@pytest.mark.parametrize(
    "override",
    ["schedule=nofts", "lr_reinit=implicit", "+trainer.max_epochs=3", "~logger", "hardware_profile=a", "seeds=2"],
)
def test_what_a_job_trains_makes_a_scenario(override):
    assert is_scenario_override(override)


def test_one_scenario_per_schedule_with_its_seeds_in_sweep_order(fake_sweep):
    scenarios = group_scenarios(load_jobs(fake_sweep))
    assert [s.label for s in scenarios] == ["schedule=nofts", "schedule=implicit", "schedule=explicit"]
    assert [[job.seed for job in s.jobs] for s in scenarios] == [[1, 2], [1, 2], [1, 2]]
    assert scenarios.common == []


def test_labels_show_only_the_overrides_that_differ_between_scenarios(tmp_path):
    runs = [
        ["schedule=nofts", "debug=limit", "seed=1", "hardware=slurm"],
        ["schedule=explicit", "lr_reinit=implicit", "debug=limit", "seed=1", "hardware=slurm"],
        ["schedule=explicit", "lr_reinit=none", "debug=limit", "seed=1"],
        ["debug=limit", "schedule=explicit", "seed=2", "lr_reinit=none"],  # another order: the same scenario
    ]
    for num, overrides in enumerate(runs):
        write_job(tmp_path, str(num), overrides, result(), num=num)
    scenarios = group_scenarios(load_jobs(tmp_path))
    assert [s.label for s in scenarios] == [
        "schedule=nofts",
        "schedule=explicit lr_reinit=implicit",
        "schedule=explicit lr_reinit=none",
    ]
    assert [len(s.jobs) for s in scenarios] == [1, 1, 2]
    assert scenarios.common == ["debug=limit"]


def test_a_sweep_of_one_scenario_is_labelled_with_all_its_overrides(tmp_path):
    for seed in (1, 2):
        write_job(tmp_path, str(seed), ["schedule=explicit", "debug=limit", f"seed={seed}"], result(seed=seed))
    [scenario] = group_scenarios(load_jobs(tmp_path))
    assert scenario.label == "schedule=explicit debug=limit"


def test_scenario_overrides_are_those_that_vary_between_jobs_less_the_seed():
    """One rule decides which overrides tell jobs apart, for job dir names and scenarios alike."""
    overrides = ["+sweep=s", "hardware=slurm", "hardware_profile=a", "hydra/launcher=x", "schedule=nofts", "seed=1"]
    assert [o for o in overrides if varies_between_jobs(o)] == ["hardware_profile=a", "schedule=nofts", "seed=1"]
    assert [o for o in overrides if is_scenario_override(o)] == ["hardware_profile=a", "schedule=nofts"]


def test_jobs_without_recorded_overrides_fall_back_to_result_json_s_scenario(tmp_path):
    for name, seed in (("nofts", 1), ("explicit", 1), ("explicit", 2)):
        write_job(tmp_path, f"{name}{seed}", overrides=None, payload=result(name, seed))
    scenarios = group_scenarios(load_jobs(tmp_path))
    assert sorted((s.label, len(s.jobs)) for s in scenarios) == [("explicit", 2), ("nofts", 1)]


def test_a_run_without_overrides_and_one_with_only_a_seed_are_one_scenario(tmp_path):
    write_job(tmp_path, "plain", overrides=None, payload=result("explicit", 1))
    write_job(tmp_path, "seeded", ["seed=2"], result("explicit", 2))
    [scenario] = group_scenarios(load_jobs(tmp_path))
    assert (scenario.label, sorted(job.seed for job in scenario.jobs)) == ("explicit", [1, 2])
