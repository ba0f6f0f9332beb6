"""Per-epoch curves from TensorBoard event files, or from result.json's history (ftexp/sweeps/curves.py)."""

from __future__ import annotations

import logging

import pytest
from torch.utils.tensorboard import SummaryWriter

from ftexp.sweeps.curves import Curves, group_index, is_lr_tag, job_curves, phase_starts
from ftexp.sweeps.runs import load_jobs
from tests.sweeps.fake_sweeps import result, write_job

STEPS_PER_EPOCH = 4


def log_like_lightning(log_dir, epochs, running_epoch=False):
    """What TensorBoardLogger receives with LearningRateMonitor(logging_interval="epoch"): the lr at an epoch's
    first step, the epoch's metrics (each with an ``epoch`` scalar) at its last step."""
    writer = SummaryWriter(str(log_dir))
    for epoch, (lr, val_loss, depth) in enumerate(epochs):
        first, last = epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH - 1
        writer.add_scalar("lr-AdamW/pg1", lr, first)
        for tag, value in (("val_loss", val_loss), ("finetuning_depth", depth), ("epoch", epoch)):
            writer.add_scalar(tag, value, last)
    if running_epoch:
        writer.add_scalar("lr-AdamW/pg1", 0.5, len(epochs) * STEPS_PER_EPOCH)
    writer.close()


@pytest.fixture
def logged_job(tmp_path):
    job_dir = write_job(tmp_path, "0_explicit", ["schedule=explicit"], result(transitions=[]), num=0)
    log_like_lightning(job_dir / "tensorboard", [(1.0, 0.9, 0), (0.9, 0.8, 0), (0.8, 0.7, 1)], running_epoch=True)
    return load_jobs(tmp_path)[0]


def test_tensorboard_steps_become_epochs_for_metrics_and_epoch_start_learning_rates(logged_job):
    curves = job_curves(logged_job)
    assert curves.source == "tensorboard"
    assert curves.scalars["val_loss"] == [(0, pytest.approx(0.9)), (1, pytest.approx(0.8)), (2, pytest.approx(0.7))]
    # the last lr was logged at the start of epoch 3, which has not ended yet
    assert [epoch for epoch, _ in curves.scalars["lr-AdamW/pg1"]] == [0, 1, 2, 3]
    assert "epoch" not in curves.scalars
    assert curves.lr_tags() == ["lr-AdamW/pg1"]


def test_phase_starts_come_from_the_logged_depth_when_result_json_has_no_transitions(logged_job):
    assert phase_starts(logged_job, job_curves(logged_job)) == {1: 2}


def test_phase_starts_join_result_json_transitions_and_the_depth_curve(tmp_path):
    payload = result(transitions=[{"depth": 2, "epoch": 6}])  # a resumed attempt knows only its own transition
    write_job(tmp_path, "0", ["schedule=explicit"], payload)
    [job] = load_jobs(tmp_path)
    depth = Curves({"finetuning_depth": [(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)]})
    assert phase_starts(job, depth) == {1: 2, 2: 6}


def log_a_scheduler_replaced_at_epoch_2(log_dir):
    """LearningRateMonitor's tags when phase 1 (epoch 1) adds groups 3-4 and phase 2 (epoch 2) replaces the LR
    scheduler with one named phase2_cosine and adds groups 5-6, written in two event files as a fit and a test do."""
    writer = SummaryWriter(str(log_dir))
    lrs_by_epoch = [[1e-3, 1e-3], [9e-4, 9e-4, 5e-4, 5e-4], [1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4]]
    for epoch, lrs in enumerate(lrs_by_epoch):
        name = "phase2_cosine" if epoch == 2 else "lr-AdamW"
        for group, lr in enumerate(lrs, start=1):
            writer.add_scalar(f"{name}/pg{group}", lr, epoch * STEPS_PER_EPOCH)
        writer.add_scalar("epoch", epoch, (epoch + 1) * STEPS_PER_EPOCH - 1)
    writer.close()
    SummaryWriter(str(log_dir)).close()


def test_a_group_keeps_one_lr_series_when_a_phase_replaces_the_lr_scheduler(tmp_path):
    job_dir = write_job(tmp_path, "0_explicit", ["schedule=explicit"], result())
    log_a_scheduler_replaced_at_epoch_2(job_dir / "tensorboard")
    curves = job_curves(load_jobs(tmp_path)[0])
    assert curves.lr_tags() and "phase2_cosine/pg1" in curves.lr_tags()  # both names were logged
    rates = curves.learning_rates()
    assert list(rates) == ["pg1", "pg2", "pg3", "pg4", "pg5", "pg6"]
    assert rates["pg1"] == [(0, pytest.approx(1e-3)), (1, pytest.approx(9e-4)), (2, pytest.approx(1e-3))]
    assert [epoch for epoch, _ in rates["pg3"]] == [1, 2]
    assert [epoch for epoch, _ in rates["pg6"]] == [2]


