"""The run record, result.json (ftexp/record.py): one typed definition that the writer (ftexp.train.run) and the
readers (ftexp.sweeps, the notebook) share, keeping the file's layout to the byte.

tests/result_files/ holds result.json files written by ftexp.train.run before the record was typed (2026-12-03, the
DDP runs the README reports): a completed scheduled run, a run that failed on rank 1, and a ddp_spawn run (no
history, no transitions, no best score).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftexp.record import (
    AttemptRecord,
    BestEpoch,
    EpochRow,
    ParamGroupRecord,
    PhaseStart,
    RecordError,
    RunRecord,
    RunStatus,
    TestResult,
    TransitionRecord,
)

RESULT_FILES = Path(__file__).parent / "result_files"
IDENTITY = ["name", "scenario", "seed", "sweep", "overrides", "status", "resumed_from", "run_dir", "result_file"]


def full_record() -> RunRecord:
    """A record with every part set: a scheduled run that completed in two attempts, then failed on a rank."""
    row = EpochRow(epoch=1, metrics={"val_loss": 0.68, "val_acc": 0.61, "lr-AdamW/pg1": 1e-3})
    return RunRecord(
        name="demo",
        scenario="explicit",
        seed=3,
        sweep="compare_schedules",
        overrides=["schedule=explicit", "seed=3"],
        status=RunStatus.FAILED,
        resumed_from="/runs/0/checkpoints/last.ckpt",
        run_dir="/runs/0",
        result_file="/runs/0/result.json",
        test=TestResult(metrics={"test_loss": 0.7, "test_acc": 0.6}, checkpoint="/runs/0/checkpoints/best.ckpt"),
        error="rank 1: RuntimeError: boom",
        epochs_run=2,
        best=BestEpoch(epoch=1, metrics=dict(row.metrics), monitor="val_loss", mode="min"),
        final=row,
        phases_run=[PhaseStart(depth=0, start_epoch=0), PhaseStart(depth=1, start_epoch=1)],
        transitions=[
            TransitionRecord(
                depth=1,
                epoch=1,
                new_params=4,
                new_weights=1024,
                lrs=[1e-3, 5e-4],
                restored_from_depth=0,
                restore={"source": "memory", "depth": 0, "bytes": 4096},
                seconds=0.004,
            )
        ],
        trainable_params_per_phase={"0": 10, "1": 1034},
        param_groups=[
            ParamGroupRecord(phase=0, weight_decay=0.01, tensors=2, modules=["model.classifier"]),
            ParamGroupRecord(phase=1, weight_decay=0.0, tensors=4, modules=["model.encoder.layer.1"]),
        ],
        final_depth=1,
        reached_depth=1,
        schedule_path="/runs/0/SequenceClassifier_ft_schedule.yaml",
        total_params=1034,
        best_checkpoint="/runs/0/checkpoints/best.ckpt",
        best_score=0.68,
        last_checkpoint="/runs/0/checkpoints/last.ckpt",
        tensorboard_dir="/runs/0/tensorboard/",
        hardware={"accelerator": "cpu", "devices": 2, "num_nodes": 1, "cpu_threads": 1},
        history=[EpochRow(epoch=0, metrics={"val_loss": 0.7}), row],
        rank_errors={"0": "RuntimeError: Connection closed by peer", "1": "RuntimeError: boom"},
        attempts=[
            AttemptRecord("2026-12-03T10:00:00+00:00", None, "41", RunStatus.REQUEUED, 0, 1, 30.0, 55.0),
            AttemptRecord(
                "2026-12-03T10:05:00+00:00", "/runs/0/checkpoints/last.ckpt", "41", RunStatus.FAILED, 1, 2, 12.5, 20.0
            ),
        ],
        wall_time_s=42.5,
        cpu_time_s=75.0,
    )


def test_a_record_comes_back_equal_from_its_json():
    record = full_record()
    assert RunRecord.from_json(record.to_json()) == record
    assert RunRecord.from_json(RunRecord().to_json()) == RunRecord()


def test_the_json_has_the_keys_in_the_order_run_writes_them():
    assert list(full_record().to_dict()) == [
        *IDENTITY,
        *["test", "error", "epochs_run", "best", "final", "phases_run", "transitions", "trainable_params_per_phase"],
        *["param_groups", "final_depth", "reached_depth", "schedule_path", "total_params", "best_checkpoint"],
        *["best_score", "last_checkpoint", "tensorboard_dir", "hardware", "history", "rank_errors", "attempts"],
        *["wall_time_s", "cpu_time_s"],
    ]
    best = full_record().to_dict()["best"]
    assert list(best) == ["monitor", "mode", "epoch", "val_loss", "val_acc", "lr-AdamW/pg1"]


@pytest.mark.parametrize("name", ["ddp_explicit_completed", "ddp_failed_on_rank_1", "ddp_spawn_completed"])
def test_a_result_json_written_before_the_record_was_typed_loads_and_is_written_back_to_the_byte(name):
    text = (RESULT_FILES / f"{name}.json").read_text()
    record = RunRecord.from_json(text)
    assert record.extra == {}, "every key of the file is a field of the record"
    assert record.to_json() == text


def test_a_completed_scheduled_run_reads_as_typed_parts():
    record = RunRecord.read(RESULT_FILES / "ddp_explicit_completed.json")
    assert record.status is RunStatus.COMPLETED
    assert (record.best.monitor, record.best.mode, record.best.epoch) == ("val_loss", "min", 6)
    assert record.best.metrics["val_loss"] == record.best_score == pytest.approx(0.6807, abs=1e-4)
    assert [(phase.depth, phase.start_epoch) for phase in record.phases_run] == [(0, 0), (1, 3), (2, 6)]
    assert [(t.depth, t.epoch, t.restored_from_depth) for t in record.transitions] == [(1, 3, 0), (2, 6, 1)]
    assert [row.epoch for row in record.history] == list(range(8)) and record.final == record.history[-1]
    assert record.test.checkpoint == record.best_checkpoint and record.test.metrics["test_acc"] == pytest.approx(0.588)
    [attempt] = record.attempts
    assert (attempt.status, attempt.start_epoch, attempt.end_epoch) == (RunStatus.COMPLETED, 0, 8)


def test_a_run_that_failed_on_another_rank_names_it_and_keeps_every_rank_s_error():
    record = RunRecord.read(RESULT_FILES / "ddp_failed_on_rank_1.json")
    assert record.status is RunStatus.FAILED and record.test is None
    assert record.error == "rank 1: RuntimeError: injected failure on rank 1 at the test stage"
    assert set(record.rank_errors) == {"0", "1"}
    assert (record.transitions, record.reached_depth, record.final_depth) == ([], 0, 2)


def test_a_ddp_spawn_run_without_history_has_an_empty_final_row_and_a_best_without_an_epoch():
    record = RunRecord.read(RESULT_FILES / "ddp_spawn_completed.json")
    assert (record.history, record.final, record.best_score) == ([], EpochRow(), None)
    assert record.best == BestEpoch(monitor="val_loss", mode="min")
    assert (record.transitions, record.reached_depth) == (None, None), "no schedule progress recorded"


def test_a_run_that_failed_before_its_trainer_was_built_writes_its_identity_the_error_and_the_attempt():
    record = RunRecord(status=RunStatus.FAILED, error="ConfigError: bad", attempts=[AttemptRecord()], wall_time_s=0.1)
    assert list(record.to_dict()) == [*IDENTITY, "error", "attempts", "wall_time_s"]
    assert record.to_dict()["sweep"] is None, "the identity is written, null or not"


def test_checkpoint_and_event_paths_are_written_as_null_with_the_fit_and_the_schedule_file_with_the_depth():
    fit = RunRecord(epochs_run=3).to_dict()
    assert {key: fit[key] for key in ("best_checkpoint", "best_score", "last_checkpoint", "tensorboard_dir")} == (
        dict.fromkeys(("best_checkpoint", "best_score", "last_checkpoint", "tensorboard_dir"))
    )
    assert "schedule_path" not in fit
    assert RunRecord(epochs_run=3, reached_depth=1).to_dict()["schedule_path"] is None


def test_cpu_time_and_parameter_groups_are_left_out_when_not_recorded_as_files_before_them_did():
    record = RunRecord(epochs_run=3, attempts=[AttemptRecord(wall_time_s=1.0)], wall_time_s=1.0)
    assert "cpu_time_s" not in record.to_dict() and "param_groups" not in record.to_dict()
    assert "cpu_time_s" not in record.to_dict()["attempts"][0]
    group = {"phase": 1, "weight_decay": 0.0, "tensors": 4, "modules": ["model.encoder.layer.1"]}
    again = RunRecord.from_dict({"param_groups": [group], "cpu_time_s": 3.5, "attempts": [{"cpu_time_s": 3.5}]})
    assert again.param_groups == [ParamGroupRecord(phase=1, weight_decay=0.0, tensors=4, modules=group["modules"])]
    assert (again.cpu_time_s, again.attempts[0].cpu_time_s) == (3.5, 3.5)


def test_a_transition_without_a_restore_record_leaves_it_out_as_files_before_it_did():
    assert "restore" not in TransitionRecord(depth=1, epoch=2).to_dict()
    assert TransitionRecord.from_dict({"depth": 1, "restore": {"source": "disk"}}).restore == {"source": "disk"}


def test_an_older_file_loads_with_its_missing_fields_none_and_a_newer_one_keeps_unknown_keys():
    old = RunRecord.from_dict({"status": "completed", "seed": 1, "best": {"monitor": "val_loss"}})
    assert (old.overrides, old.attempts, old.hardware, old.best.epoch) == (None, None, None, None)
    newer = {
        "status": "completed",
        "attempts": [{"status": "requeued", "node": "gpu7"}],
        "transitions": [{"depth": 1, "epoch": 2, "grad_norm": 0.5}],
        "carbon_kg": 0.01,
    }
    record = RunRecord.from_dict(newer)
    assert record.extra == {"carbon_kg": 0.01}
    assert record.attempts[0].extra == {"node": "gpu7"} and record.transitions[0].extra == {"grad_norm": 0.5}
    again = record.to_dict()
    assert again["carbon_kg"] == 0.01 and again["attempts"][0]["node"] == "gpu7"


def test_statuses_are_the_strings_of_the_file_and_an_unknown_one_is_kept_as_written():
    assert RunStatus.parse("requeued") is RunStatus.REQUEUED
    assert RunStatus.parse("paused") == "paused" and not isinstance(RunStatus.parse("paused"), RunStatus)
    assert RunStatus.parse(None) is None
    assert RunStatus.COMPLETED == "completed" and f"{RunStatus.RUNNING_OR_MISSING}" == "running/missing"
    assert json.loads(RunRecord(status=RunStatus.INTERRUPTED).to_json())["status"] == "interrupted"
    assert RunRecord.from_dict({"status": "paused"}).status == "paused"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "not a JSON object but a list"),
        ({"best": [1]}, "best: not a JSON object but a list"),
        ({"attempts": {"status": "failed"}}, "attempts: not a JSON array but a dict"),
        ({"history": [3]}, "an epoch row: not a JSON object but a int"),
    ],
)
def test_a_part_of_the_wrong_shape_is_a_record_error_naming_it(content, message):
    with pytest.raises(RecordError, match=message):
        RunRecord.from_dict(content)
    assert issubclass(RecordError, ValueError), "readers catch it with a damaged file's JSONDecodeError"


def test_the_record_module_imports_neither_torch_nor_lightning_nor_hydra():
    check = "import sys, ftexp.record; print(' '.join(m for m in ('torch', 'pytorch_lightning', 'hydra', 'omegaconf')"
    check += " if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []
