"""The CPU time a run records (ftexp/results.py: RunRecorder, cpu_seconds): per attempt, and summed over the
attempts of a resumed run only when every attempt recorded it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ftexp.record import AttemptRecord, RunRecord
from ftexp.results import RunRecorder


def resumed_recorder(run_dir, earlier_attempt: AttemptRecord) -> RunRecorder:
    """A second attempt in ``run_dir``, whose first attempt left ``earlier_attempt`` in result.json."""
    (run_dir / "result.json").write_text(RunRecord(attempts=[earlier_attempt], wall_time_s=5.0).to_json())
    cfg = OmegaConf.create({"paths": {"output_dir": str(run_dir), "checkpoint_dir": str(run_dir / "checkpoints")}})
    return RunRecorder(cfg, ckpt_path=str(run_dir / "checkpoints" / "last.ckpt"), overrides=[])


def test_a_resumed_run_sums_the_cpu_time_of_its_attempts(tmp_path):
    recorder = resumed_recorder(tmp_path, AttemptRecord(wall_time_s=5.0, cpu_time_s=4.0))
    recorder.finish(objects=None)
    this_attempt = recorder.attempt.cpu_time_s
    assert this_attempt is not None and this_attempt >= 0
    assert recorder.record.cpu_time_s == pytest.approx(4.0 + this_attempt, abs=0.01)


def test_a_run_whose_earlier_attempt_did_not_record_cpu_time_records_no_total(tmp_path):
    recorder = resumed_recorder(tmp_path, AttemptRecord(wall_time_s=5.0))  # written before cpu_time_s existed
    recorder.finish(objects=None)
    assert recorder.attempt.cpu_time_s is not None
    assert recorder.record.cpu_time_s is None, "a total of some attempts would read as the run's"
