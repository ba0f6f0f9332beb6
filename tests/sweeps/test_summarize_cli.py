"""``python -m ftexp.summarize`` (ftexp/summarize.py), and a real sweep summarized end to end."""

from __future__ import annotations

import csv
import subprocess
import sys

import matplotlib.image
import pytest

from ftexp.summarize import main
from ftexp.sweeps.curves import load_curves
from ftexp.sweeps.runs import load_jobs


def read_csv(path):
    with path.open() as file:
        return list(csv.DictReader(file))


def test_it_prints_the_table_and_where_it_wrote_the_files(fake_sweep, tmp_path, capsys):
    assert main([str(fake_sweep), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "| schedule=implicit | 1/2 |" in printed
    assert f"  {tmp_path / 'out' / 'summary.csv'}" in printed
    assert not (fake_sweep / "summary.md").exists()


def test_a_directory_without_jobs_is_an_error_message_and_exit_status_1(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "ftexp.summarize: no jobs under" in capsys.readouterr().err


@pytest.mark.slow
def test_the_sweep_callback_left_the_summary_and_printed_the_table(real_sweep):
    printed = (real_sweep.parent / "stdout.log").read_text()
    assert "| schedule=nofts |  | 2/2 |" in printed
    assert "Directory watcher" not in printed, "reading the event files for the plots prints nothing"
    for name in ("summary.md", "summary.csv", "jobs.csv", "plots/val_curves.png", "plots/lr.png"):
        assert (real_sweep / name).is_file(), name


@pytest.mark.slow
def test_a_real_sweep_is_summarized_into_a_table_and_valid_png_plots(real_sweep, tmp_path):
    out = tmp_path / "summary"
    command = [sys.executable, "-m", "ftexp.summarize", str(real_sweep), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| scenario | recipe | completed | best val acc | best val loss | test acc | test loss |" in done.stdout
    rows = {row["scenario"]: row for row in read_csv(out / "summary.csv")}
    assert list(rows) == ["schedule=nofts", "schedule=explicit"]
    assert [(row["jobs"], row["completed"], row["seeds_completed"]) for row in rows.values()] == [("2", "2", "1 2")] * 2
    assert rows["schedule=explicit"]["phases_reached_per_seed"] == "2 2"  # phase 1 begins at epoch 3 of 4
    assert rows["schedule=explicit"]["phases_total"] == "3"
    assert "| 2, 2 of 3 |" in done.stdout
    assert all(0 <= float(row["test_acc_mean"]) <= 1 for row in rows.values())
    assert all(float(row["allotted_cpu_hours"]) > 0 for row in rows.values())  # result.json's hardware: 1 thread
    assert all(float(row["cpu_time_used_hours"]) > 0 for row in rows.values())
    assert len(read_csv(out / "jobs.csv")) == 4
    for name in ("val_curves.png", "lr.png"):
        height, width, _ = matplotlib.image.imread(out / "plots" / name).shape
        assert width > height > 100


@pytest.mark.slow
def test_a_real_sweep_s_curves_come_from_its_event_files_with_the_phase_1_learning_rates(real_sweep):
    jobs = load_jobs(real_sweep)
    curves = load_curves(jobs)
    assert [curves[job.dir].source for job in jobs] == ["tensorboard"] * 4
    explicit = curves[jobs[2].dir]
    assert [epoch for epoch, _ in explicit.scalars["val_loss"]] == [0, 1, 2, 3]
    # phase 0 trains the head in 2 groups (decay, no decay); phase 1 adds 2 more at epoch 3
    assert {tag: [epoch for epoch, _ in explicit.scalars[tag]] for tag in explicit.lr_tags()} == {
        "lr-AdamW/pg1": [0, 1, 2, 3],
        "lr-AdamW/pg2": [0, 1, 2, 3],
        "lr-AdamW/pg3": [3],
        "lr-AdamW/pg4": [3],
    }
