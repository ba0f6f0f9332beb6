"""Every start of a run is logged in its run dir; ``result.json`` lists the logged attempts, each with its record, or
as ``died`` when it never recorded its end (``ftexp.attempt_log``)."""

from __future__ import annotations

from ftexp.attempt_log import DIED, LOG_NAME, attempts_of_this_run, log_start, read_starts
from ftexp.record import AttemptRecord, RunStatus

CHECKPOINT = "run/checkpoints/last.ckpt"


def start(run_dir, resumed_from: str | None = None) -> AttemptRecord:
    attempt = AttemptRecord(started_at="2026-12-03T10:00:00+00:00", resumed_from=resumed_from)
    log_start(run_dir, attempt)
    return attempt


def ended(attempt: AttemptRecord, status: RunStatus) -> AttemptRecord:
    attempt.status = status
    return attempt


def statuses(attempts: list[AttemptRecord]) -> list[str]:
    return [str(attempt.status) for attempt in attempts]


def test_an_attempt_killed_without_a_word_is_listed_as_died_between_the_recorded_ones(tmp_path):
    first = ended(start(tmp_path), RunStatus.REQUEUED)
    killed = start(tmp_path, CHECKPOINT)  # SIGKILLed: records nothing
    last = ended(start(tmp_path, CHECKPOINT), RunStatus.COMPLETED)

    attempts = attempts_of_this_run(read_starts(tmp_path), [first], last)

    assert statuses(attempts) == ["requeued", DIED, "completed"]
    assert attempts[1].attempt_id == killed.attempt_id and attempts[1].resumed_from == CHECKPOINT
    assert "never recorded its end" in attempts[1].extra["note"]


def test_a_fresh_start_after_a_recorded_end_begins_a_new_list(tmp_path):
    old = ended(start(tmp_path), RunStatus.COMPLETED)
    again = ended(start(tmp_path), RunStatus.COMPLETED)  # no checkpoint: the run starts over

    assert [a.attempt_id for a in attempts_of_this_run(read_starts(tmp_path), [old], again)] == [again.attempt_id]


def test_a_fresh_start_after_an_attempt_that_died_before_its_first_checkpoint_continues_its_list(tmp_path):
    start(tmp_path)  # killed before any checkpoint: the next attempt cannot resume
    again = ended(start(tmp_path), RunStatus.COMPLETED)

    assert statuses(attempts_of_this_run(read_starts(tmp_path), [], again)) == [DIED, "completed"]


def test_a_line_cut_by_a_crash_is_skipped_and_records_from_before_the_log_come_first(tmp_path):
    older = AttemptRecord(started_at="2026-12-01T10:00:00+00:00", status=RunStatus.REQUEUED)  # no attempt_id
    with (tmp_path / LOG_NAME).open("a") as log:
        log.write('{"attempt_id": "abc", "start')  # the write a crash cut
    resumed = start(tmp_path, CHECKPOINT)  # its line starts on a line of its own

    assert [s.attempt_id for s in read_starts(tmp_path)] == [resumed.attempt_id]
    listed = attempts_of_this_run(read_starts(tmp_path), [older], ended(resumed, RunStatus.COMPLETED))
    assert listed == [older, resumed]


def test_records_from_before_the_log_are_left_out_by_a_fresh_start_and_the_current_attempt_is_always_listed(
    tmp_path,
):
    older = AttemptRecord(started_at="2026-12-01T10:00:00+00:00", status=RunStatus.COMPLETED)  # no attempt_id
    fresh = ended(AttemptRecord(started_at="2026-12-03T10:00:00+00:00", attempt_id="unlogged"), RunStatus.FAILED)

    assert attempts_of_this_run(read_starts(tmp_path), [older], fresh) == [fresh]