def test_a_history_that_kept_the_replaced_scheduler_s_last_lrs_reads_as_the_new_scheduler_s(tmp_path):
    history = [  # result.json files written before the history dropped a replaced scheduler's lrs
        {"epoch": 0, "lr-AdamW/pg1": 1e-3},
        {"epoch": 1, "lr-AdamW/pg1": 9e-4},
        {"epoch": 2, "lr-AdamW/pg1": 9e-4, "phase2_cosine/pg1": 1e-3},
        {"epoch": 3, "lr-AdamW/pg1": 9e-4, "phase2_cosine/pg1": 8e-4},
    ]
    write_job(tmp_path, "0", ["schedule=explicit"], result(history=history))
    rates = job_curves(load_jobs(tmp_path)[0]).learning_rates()
    assert rates == {"pg1": [(0, 1e-3), (1, 9e-4), (2, 1e-3), (3, 8e-4)]}


def test_the_lr_of_an_optimizer_with_one_group_continues_as_pg1_when_a_phase_adds_groups(tmp_path):
    history = [{"epoch": 0, "lr-AdamW": 1e-3}, {"epoch": 1, "lr-AdamW/pg1": 9e-4, "lr-AdamW/pg2": 5e-4}]
    write_job(tmp_path, "0", ["schedule=explicit"], result(history=history))
    rates = job_curves(load_jobs(tmp_path)[0]).learning_rates()
    assert rates == {"pg1": [(0, 1e-3), (1, 9e-4)], "pg2": [(1, 5e-4)]}
    assert (group_index("pg1"), group_index("pg12"), group_index("head")) == (0, 11, None)


def test_reading_event_files_shows_no_directory_watcher_lines_and_leaves_tensorboard_s_logger_as_it_was(
    tmp_path, caplog
):
    job_dir = write_job(tmp_path, "0_explicit", ["schedule=explicit"], result())
    log_a_scheduler_replaced_at_epoch_2(job_dir / "tensorboard")  # two event files: the reader advances once
    tensorboard_logger = logging.getLogger("tensorboard")
    filters = list(tensorboard_logger.filters)
    with caplog.at_level(logging.DEBUG):
        job_curves(load_jobs(tmp_path)[0])
        tensorboard_logger.warning("a warning of TensorBoard's")
    assert [record.getMessage() for record in caplog.records if record.name == "tensorboard"] == [
        "a warning of TensorBoard's"
    ]
    assert tensorboard_logger.filters == filters and tensorboard_logger.level == logging.NOTSET


def test_without_event_files_the_curves_come_from_result_json_history(tmp_path):
    history = [
        {"epoch": 0, "val_loss": 0.9, "lr-AdamW/pg1": 1e-3, "finetuning_depth": 0.0},
        {"epoch": 1, "val_loss": 0.8, "lr-AdamW/pg1": 9e-4, "finetuning_depth": 1.0},
    ]
    write_job(tmp_path, "0", ["schedule=explicit"], result(history=history))
    curves = job_curves(load_jobs(tmp_path)[0])
    assert curves.source == "result.json"
    assert curves.scalars["val_loss"] == [(0, 0.9), (1, 0.8)]
    assert curves.lr_tags() == ["lr-AdamW/pg1"]


def test_a_job_with_neither_has_no_curves(tmp_path):
    write_job(tmp_path, "0", ["schedule=explicit"])
    assert job_curves(load_jobs(tmp_path)[0]) == Curves(scalars={}, source=None)


@pytest.mark.parametrize(
    "tag", ["lr-AdamW", "lr-AdamW/pg1", "lr-SGD/pg12", "lr-AdamW/head", "phase2_cosine/pg1", "reinit_lr/pg3"]
)
def test_learning_rate_monitor_names_are_learning_rates(tag):
    assert is_lr_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "val_loss",
        "finetuning_depth",
        "lr-AdamW-momentum",
        "lr-AdamW/pg1-momentum",
        "lr-AdamW/pg1-weight_decay",
        "train/loss",
        "test_acc",
    ],
)
def test_other_scalars_are_not_learning_rates(tag):
    assert not is_lr_tag(tag)
