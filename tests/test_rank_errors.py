"""When ranks of a multi-process run fail, result.json names the first failure and its rank, not the connection error
it caused on rank 0 (end to end: tests/test_ddp_runs.py)."""

from __future__ import annotations

from ftexp.rank_errors import attribute_failure, record_rank_error

GLOO = "RuntimeError: [gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:45799"


def test_rank_0_reports_the_rank_that_failed_first_and_lists_every_ranks_error(tmp_path):
    record_rank_error(tmp_path, 1, "FileNotFoundError: Checkpoint file not found: best.ckpt", failed_at=100.0)
    result = {"error": GLOO}

    attribute_failure(result, tmp_path, rank=0, failed_at=101.0, since=90.0)

    assert result["error"] == "rank 1: FileNotFoundError: Checkpoint file not found: best.ckpt"
    assert result["rank_errors"] == {"0": GLOO, "1": "FileNotFoundError: Checkpoint file not found: best.ckpt"}


def test_rank_0_failing_first_keeps_its_own_error_named_as_rank_0(tmp_path):
    record_rank_error(tmp_path, 1, GLOO, failed_at=102.0)
    result = {"error": "ValueError: bad batch"}

    attribute_failure(result, tmp_path, rank=0, failed_at=101.0, since=90.0)

    assert result["error"] == "rank 0: ValueError: bad batch"
    assert set(result["rank_errors"]) == {"0", "1"}


def test_errors_left_by_an_earlier_attempt_in_the_same_run_dir_are_ignored(tmp_path):
    record_rank_error(tmp_path, 1, "RuntimeError: from the previous attempt", failed_at=50.0)
    result = {"error": "ValueError: bad batch"}

    attribute_failure(result, tmp_path, rank=0, failed_at=101.0, since=90.0)

    assert result == {"error": "ValueError: bad batch"}


def test_another_rank_records_its_error_and_leaves_the_result_to_rank_0(tmp_path):
    result = {"error": "FileNotFoundError: best.ckpt"}

    attribute_failure(result, tmp_path, rank=1, failed_at=100.0, since=90.0)

    assert result == {"error": "FileNotFoundError: best.ckpt"}
    other = {"error": GLOO}
    attribute_failure(other, tmp_path, rank=0, failed_at=101.0, since=90.0)
    assert other["error"] == "rank 1: FileNotFoundError: best.ckpt"
