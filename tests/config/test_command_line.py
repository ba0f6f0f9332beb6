"""Command-line keys the config does not have (`ftexp.config.hints.refused_override_keys`): `python -m ftexp` refuses
them before Hydra composes, with one message of its own. It must refuse exactly what Hydra would refuse, never a
command Hydra runs: checked here against Hydra's own composition."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode

from ftexp.config import CONFIG_DIR, refused_override_keys
from ftexp.config.hints import command_line_overrides


def hydra_refuses_the_key(overrides: list[str], multirun: bool = False) -> bool:
    """Whether Hydra's composition stops at an override whose key the config does not have; a sweep is composed as
    Hydra composes it before launching any job."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        try:
            if multirun:
                GlobalHydra.instance().hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN)
            else:
                compose("config", overrides, return_hydra_config=True)
        except ConfigCompositionException as err:
            return str(err).startswith("Could not override")
    return False


ACCEPTED = [
    ["trainer.max_epochs=3"],
    ["model.no_decay.0=x"],  # a list index
    ["+extra=1", "extra=2"],  # added, then overridden
    ["hydra.run.dir=somewhere"],
    ["experiment=offline_transfer", "model.pretrained=x"],  # a key of the experiment's model
    ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=x"],
    ["hardware=slurm", "hardware.partition=gpu"],
    ["+sweep=compare_schedules", "sweep.name=x"],
    ["callbacks.lr_monitor=null"],
    ["debug=limit", "trainer.limit_train_batches=2"],
]
REFUSED = {
    ("trainer.max_epoch=3",): "unknown key trainer.max_epoch, did you mean max_epochs?",
    ("hydra.run.dirr=x",): "unknown key hydra.run.dirr, did you mean dir?",
    ("seed.x=1",): "unknown key seed.x",
    ("~logger", "logger.save_dir=x"): "unknown key logger.save_dir",
    ("schedule=nofts", "schedule.callbacks.fts.max_depth=1"): "unknown key schedule.callbacks.fts.max_depth",
    ("hardware.partition=gpu",): "unknown key hardware.partition",
    ("data.synthetic.n_trains=4",): "unknown key data.synthetic.n_trains, did you mean n_train?",
    ("trainer.benchmark=true",): (
        "trainer.benchmark is an argument of pytorch_lightning.Trainer that the config does not list: add it with "
        "+trainer.benchmark="
    ),
}


@pytest.mark.parametrize("overrides", ACCEPTED, ids=" ".join)
def test_a_command_hydra_runs_is_never_refused(overrides):
    assert not hydra_refuses_the_key(overrides)
    assert refused_override_keys(overrides, CONFIG_DIR) == []


@pytest.mark.parametrize("overrides", list(REFUSED), ids=" ".join)
def test_a_key_hydra_refuses_gets_one_line(overrides):
    assert hydra_refuses_the_key(list(overrides))
    assert refused_override_keys(list(overrides), CONFIG_DIR) == [REFUSED[overrides]]


def test_sweeps_are_checked_as_hydra_composes_them():
    # a swept key is applied per job: refused up front, instead of failing every job
    assert refused_override_keys(["-m", "trainer.max_epoch=3,4"], CONFIG_DIR) == [
        "unknown key trainer.max_epoch, did you mean max_epochs?"
    ]
    # a swept key of group options that are themselves swept: each job has it
    swept_groups = ["-m", "schedule=implicit,implicit_naive", "schedule.callbacks.fts.implicit_mode=naive,blocks"]
    assert not hydra_refuses_the_key(swept_groups[1:], multirun=True)
    assert refused_override_keys(swept_groups, CONFIG_DIR) == []
    # a plain key is applied to the sweep's config, whose groups are at their defaults: Hydra refuses it there
    default_group = ["-m", "schedule=nofts,implicit", "schedule.callbacks.fts.implicit_mode=naive"]
    assert hydra_refuses_the_key(default_group[1:], multirun=True)
    assert len(refused_override_keys(default_group, CONFIG_DIR)) == 1


@pytest.mark.parametrize(
    ("argv", "overrides"),
    [
        (["-m", "seed=1,2", "--cfg", "job", "trainer.max_epochs=3"], ["seed=1,2", "trainer.max_epochs=3"]),
        (["--cfg=all", "--resolve", "~logger"], ["~logger"]),
        (["--config-name", "other", "trainer.max_epoch=3"], None),  # another config: Hydra reports alone
        (["-cd", "/elsewhere", "trainer.max_epoch=3"], None),
        (["--help"], None),
        (["--version"], None),
    ],
)
def test_only_the_packaged_config_s_command_lines_are_checked(argv, overrides):
    assert command_line_overrides(argv) == overrides
    if overrides is None:
        assert refused_override_keys(argv, CONFIG_DIR) == []
