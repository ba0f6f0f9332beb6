"""The callbacks a scheduled run works with, as FTS sets them up: a plain EarlyStopping is taken over by a
PhaseEarlyStopping with the same settings, missing ones are added, FTS's class names work, and a LightningCLI config
written for FTS runs with ``class_path: ftexp.*``."""

from __future__ import annotations

import pytest
import yaml
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

import ftexp
from ftexp import FinetuningScheduler, FTSCheckpoint, FTSEarlyStopping, PhaseCheckpoint, PhaseEarlyStopping
from ftexp.callbacks.companions import phase_aware_copy
from tests.tiny_models import TinyModule, trainer

TWO_PHASES = {0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.*", "net.2.*", "net.0.*"]}}


def test_fts_callback_names_are_the_phase_aware_callbacks():
    assert FTSEarlyStopping is PhaseEarlyStopping
    assert FTSCheckpoint is PhaseCheckpoint


def test_a_plain_early_stopping_is_replaced_by_a_phase_aware_one_with_the_same_settings(tmp_path):
    plain = EarlyStopping(monitor="val_loss", min_delta=0.25, patience=1, mode="min", check_on_train_epoch_end=False)
    fts = FinetuningScheduler(TWO_PHASES)
    run = trainer(tmp_path, [fts, plain], max_epochs=4)
    run.fit(TinyModule(val_targets_shift=5.0))
    (stopper,) = [cb for cb in run.callbacks if isinstance(cb, EarlyStopping)]
    assert type(stopper) is PhaseEarlyStopping and stopper is fts._es
    assert (stopper.monitor, stopper.patience, stopper.mode) == ("val_loss", 1, "min")
    assert stopper.min_delta == plain.min_delta == -0.25, "Lightning stores min_delta with the comparison's sign"
    assert stopper._check_on_train_epoch_end is False
    assert fts.curr_depth == 1, "patience ended phase 0 instead of the whole run"


def test_the_copy_keeps_every_constructor_setting_of_early_stopping():
    plain = EarlyStopping(
        monitor="val_acc",
        min_delta=0.1,
        patience=7,
        verbose=True,
        mode="max",
        strict=False,
        check_finite=False,
        stopping_threshold=0.99,
        divergence_threshold=0.1,
        check_on_train_epoch_end=True,
    )
    copy = phase_aware_copy(plain)
    settings = (
        "monitor",
        "min_delta",
        "patience",
        "verbose",
        "mode",
        "strict",
        "check_finite",
        "stopping_threshold",
        "divergence_threshold",
        "_check_on_train_epoch_end",
    )
    assert {k: getattr(copy, k) for k in settings} == {k: getattr(plain, k) for k in settings}


def test_with_epoch_transitions_only_an_early_stopping_is_removed(tmp_path, caplog):
    raw = {0: {"params": ["net.6.*"], "max_transition_epoch": 1}, 1: {"params": ["net.4.*", "net.2.*", "net.0.*"]}}
    fts = FinetuningScheduler(raw, epoch_transitions_only=True)
    run = trainer(tmp_path, [fts, PhaseEarlyStopping(patience=1, min_delta=1e9)], max_epochs=4)
    run.fit(TinyModule())
    assert not [cb for cb in run.callbacks if isinstance(cb, EarlyStopping)]
    assert run.current_epoch == 4, "no early stopping ended the run"
    assert [t["epoch"] for t in fts.transitions] == [1]


def test_missing_early_stopping_and_checkpoint_are_added_and_set_up(tmp_path):
    fts = FinetuningScheduler(TWO_PHASES)
    run = trainer(tmp_path, [fts], max_epochs=2)
    run.fit(TinyModule())
    stoppers = [cb for cb in run.callbacks if isinstance(cb, PhaseEarlyStopping)]
    checkpoints = [cb for cb in run.callbacks if isinstance(cb, PhaseCheckpoint)]
    assert len(stoppers) == 1 and len(checkpoints) == 1
    assert checkpoints[0].monitor == "val_loss" and checkpoints[0].best_model_path, "it saved, so it was set up"


def test_a_monitoring_model_checkpoint_is_used_as_it_is(tmp_path):
    user_checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=2, filename="best-{epoch}")
    fts = FinetuningScheduler(TWO_PHASES)
    run = trainer(tmp_path, [fts, user_checkpoint], max_epochs=2)
    run.fit(TinyModule())
    assert fts._ckpt is user_checkpoint
    assert not [cb for cb in run.callbacks if isinstance(cb, PhaseCheckpoint)]


FTS_STYLE_CLI_CONFIG = """
seed_everything: 0
trainer:
  max_epochs: 4
  accelerator: cpu
  devices: 1
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  callbacks:
  - class_path: ftexp.FinetuningScheduler
    init_args:
      ft_schedule: {schedule}
      max_depth: 1
      reinit_lr_cfg: null
  - class_path: ftexp.FTSEarlyStopping
    init_args:
      monitor: val_loss
      min_delta: 0.001
      patience: 1
  - class_path: ftexp.FTSCheckpoint
    init_args:
      save_top_k: 1
      monitor: val_loss
      verbose: true
model:
  lr: 0.01
  val_targets_shift: 5.0
"""


def test_a_lightning_cli_config_written_for_fts_runs_with_ftexp_class_paths(tmp_path):
    """The FTS examples configure the callbacks under trainer.callbacks with class_path/init_args; only the
    package in each class_path changes."""
    pytest.importorskip("jsonargparse", reason="LightningCLI needs jsonargparse: pip install -e '.[test]'")
    from pytorch_lightning.cli import LightningCLI

    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(yaml.safe_dump(TWO_PHASES))
    config = tmp_path / "fts_config.yaml"
    config.write_text(FTS_STYLE_CLI_CONFIG.format(schedule=schedule))
    cli = LightningCLI(
        TinyModule,
        args=["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path}"],
        save_config_kwargs={"overwrite": True},
    )
    (fts,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, ftexp.FinetuningScheduler)]
    assert fts.curr_depth == 1
    assert [t["depth"] for t in fts.transitions] == [1]
    assert isinstance(cli.trainer.early_stopping_callback, PhaseEarlyStopping)
