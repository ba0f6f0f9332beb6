"""Per-epoch curves from TensorBoard event files, or from result.json's history (ftexp/sweeps/curves.py)."""

from __future__ import annotations

import pytest
from torch.utils.tensorboard import SummaryWriter

from ftexp.sweeps.curves import Curves, is_lr_tag, job_curves, phase_starts
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
    assert phase_starts(logged_job, job_curves(logged_job)) == [2]


def test_phase_starts_join_result_json_transitions_and_the_depth_curve(tmp_path):
    payload = result(transitions=[{"depth": 2, "epoch": 6}])  # a resumed attempt knows only its own transition
    write_job(tmp_path, "0", ["schedule=explicit"], payload)
    [job] = load_jobs(tmp_path)
    depth = Curves({"finetuning_depth": [(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)]})
    assert phase_starts(job, depth) == [2, 6]


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
    "tag", ["val_loss", "finetuning_depth", "lr-AdamW-momentum", "lr-AdamW/pg1-momentum", "train/loss", "test_acc"]
)
def test_other_scalars_are_not_learning_rates(tag):
    assert not is_lr_tag(tag)
