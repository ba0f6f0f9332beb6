"""Which overrides tell the jobs of a sweep apart (ftexp/overrides.py): the rule job dir names and scenarios share."""

from __future__ import annotations

import pytest

from ftexp.overrides import job_dirname, override_key, varies_between_jobs


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("seed=1", "seed"),
        ("+trainer.max_epochs=3", "trainer.max_epochs"),
        ("++hydra.callbacks.x._target_=y", "hydra.callbacks.x._target_"),
        ("~logger", "logger"),
        ("hydra/launcher=submitit_slurm", "hydra/launcher"),
        ("data.path=a=b", "data.path"),
    ],
)
def test_an_override_s_key_is_what_it_sets_however_it_adds_forces_or_deletes_it(override, key):
    assert override_key(override) == key


@pytest.mark.parametrize(
    "override",
    [
        "+sweep=compare_schedules",
        "sweep.name=x",
        "sweep/grid=big",
        "hardware=slurm",
        "hardware.partition=gpu",
        "+hardware/extra=x",
        "~hardware",
        "hydra.sweep.dir=/tmp/x",
        "hydra/launcher=submitit_slurm",
        "++hydra.callbacks.summarize_sweep._target_=x",
    ],
)
def test_the_sweep_file_hardware_and_hydra_settings_are_the_same_for_every_job(override):
    assert not varies_between_jobs(override)


@pytest.mark.parametrize(
    "override", ["seed=2", "schedule=nofts", "~logger", "hardware_profile=a", "sweeps=3", "model.hydra_like=1"]
)
def test_other_keys_vary_between_jobs_even_when_they_start_like_a_shared_one(override):
    assert varies_between_jobs(override)


def test_a_job_dir_is_named_by_the_overrides_that_vary_between_jobs():
    overrides = ["+sweep=s", "sweep/grid=big", "hardware_profile=a", "hydra/launcher=x", "schedule=nofts", "seed=1"]
    assert job_dirname(overrides) == "hardware_profile=a,schedule=nofts,seed=1"
