"""Config validation (`ftexp.config`): a composed config that cannot run is refused before anything is built,
with one line per problem naming the key (and the closest valid key for a typo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftexp.config import (
    CONFIG_DIR,
    ConfigError,
    ValidateConfig,
    config_problems,
    refused_override_keys,
    unknown_override_hints,
    validate_config,
)
from tests.helpers import compose_config


def problems(tmp_path: Path, *overrides: str, hydra: bool = False) -> list[str]:
    return config_problems(compose_config(tmp_path, *overrides, hydra=hydra))


def test_the_default_config_and_the_demo_are_valid(tmp_path):
    assert problems(tmp_path) == []
    assert problems(tmp_path, hydra=True) == [], "the hydra node is not checked against the run schema"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+sed=1", "unknown key sed, did you mean seed?"),
        ("+trainer.max_epoch=3", "unknown key trainer.max_epoch, did you mean max_epochs?"),
        ("+model.optimizer.lrr=1e-3", "unknown key model.optimizer.lrr, did you mean lr?"),
        (
            "+schedule.callbacks.checkpoint.monitr=x",
            "unknown key schedule.callbacks.checkpoint.monitr, did you mean monitor?",
        ),
        ("+schedule.callbacks.fts.max_dept=1", "unknown key schedule.callbacks.fts.max_dept, did you mean max_depth?"),
        ("+lr_reinit.reinit_lr=x", "unknown key lr_reinit.reinit_lr, did you mean reinit_lr_cfg?"),
    ],
)
def test_an_unknown_key_is_named_with_the_closest_valid_one(tmp_path, override, expected):
    found = problems(tmp_path, override)
    assert len(found) == 1 and found[0].startswith(expected)


def test_a_typo_in_a_preset_option_names_the_preset_s_parameter(tmp_path):
    found = problems(tmp_path, "schedule=freeze_unfreeze", "+schedule.callbacks.fts.ft_schedule.unfreeze_epochs=3")
    assert found == [
        "unknown key schedule.callbacks.fts.ft_schedule.unfreeze_epochs, did you mean unfreeze_epoch? "
        "(ftexp.schedule.presets.freeze_unfreeze takes no 'unfreeze_epochs')"
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("seed=abc", "seed: wrong type: expected int (got 'abc', str)"),
        ("test=maybe", "test: wrong type: expected bool (got 'maybe', str)"),
        ("trainer.max_epochs=abc", "trainer.max_epochs: wrong type: expected int or null (got 'abc', str)"),
        ("data.batch_size=1.5", "data.batch_size: wrong type: expected int (got 1.5, float)"),
        ("schedule.callbacks.early_stopping.patience=x", "schedule.callbacks.early_stopping.patience: wrong type"),
        ("schedule.callbacks.fts.max_depth=deep", "schedule.callbacks.fts.max_depth: wrong type: expected int"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_what_was_expected(tmp_path, override, expected):
    found = problems(tmp_path, override)
    assert len(found) == 1 and found[0].startswith(expected)


def test_values_the_annotation_allows_pass(tmp_path):
    assert problems(tmp_path, "trainer.max_epochs=null", "trainer.devices=auto", "trainer.precision=bf16-mixed") == []
    assert problems(tmp_path, "trainer.limit_train_batches=0.5", "model.optimizer.lr=1") == [], "an int is a float"


def test_every_problem_is_reported_at_once_in_one_error(tmp_path):
    cfg = compose_config(tmp_path, "seed=abc", "+trainer.max_epoch=3")
    with pytest.raises(ConfigError) as raised:
        validate_config(cfg)
    assert len(raised.value.problems) == 2
    assert str(raised.value).startswith("invalid config (2 problems):")


def test_an_interpolation_that_does_not_resolve_is_named(tmp_path):
    found = problems(tmp_path, "trainer.max_epochs=${nowhere.epochs}")
    assert len(found) == 1 and found[0].startswith("trainer.max_epochs: cannot resolve '${nowhere.epochs}'")


def test_a_schedule_file_that_does_not_exist_or_does_not_parse_is_refused(tmp_path):
    assert problems(tmp_path, "schedule.callbacks.fts.ft_schedule=/nope.yaml") == [
        "schedule.callbacks.fts.ft_schedule: schedule file does not exist: /nope.yaml"
    ]
    broken = tmp_path / "broken.yaml"
    broken.write_text("0:\n  params: [a]\n  lr: fast\n")
    (found,) = problems(tmp_path, f"schedule.callbacks.fts.ft_schedule={broken}")
    assert found.startswith("schedule.callbacks.fts.ft_schedule:") and "phase 0, key 'lr'" in found


# ------------------------------------------------------------------ rules that span groups
def test_lr_reinit_implicit_needs_phases(tmp_path):
    assert problems(tmp_path, "lr_reinit=implicit", "schedule=nofts") == [
        "lr_reinit=implicit: schedule=nofts has no phase transitions to reinitialize at"
    ]
    assert problems(tmp_path, "lr_reinit=implicit", "schedule=implicit") == []


def test_a_schedule_with_its_own_run_long_lr_scheduler_refuses_a_new_scheduler_every_phase(tmp_path):
    (found,) = problems(tmp_path, "lr_reinit=implicit", "schedule=ulmfit")
    assert found.startswith("lr_reinit=implicit: schedule=ulmfit brings one LR scheduler for the whole run")
    assert problems(tmp_path, "lr_reinit=none", "schedule=ulmfit") == []


def test_reinit_lr_cfg_is_set_through_the_lr_reinit_group_only(tmp_path):
    (found,) = problems(tmp_path, "schedule=implicit", "+schedule.callbacks.fts.reinit_lr_cfg={a: 1}")
    assert found.startswith("schedule.callbacks.fts.reinit_lr_cfg: choose LR reinitialization with the lr_reinit")


def test_slurm_tasks_per_node_must_equal_the_trainer_devices(tmp_path):
    assert problems(tmp_path, "hardware=slurm", hydra=True) == []
    assert problems(tmp_path, "hardware=slurm", "hardware.gpus_per_node=4", hydra=True) == []
    (found,) = problems(tmp_path, "hardware=slurm", "hydra.launcher.tasks_per_node=2", hydra=True)
    assert found.startswith("hydra.launcher.tasks_per_node=2 but trainer.devices=1")
    (found,) = problems(tmp_path, "hardware=slurm", "trainer.devices=4", hydra=True)
    assert found.startswith("hydra.launcher.tasks_per_node=1 but trainer.devices=4")


# ------------------------------------------------------------------ the Hydra callback (before any directory exists)
def test_the_hydra_callback_ends_the_process_with_the_problems_before_the_run_dir_exists(tmp_path, capsys):
    cfg = compose_config(None, "seed=abc", f"hydra.run.dir={tmp_path / 'run'}", hydra=True)
    with pytest.raises(SystemExit) as stopped:
        ValidateConfig().on_run_start(config=cfg)
    assert stopped.value.code == 1
    assert "invalid config: seed: wrong type" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_hydra_callback_warns_that_the_slurm_launcher_needs_multirun(tmp_path):
    cfg = compose_config(None, "hardware=slurm", f"hydra.run.dir={tmp_path}", hydra=True)
    with pytest.warns(UserWarning, match="multirun mode only"):
        ValidateConfig().on_run_start(config=cfg)
    ValidateConfig().on_multirun_start(config=cfg)


# ------------------------------------------------------------------ command-line keys Hydra itself refuses
def test_command_line_keys_missing_from_the_config_get_the_closest_key():
    argv = ["schedule=implicit", "trainer.max_epoch=3", "traner.max_epochs=3", "seed=3", "+new=1", "-m"]
    assert refused_override_keys(argv, CONFIG_DIR) == [
        "unknown key trainer.max_epoch, did you mean max_epochs?",
        "unknown key traner.max_epochs, did you mean trainer?",
    ]


def test_a_real_trainer_argument_the_config_does_not_list_is_pointed_to_plus():
    """benchmark is a pytorch_lightning.Trainer argument the trainer group leaves out: the hint says how to add it,
    not 'unknown key'."""
    assert unknown_override_hints(["trainer.benchmark=true"], CONFIG_DIR) == [
        "trainer.benchmark is an argument of pytorch_lightning.Trainer that the config does not list: add it with "
        "+trainer.benchmark="
    ]


def test_the_trainer_options_fine_tuning_changes_override_without_plus(tmp_path):
    overrides = (
        "trainer.precision=bf16-mixed",
        "trainer.gradient_clip_val=1.0",
        "trainer.gradient_clip_algorithm=value",
        "trainer.accumulate_grad_batches=4",
        "trainer.val_check_interval=0.5",
        "trainer.check_val_every_n_epoch=2",
    )
    assert problems(tmp_path, *overrides) == []
    cfg = compose_config(tmp_path, *overrides)
    assert (cfg.trainer.precision, cfg.trainer.accumulate_grad_batches) == ("bf16-mixed", 4)


def test_hints_look_up_keys_in_the_config_the_group_choices_compose():
    assert unknown_override_hints(["schedule=implicit", "schedule.callbacks.fts.max_phases=2"], CONFIG_DIR) == []
    assert unknown_override_hints(["schedule=nofts", "schedule.callbacks.fts.max_phases=2"], CONFIG_DIR) == [
        "unknown key schedule.callbacks.fts.max_phases"
    ]
