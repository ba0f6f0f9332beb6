"""The last lines of a run: how far the schedule got (plainly, when it stopped short) and the metrics that matter."""

from __future__ import annotations

from ftexp.record import BestEpoch, RunRecord, TestResult, TransitionRecord
from ftexp.train import metrics_line, phases_line


def test_a_run_that_never_left_phase_0_says_so():
    record = RunRecord(final_depth=3, reached_depth=0, epochs_run=14, transitions=[])
    line = phases_line(record)
    assert line is not None and line.startswith("ended in phase 0 of 3 after 14 epochs: no transition since epoch 0")


def test_a_run_that_stopped_in_a_middle_phase_names_its_last_transition():
    record = RunRecord(final_depth=3, reached_depth=1, epochs_run=9, transitions=[TransitionRecord(depth=1, epoch=4)])
    assert phases_line(record).startswith("ended in phase 1 of 3 after 9 epochs: no transition since epoch 4")


def test_a_complete_schedule_and_an_unscheduled_run():
    assert phases_line(RunRecord(final_depth=2, reached_depth=2)) == "reached the final phase, 2 (phases 0..2)"
    assert phases_line(RunRecord()) is None, "nofts has no phases to report"


def test_the_metrics_line_shows_the_best_monitored_value_and_the_test_metrics():
    record = RunRecord(
        best=BestEpoch(epoch=4, metrics={"val_loss": 0.62731, "val_acc": 0.642}, monitor="val_loss", mode="min"),
        test=TestResult(metrics={"test_loss": 0.64234, "test_acc": 0.614}),
    )
    assert metrics_line(record) == "best val_loss 0.6273 (epoch 4), test_loss 0.6423, test_acc 0.614"
    assert metrics_line(RunRecord()) is None
