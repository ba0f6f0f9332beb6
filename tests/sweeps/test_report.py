"""A sweep dir summarized into summary.md, summary.csv, jobs.csv and plots (ftexp/sweeps/report.py)."""

from __future__ import annotations

import csv

import pytest

from ftexp.sweeps.report import load_sweep, summarize_sweep


def read_csv(path):
    with path.open() as file:
        return list(csv.DictReader(file))


def test_the_files_go_into_the_sweep_dir_by_default(fake_sweep):
    summary = summarize_sweep(fake_sweep, plots=False)
    assert [path.relative_to(fake_sweep).as_posix() for path in summary.files] == [
        "summary.md",
        "summary.csv",
        "differences.csv",
        "jobs.csv",
    ]
    assert (fake_sweep / "summary.md").read_text() == summary.markdown


def test_summary_md_has_the_table_its_legend_and_the_jobs_that_did_not_complete(fake_sweep, tmp_path):
    markdown = summarize_sweep(fake_sweep, out_dir=tmp_path / "out", plots=False).markdown
    assert f"# Sweep `{fake_sweep}`" in markdown
    assert "6 jobs, 4 completed, 3 scenarios." in markdown
    assert "| schedule=nofts | 2/2 | 0.610 ± 0.014 |" in markdown
    assert "chosen by min val_loss" in markdown
    assert "- `3_implicit` (schedule=implicit, seed 2): running/missing" in markdown
    assert "- `5_explicit` (schedule=explicit, seed 2): failed: RuntimeError: CUDA out of memory" in markdown
    assert "![" not in markdown  # no plots asked for


def test_summary_csv_has_one_row_per_scenario_with_mean_and_std_in_separate_columns(fake_sweep, tmp_path):
    summarize_sweep(fake_sweep, out_dir=tmp_path, plots=False)
    rows = read_csv(tmp_path / "summary.csv")
    assert [row["scenario"] for row in rows] == ["schedule=nofts", "schedule=implicit", "schedule=explicit"]
    nofts, implicit, _ = rows
    assert float(nofts["best_val_acc_mean"]) == pytest.approx(0.61)
    assert float(nofts["best_val_acc_std"]) == pytest.approx(0.0141421356)
    assert implicit["best_val_acc_std"] == ""  # one completed seed
    assert (implicit["jobs"], implicit["completed"], implicit["running_or_missing"]) == ("2", "1", "1")


def test_jobs_csv_has_one_row_per_job(fake_sweep, tmp_path):
    summarize_sweep(fake_sweep, out_dir=tmp_path, plots=False)
    rows = read_csv(tmp_path / "jobs.csv")
    assert [(row["job"], row["seed"], row["status"]) for row in rows][-2:] == [
        ("4_explicit", "1", "completed"),
        ("5_explicit", "2", "failed"),
    ]
    assert rows[5]["error"] == "RuntimeError: CUDA out of memory"
    assert rows[3]["best_val_acc"] == ""  # still running: nothing known


def test_with_plots_the_markdown_links_them_relative_to_itself(fake_sweep, tmp_path):
    summary = summarize_sweep(fake_sweep, out_dir=tmp_path / "out")
    assert (tmp_path / "out" / "plots" / "val_curves.png").is_file()
    assert (tmp_path / "out" / "plots" / "lr.png").is_file()
    assert (tmp_path / "out" / "plots" / "final_metrics.png").is_file()
    assert "![validation loss and accuracy by epoch](plots/val_curves.png)" in summary.markdown
    assert "![learning rate per parameter group](plots/lr.png)" in summary.markdown
    assert "![each seed's final metrics and their mean, per scenario](plots/final_metrics.png)" in summary.markdown


def test_a_directory_without_jobs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no jobs under"):
        load_sweep(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        load_sweep(tmp_path / "nowhere")
