"""What a real run records about its learning rates and costs (ftexp/results.py), and how the sweep reader reads
them (ftexp/sweeps/curves.py): the demo's explicit schedule, whose phase 2 replaces the LR scheduler with a new one
named ``phase2_cosine``, trained in-process for 8 short epochs (phase 1 begins by epoch 3, phase 2 by epoch 6)."""

from __future__ import annotations

import pytest

from ftexp.record import RunRecord
from ftexp.sweeps.curves import job_curves
from ftexp.sweeps.runs import load_job
from ftexp.train import run
from tests.helpers import compose_config, short_demo

pytestmark = pytest.mark.slow

QUICK = ["schedule=explicit", *short_demo(8), "test=false"]


@pytest.fixture(scope="module")
def reinit_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reinit_run")
    run(compose_config(run_dir, *QUICK))
    record = RunRecord.read(run_dir / "result.json")
    assert record.reached_depth == 2, "the run must reach the phase that replaces the LR scheduler"
    return run_dir, record


def lr_names(row):
    return sorted(name for name in row.metrics if name.startswith(("lr-", "phase2_cosine/")))


def test_after_a_phase_replaced_the_lr_scheduler_the_history_holds_only_the_new_scheduler_s_lrs(reinit_run):
    _, record = reinit_run
    phase2_start = record.transitions[-1].epoch
    before, after = record.history[phase2_start - 1], record.history[phase2_start]
    assert lr_names(before) == ["lr-AdamW/pg1", "lr-AdamW/pg2", "lr-AdamW/pg3", "lr-AdamW/pg4"]
    assert lr_names(after) == [f"phase2_cosine/pg{group}" for group in range(1, 7)]
    assert all(lr_names(row) == lr_names(after) for row in record.history[phase2_start:])
    assert lr_names(record.final) == lr_names(after)


def test_the_record_says_which_phase_added_each_parameter_group_and_what_it_holds(reinit_run):
    _, record = reinit_run
    groups = record.param_groups
    assert [(group.phase, group.weight_decay) for group in groups] == [
        (0, 0.01),
        (0, 0.0),
        (1, 0.01),
        (1, 0.0),
        (2, 0.01),
        (2, 0.0),
    ]
    assert groups[0].modules == groups[1].modules == ["model.bert.pooler", "model.classifier"]
    assert groups[2].modules == groups[3].modules == ["model.bert.encoder.layer.1"]
    assert groups[4].modules == ["model.bert.encoder.layer.0", "model.bert.embeddings"]
    tensors = sum(group.tensors for group in groups)
    assert tensors == 41, "every tensor of the model is in exactly one group after the last phase"
    assert record.transitions[-1].lrs is not None and len(record.transitions[-1].lrs) == len(groups)


def test_the_record_has_the_cpu_time_the_run_used_summed_over_its_attempts(reinit_run):
    _, record = reinit_run
    [attempt] = record.attempts
    assert record.cpu_time_s == attempt.cpu_time_s and record.cpu_time_s > 0


def test_the_sweep_reader_keeps_one_lr_series_per_group_across_the_scheduler_replacement(reinit_run):
    run_dir, record = reinit_run
    curves = job_curves(load_job(run_dir))
    assert curves.source == "tensorboard"
    assert {"lr-AdamW/pg1", "phase2_cosine/pg1"} <= set(curves.lr_tags())  # the names TensorBoard holds
    rates = curves.learning_rates()
    assert list(rates) == [f"pg{group}" for group in range(1, 7)]
    epochs = list(range(record.epochs_run))
    phase1, phase2 = (transition.epoch for transition in record.transitions)
    assert [epoch for epoch, _ in rates["pg1"]] == epochs
    assert [epoch for epoch, _ in rates["pg3"]] == epochs[phase1:]
    assert [epoch for epoch, _ in rates["pg5"]] == epochs[phase2:]
    # the new scheduler restarts phase 0's groups at their initial lr
    assert rates["pg1"][phase2][1] == pytest.approx(1e-3)
