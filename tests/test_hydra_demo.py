"""The Hydra experiment layer: every config option composes and builds, and `python -m ftexp` runs end to end.

Compose-API tests build the objects in-process (no training). The `slow` tests train the tiny model on the synthetic
task for a few short epochs, in a subprocess exactly as a user runs it, or in-process through `ftexp.train.run`.
The pretrained model, SuperGLUE data and experiment options are built in tests/test_models_configs.py and
tests/test_data_configs.py; the GPU hardware options build only where there are GPUs (else they compose and
validate).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from hydra.errors import MissingConfigException
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor
from pytorch_lightning.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

from ftexp import FinetuningScheduler, PhaseCheckpoint, PhaseEarlyStopping
from ftexp.config import CONFIG_DIR, ConfigError, validate_config
from ftexp.data import PairClassificationDataModule
from ftexp.models import SequenceClassifier
from ftexp.schedule import load_schedule, resolve_schedule
from ftexp.trackers import missing_modules
from ftexp.train import build, run
from tests.helpers import compose_config, python_m_ftexp, short_demo

GROUPS = ("model", "data", "schedule", "lr_reinit", "trainer", "logger", "experiment", "strategy", "hardware", "debug")
# every option of every group: a new option is tested as soon as it exists (the pretrained models, SuperGLUE data
# and their experiments need local stand-ins: tests/test_models_configs.py, tests/test_data_configs.py)
OPTIONS = sorted((group, path.stem) for group in GROUPS for path in (CONFIG_DIR / group).glob("*.yaml"))
OFFLINE_OPTIONS = [
    (group, option)
    for group, option in OPTIONS
    if (group, option) in {("model", "tiny"), ("data", "synthetic"), ("data", "transfer"), ("experiment", "demo")}
    or group not in ("model", "data", "experiment")
]
# options that only work together with another choice
COMPANIONS = {("lr_reinit", "implicit"): ["schedule=implicit"]}
GPUS_NEEDED = {"gpu": 1, "gpus": 2, "local_gpus": 1, "slurm": 1}

# a few short epochs: 4 training and 2 validation batches of a 256-example task
QUICK = short_demo(8)


def test_the_config_tree_has_every_group_of_this_slice():
    assert {group for group, _ in OPTIONS} == set(GROUPS)
    assert ("experiment", "demo") in OPTIONS
    assert {option for group, option in OPTIONS if group == "schedule"} == {
        "nofts",
        "implicit",
        "implicit_naive",
        "explicit",
        "freeze",
        "freeze_unfreeze",
        "unfreeze_milestones",
        "backbone",
        "implicit_discriminative",
        "lp_ft",
        "ulmfit",
        "llrd",
        "lora",
        "lora_then_thaw",
    }
    assert {option for group, option in OPTIONS if group == "lr_reinit"} == {"none", "explicit", "implicit"}
    assert {option for group, option in OPTIONS if group == "strategy"} == {"auto", "ddp", "ddp_spawn"}
    assert {option for group, option in OPTIONS if group == "hardware"} == {
        "cpu",
        "gpu",
        "gpus",
        "local_gpus",
        "slurm",
        "slurm_cpu",
    }
    assert {option for group, option in OPTIONS if group == "debug"} == {"fast_dev_run", "limit", "overfit"}


@pytest.mark.parametrize(("group", "option"), OFFLINE_OPTIONS)
def test_every_option_of_every_group_composes_and_builds_with_the_tiny_model(tmp_path, group, option, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # logger=mlflow: its local store, in tmp_path
    cfg = compose_config(tmp_path, f"{group}={option}", *COMPANIONS.get((group, option), []))
    if group == "logger" and missing_modules(str(cfg.logger._target_)):
        pytest.skip(f"logger={option} needs {missing_modules(str(cfg.logger._target_))}: pip install '.[trackers]'")
    validate_config(cfg)
    if group == "hardware" and torch.cuda.device_count() < GPUS_NEEDED.get(option, 0):
        assert cfg.trainer.accelerator == "gpu"
        pytest.skip(f"hardware={option} composes and validates; building its Trainer needs GPUs")
    objects = build(cfg)

    assert isinstance(objects.datamodule, PairClassificationDataModule)
    assert isinstance(objects.model, SequenceClassifier)
    assert objects.model.model.get_input_embeddings().num_embeddings == len(objects.datamodule.tokenizer)
    loggers = {"csv": CSVLogger, "mlflow": MLFlowLogger, "wandb": WandbLogger}
    expected_logger = loggers.get(option, TensorBoardLogger) if group == "logger" else TensorBoardLogger
    assert isinstance(objects.trainer.logger, expected_logger) or cfg.trainer.get("fast_dev_run")
    assert Path(cfg.logger.get("save_dir") or cfg.logger.run_dir) == tmp_path
    assert any(isinstance(cb, LearningRateMonitor) for cb in objects.trainer.callbacks)
    assert objects.checkpoint is not None and Path(objects.checkpoint.dirpath) == tmp_path / "checkpoints"


def test_without_a_logger_the_lr_monitor_is_left_out(tmp_path):
    trainer = build(compose_config(tmp_path, "~logger")).trainer
    assert trainer.logger is None
    assert not any(isinstance(cb, LearningRateMonitor) for cb in trainer.callbacks)


def test_nofts_trains_everything_from_the_start_with_plain_early_stopping(tmp_path):
    callbacks = build(compose_config(tmp_path, "schedule=nofts")).trainer.callbacks
    assert not any(isinstance(cb, FinetuningScheduler) for cb in callbacks)
    stoppers = [cb for cb in callbacks if isinstance(cb, EarlyStopping)]
    assert len(stoppers) == 1 and not isinstance(stoppers[0], PhaseEarlyStopping)


@pytest.mark.parametrize(
    "option", ["implicit", "explicit", "freeze", "freeze_unfreeze", "unfreeze_milestones", "backbone"]
)
def test_scheduled_options_pair_the_scheduler_with_phase_aware_stopping_and_checkpointing(tmp_path, option):
    objects = build(compose_config(tmp_path, f"schedule={option}"))
    callbacks = objects.trainer.callbacks
    assert objects.fts is not None
    # the presets with several phases end them at set epochs, as Flash and Lightning do: no early stopping
    by_epoch = option in ("freeze_unfreeze", "unfreeze_milestones", "backbone")
    assert objects.fts.epoch_transitions_only == by_epoch
    assert sum(isinstance(cb, PhaseEarlyStopping) for cb in callbacks) == (0 if by_epoch else 1)
    assert isinstance(objects.checkpoint, PhaseCheckpoint)
    assert Path(objects.fts.log_dir) == tmp_path, "the resolved schedule is written to the run dir"


def test_the_shipped_explicit_schedule_thaws_every_tiny_model_parameter_once_in_3_phases(tmp_path):
    cfg = compose_config(tmp_path, "schedule=explicit")
    path = Path(cfg.schedule.callbacks.fts.ft_schedule)
    assert path.is_file(), "the schedule ships inside the package, found from any working directory"
    model = build(cfg).model

    schedule, never_thawed = resolve_schedule(load_schedule(path), [name for name, _ in model.named_parameters()])

    assert len(schedule) == 3
    assert never_thawed == []
    assert schedule[0].params == (
        "model.classifier.weight",
        "model.classifier.bias",
        "model.bert.pooler.dense.weight",
        "model.bert.pooler.dense.bias",
    )
    assert schedule[2].new_lr_scheduler is not None, "phase 2 reinitializes the LR scheduler"


def test_an_unknown_group_option_fails_at_composition_listing_the_available_ones(tmp_path):
    with pytest.raises(MissingConfigException, match=r"schedule/gradual(.|\n)*explicit(.|\n)*implicit(.|\n)*nofts"):
        compose_config(tmp_path, "schedule=gradual")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_before_training_still_leaves_a_result_file_saying_why(tmp_path):
    cfg = compose_config(tmp_path, "schedule=explicit", f"schedule.callbacks.fts.ft_schedule={tmp_path / 'none.yaml'}")
    with pytest.raises(ConfigError, match=r"schedule\.callbacks\.fts\.ft_schedule: schedule file does not exist"):
        run(cfg)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed"
    assert "none.yaml" in result["error"] and "schedule file does not exist" in result["error"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["result.json"], "nothing else is written"


def test_a_failed_start_in_an_earlier_run_dir_leaves_its_result_file_alone(tmp_path):
    earlier = tmp_path / "result.json"
    earlier.write_text('{"status": "completed"}\n')
    cfg = compose_config(tmp_path, "schedule=explicit", f"schedule.callbacks.fts.ft_schedule={tmp_path / 'none.yaml'}")
    with pytest.raises(ConfigError):
        run(cfg)
    assert earlier.read_text() == '{"status": "completed"}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["result.json"]


@pytest.mark.slow
@pytest.mark.parametrize("option", ["nofts", "implicit", "explicit"])
def test_python_m_ftexp_runs_each_schedule_option_and_leaves_its_files_in_the_run_dir(tmp_path, option):
    run_dir = tmp_path / "run"
    done = python_m_ftexp(tmp_path, f"schedule={option}", f"hydra.run.dir={run_dir}", *QUICK)
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert "Tip: For seamless cloud logging" not in console and "`srun` command is available" not in console
    assert "outputs:" in console and "  metrics " in console
    if option != "nofts":
        assert "  phases " in console

    result = json.loads((run_dir / "result.json").read_text())
    assert (result["scenario"], result["seed"], result["status"]) == (option, 42, "completed")
    assert result["epochs_run"] == len(result["history"]) <= 8
    assert {"val_loss", "val_acc", "train_loss"} <= set(result["final"])
    assert result["best"]["val_loss"] == min(row["val_loss"] for row in result["history"])
    assert {"test_loss", "test_acc"} <= set(result["test"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "config_tree.log").is_file()
    assert not (tmp_path / "outputs").exists(), "nothing is written outside the run dir"

    schedule_file = run_dir / "SequenceClassifier_ft_schedule.yaml"
    total = result["total_params"]
    if option == "nofts":
        assert not schedule_file.exists()
        assert result["trainable_params_per_phase"] == {"0": total}
        return
    resolved = yaml.safe_load(schedule_file.read_text())
    assert len(resolved) == {"implicit": 5, "explicit": 3}[option]
    per_phase = list(result["trainable_params_per_phase"].values())
    assert per_phase == sorted(per_phase) and per_phase[-1] == total
    depths = [phase["depth"] for phase in result["phases_run"]]
    assert depths[0] == 0 and depths == list(range(len(depths)))
    if option == "explicit":
        # phase 0 ends by epoch 3 at the latest and phase 1 by epoch 6, so 8 epochs reach phase 2, whose new
        # scheduler restarts every group at its initial lr: 1e-3 (phase 0, decay and no-decay), 5e-4 (phases 1, 2)
        assert depths == [0, 1, 2]
        assert result["transitions"][-1]["lrs"] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4])


@pytest.mark.slow
def test_an_unknown_override_fails_with_a_clear_message_and_touches_nothing(tmp_path):
    done = python_m_ftexp(tmp_path, "trainer.max_epochz=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode != 0
    assert "unknown key trainer.max_epochz, did you mean max_epochs?" in done.stderr
    assert "+trainer.max_epochz" not in done.stderr, "not Hydra's advice to add the key"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_second_run_in_the_same_run_dir_resumes_from_last_ckpt(tmp_path):
    threads = torch.get_num_threads()  # run() applies cpu_threads to this process
    try:
        first = run(compose_config(tmp_path, *QUICK, "trainer.max_epochs=2", "test=false"))
        second = run(compose_config(tmp_path, *QUICK, "trainer.max_epochs=4", "test=false"))
    finally:
        torch.set_num_threads(threads)

    assert first["resumed_from"] is None and first["epochs_run"] == 2
    assert second["resumed_from"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert second["epochs_run"] == 4
    assert [row["epoch"] for row in second["history"]] == [0, 1, 2, 3], "one run: the history travels in last.ckpt"
    assert [(a["resumed_from"], a["start_epoch"], a["end_epoch"]) for a in second["attempts"]] == [
        (None, 0, 2),
        (second["resumed_from"], 2, 4),
    ]
    assert second["wall_time_s"] == pytest.approx(sum(a["wall_time_s"] for a in second["attempts"]), abs=0.02)
    assert json.loads((tmp_path / "result.json").read_text())["resumed_from"] == second["resumed_from"]
