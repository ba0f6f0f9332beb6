"""Files written whole or not at all (ftexp/files.py: atomic_write; ftexp/results.py: write_record): result.json
and the sweep summary's files, which other processes read, and rewrite, while a sweep runs."""

from __future__ import annotations

import json
import os

import pytest

from ftexp.files import atomic_write
from ftexp.record import RunRecord, RunStatus
from ftexp.results import write_record


def test_the_file_is_replaced_whole_and_no_temporary_file_is_left(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("old")
    assert atomic_write(path, lambda partial: partial.write_text("new")) == path
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["summary.md"]


def test_the_writer_gets_a_file_of_its_own_in_the_same_directory_with_the_same_suffix(tmp_path):
    seen = []

    def write(partial):
        seen.append(partial)
        partial.write_bytes(b"x")

    atomic_write(tmp_path / "val_curves.png", write)
    atomic_write(tmp_path / "val_curves.png", write)
    first, second = seen
    assert first != second  # concurrent writers (on different nodes too) never share one
    assert first.parent == tmp_path and first.suffix == ".png" and first.name.startswith(".")


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "summary.csv"
    path.write_text("old")

    def fail(partial):
        partial.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.csv"]


def test_the_file_gets_the_permissions_of_a_file_created_the_ordinary_way(tmp_path):
    (tmp_path / "ordinary").write_text("x")
    atomic_write(tmp_path / "summary.md", lambda partial: partial.write_text("x"))
    assert (tmp_path / "summary.md").stat().st_mode == (tmp_path / "ordinary").stat().st_mode


def test_result_json_is_written_through_it(tmp_path):
    record = RunRecord(status=RunStatus.COMPLETED, result_file=str(tmp_path / "result.json"))
    write_record(record)
    assert json.loads((tmp_path / "result.json").read_text()) == record.to_dict()
    assert RunRecord.read(tmp_path / "result.json") == record
    assert os.listdir(tmp_path) == ["result.json"]
