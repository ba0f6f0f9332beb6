"""The lr_reinit, strategy, hardware and debug groups: what each option sets, and that every schedule option runs
end to end in-process under debug=fast_dev_run."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy

from ftexp.config import CONFIG_DIR
from ftexp.train import build, run
from tests.helpers import compose_config

SCHEDULES = sorted(path.stem for path in (CONFIG_DIR / "schedule").glob("*.yaml"))


# ------------------------------------------------------------------ lr_reinit
def test_lr_reinit_explicit_keeps_the_schedule_s_new_lr_scheduler_and_none_drops_it(tmp_path):
    explicit = build(compose_config(tmp_path, "schedule=explicit", "lr_reinit=explicit")).fts
    none = build(compose_config(tmp_path, "schedule=explicit", "lr_reinit=none")).fts

    assert explicit.user_schedule[2].new_lr_scheduler is not None
    assert none.user_schedule[2].new_lr_scheduler is None
    assert [p.params for p in none.user_schedule.phases] == [p.params for p in explicit.user_schedule.phases]
    assert explicit.reinit_lr is None and none.reinit_lr is None


def test_lr_reinit_implicit_gives_the_generated_schedule_a_new_scheduler_at_every_transition(tmp_path):
    fts = build(compose_config(tmp_path, "schedule=implicit", "lr_reinit=implicit")).fts
    assert fts.user_schedule is None, "generated from the model"
    assert fts.reinit_lr.lr_scheduler_init.class_path == "torch.optim.lr_scheduler.CosineAnnealingLR"


@pytest.mark.parametrize("schedule", ["explicit", "freeze_unfreeze"])
def test_lr_reinit_implicit_gives_every_later_phase_of_an_explicit_schedule_the_same_new_scheduler(tmp_path, schedule):
    fts = build(compose_config(tmp_path, f"schedule={schedule}", "lr_reinit=implicit")).fts
    reference = build(compose_config(tmp_path, f"schedule={schedule}", "lr_reinit=explicit")).fts

    phases = fts.user_schedule.phases
    assert [p.params for p in phases] == [p.params for p in reference.user_schedule.phases]
    assert phases[0].new_lr_scheduler is None
    assert {p.new_lr_scheduler.lr_scheduler_init.class_path for p in phases[1:]} == {
        "torch.optim.lr_scheduler.CosineAnnealingLR"
    }
    assert {p.new_lr_scheduler.lr_scheduler_init.init_args["T_max"] for p in phases[1:]} == {4}, "lr_reinit's own"
    assert fts.reinit_lr is None, "carried by the schedule, as FinetuningScheduler accepts for explicit schedules"


# ------------------------------------------------------------------ schedule
def test_implicit_naive_is_implicit_with_fts_s_naive_generator_stopped_after_phase_3(tmp_path):
    implicit = OmegaConf.to_container(compose_config(tmp_path, "schedule=implicit").schedule)
    naive = OmegaConf.to_container(compose_config(tmp_path, "schedule=implicit_naive").schedule)
    own = {"implicit_mode": "naive", "max_depth": 3}
    assert naive == {
        **implicit,
        "name": "implicit_naive",
        "callbacks": {**implicit["callbacks"], "fts": {**implicit["callbacks"]["fts"], **own}},
    }, "everything else (stopping, checkpoints, lr) is implicit's"

    fts = build(compose_config(tmp_path, "schedule=implicit_naive")).fts
    assert (fts.implicit_mode, fts.max_depth, fts.max_phases) == ("naive", 3, None), "max_phases null: no merging"


# ------------------------------------------------------------------ early stopping
@pytest.mark.parametrize("schedule", ["nofts", "implicit", "implicit_naive", "explicit", "freeze"])
def test_one_early_stopping_min_delta_applies_to_every_scenario_that_stops_early(tmp_path, schedule):
    trainer = build(compose_config(tmp_path, f"schedule={schedule}", "early_stopping_min_delta=0.05")).trainer
    (stopper,) = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    assert abs(stopper.min_delta) == 0.05  # Lightning stores it signed by the mode


# ------------------------------------------------------------------ strategy and hardware
def test_the_strategy_options_set_the_trainer_strategy(tmp_path):
    assert isinstance(build(compose_config(tmp_path, "strategy=auto")).trainer.strategy, SingleDeviceStrategy)
    for option in ("ddp", "ddp_spawn"):
        cfg = compose_config(tmp_path, f"strategy={option}", "hardware=cpu")
        assert cfg.trainer.strategy == option
        assert isinstance(build(cfg).trainer.strategy, DDPStrategy)


def test_hardware_cpu_trains_on_one_cpu_process(tmp_path):
    trainer = build(compose_config(tmp_path, "hardware=cpu")).trainer
    assert isinstance(trainer.accelerator, CPUAccelerator)
    assert (trainer.num_devices, trainer.num_nodes) == (1, 1)


def test_hardware_gpus_runs_one_ddp_process_per_gpu(tmp_path):
    cfg = compose_config(tmp_path, "hardware=gpus", "hardware.devices=4")
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy) == ("gpu", 4, "ddp")
    cfg = compose_config(tmp_path, "hardware=gpus", "strategy=ddp_spawn")
    assert cfg.trainer.strategy == "ddp_spawn", "the command line wins over the option's default strategy"


def test_hardware_slurm_sets_the_trainer_and_the_submitit_launcher_from_the_same_values(tmp_path):
    cfg = compose_config(
        tmp_path,
        "hardware=slurm",
        "hardware.partition=gpu",
        "hardware.nodes=2",
        "hardware.gpus_per_node=4",
        "hardware.mem_gb=64",
        hydra=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 2, 4, 4)
    assert (launcher.cpus_per_task, launcher.mem_gb, launcher.timeout_min, launcher.array_parallelism) == (
        8,
        64,
        240,
        16,
    )
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.num_nodes) == ("gpu", 4, 2)
    assert cfg.trainer.strategy == "ddp"


# ------------------------------------------------------------------ debug
def test_the_debug_options_shrink_the_run(tmp_path):
    assert compose_config(tmp_path, "debug=fast_dev_run").trainer.fast_dev_run is True
    limit = compose_config(tmp_path, "debug=limit").trainer
    assert (limit.max_epochs, limit.limit_train_batches, limit.limit_val_batches, limit.limit_test_batches) == (
        8,
        4,
        2,
        2,
    )
    overfit = compose_config(tmp_path, "debug=overfit").trainer
    assert overfit.overfit_batches == 2
    assert compose_config(tmp_path, "debug=limit", "trainer.max_epochs=2").trainer.max_epochs == 2


@pytest.mark.filterwarnings("ignore:ftexp. (phase|39 parameters):UserWarning")  # one epoch; freeze freezes
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_option_runs_one_batch_under_fast_dev_run(tmp_path, schedule):
    result = run(compose_config(tmp_path, f"schedule={schedule}", "debug=fast_dev_run", "data.synthetic.n_train=64"))

    assert (result["scenario"], result["status"]) == (schedule, "completed")
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    assert not (tmp_path / "checkpoints").exists(), "fast_dev_run writes no checkpoint"
