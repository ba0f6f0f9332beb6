"""Summarize a sweep directory into files: ``summary.md`` (the table, and the differences vs a baseline scenario),
``summary.csv`` (one row per scenario), ``differences.csv`` (one row per metric and scenario compared with the
baseline: a table of its own shape, so that ``summary.csv`` stays one row per scenario), ``jobs.csv`` (one row per
job) and ``plots/*.png``.

>>> summary = summarize_sweep("multirun/demo/2026-11-23_10-00-00.000000")  # doctest: +SKIP
>>> print(summary.markdown)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftexp.files import atomic_write
from ftexp.sweeps.differences import (
    CSV_COLUMNS,
    DEFAULT_BASELINE,
    Differences,
    csv_rows,
    markdown_section,
    sweep_differences,
)
from ftexp.sweeps.runs import Job, load_jobs
from ftexp.sweeps.scenarios import ScenarioSet, group_scenarios
from ftexp.sweeps.table import job_rows, legend, markdown_table, scenario_rows, unfinished_notes

PLOTS = {
    "val_curves.png": "validation loss and accuracy by epoch",
    "lr.png": "learning rate per parameter group",
    "final_metrics.png": "each seed's final metrics and their mean, per scenario",
}


@dataclass
class Sweep:
    dir: Path
    jobs: list[Job]
    scenarios: ScenarioSet


@dataclass
class Summary:
    sweep: Sweep
    markdown: str
    files: list[Path] = field(default_factory=list)


def load_sweep(sweep_dir: str | os.PathLike) -> Sweep:
    """The jobs of ``sweep_dir`` grouped into scenarios; ``ValueError`` when it holds no job."""
    sweep_dir = Path(sweep_dir).absolute()
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir} is not a directory")
    jobs = load_jobs(sweep_dir)
    if not jobs:
        raise ValueError(f"no jobs under {sweep_dir} (no directory holds .hydra/ or result.json)")
    return Sweep(dir=sweep_dir, jobs=jobs, scenarios=group_scenarios(jobs))


def markdown_summary(
    sweep: Sweep,
    plots: list[Path] | tuple[Path, ...] = (),
    rows: list[dict[str, Any]] | None = None,
    differences: Differences | None = None,
) -> str:
    """The scenario table with what its columns mean, the differences vs the baseline, the jobs that did not
    complete, and links to ``plots`` (paths relative to where the markdown is written). ``rows`` and
    ``differences``: the sweep's :func:`scenario_rows` and :func:`~ftexp.sweeps.differences.sweep_differences` when
    the caller has them already (:func:`write_tables` writes them to CSV files too), else they are made here (the
    differences vs :data:`~ftexp.sweeps.differences.DEFAULT_BASELINE`)."""
    if rows is None or differences is None:
        jobs = job_rows(sweep.scenarios, sweep.dir)
        rows = scenario_rows(sweep.scenarios, jobs) if rows is None else rows
        differences = sweep_differences(sweep.scenarios, jobs) if differences is None else differences
    completed = sum(job.completed for job in sweep.jobs)
    lines = [
        f"# Sweep `{sweep.dir}`",
        "",
        f"{len(sweep.jobs)} jobs, {completed} completed, {len(sweep.scenarios)} scenarios."
        + (f" Overrides common to all: `{' '.join(sweep.scenarios.common)}`." if sweep.scenarios.common else ""),
        "",
        markdown_table(rows),
        "",
        legend(sweep.scenarios),
        "",
        markdown_section(differences),
    ]
    notes = unfinished_notes(sweep.scenarios, sweep.dir)
    if notes:
        lines += ["", "Jobs not completed, or completed after several attempts:", ""]
        lines += [f"- {note}" for note in notes]
    if plots:
        lines += ["", *(f"![{PLOTS.get(p.name, p.stem)}]({p.as_posix()})" for p in plots)]
    return "\n".join(lines) + "\n"


def write_tables(
    sweep: Sweep,
    out_dir: str | os.PathLike,
    plots: list[Path] | tuple[Path, ...] = (),
    baseline: str | None = DEFAULT_BASELINE,
) -> Summary:
    """Write ``summary.md``, ``summary.csv``, ``differences.csv`` (vs the scenario ``baseline`` selects, see
    :mod:`ftexp.sweeps.differences`; only its header when there is none, so that no earlier file's numbers stay
    behind) and ``jobs.csv`` into ``out_dir``; ``plots`` are linked from the markdown. Each job's row is made once,
    as this runs after every job of a sweep; the markdown comes back with the files, so nobody reads back what was
    just written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    links = [Path(os.path.relpath(p, out_dir)) for p in plots]
    jobs = job_rows(sweep.scenarios, sweep.dir)
    scenarios = scenario_rows(sweep.scenarios, jobs)
    differences = sweep_differences(sweep.scenarios, jobs, baseline)
    markdown = markdown_summary(sweep, links, scenarios, differences)
    files = [
        _write_text(out_dir / "summary.md", markdown),
        _write_text(out_dir / "summary.csv", csv_text(scenarios)),
        _write_text(out_dir / "differences.csv", csv_text(csv_rows(differences), CSV_COLUMNS)),
        _write_text(out_dir / "jobs.csv", csv_text(jobs)),
    ]
    return Summary(sweep=sweep, markdown=markdown, files=files)


def write_plots(sweep: Sweep, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``plots/val_curves.png``, ``plots/lr.png`` and ``plots/final_metrics.png`` under ``out_dir``."""
    from ftexp.sweeps.curves import load_curves
    from ftexp.sweeps.plots import plot_final_metrics, plot_learning_rates, plot_validation_curves, save_figure

    curves = load_curves(sweep.jobs)
    plots_dir = Path(out_dir) / "plots"
    jobs = job_rows(sweep.scenarios, sweep.dir)  # plots are drawn once, at the end: making the rows again is cheap
    return [
        save_figure(plot_validation_curves(sweep.scenarios, curves), plots_dir / "val_curves.png"),
        save_figure(plot_learning_rates(sweep.scenarios, curves), plots_dir / "lr.png"),
        save_figure(plot_final_metrics(sweep.scenarios, jobs), plots_dir / "final_metrics.png"),
    ]


def summarize_sweep(
    sweep_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    plots: bool = True,
    baseline: str | None = DEFAULT_BASELINE,
) -> Summary:
    """Load ``sweep_dir`` and write the tables (and, with ``plots``, the figures) into ``out_dir`` (default: the
    sweep dir), the differences vs the scenario ``baseline`` selects (``None``: no differences section)."""
    sweep = load_sweep(sweep_dir)
    out_dir = Path(out_dir) if out_dir is not None else sweep.dir
    figures = write_plots(sweep, out_dir) if plots else []
    summary = write_tables(sweep, out_dir, figures, baseline)
    summary.files += figures
    return summary


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> str:
    """Rows as CSV (``columns``, else the first row's keys, as header; ``None`` as an empty cell): with ``columns``,
    the header even without rows."""
    buffer = io.StringIO()
    if rows or columns:
        writer = csv.DictWriter(buffer, fieldnames=list(columns or rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> Path:
    """Atomically: jobs of a sweep finishing together may rewrite the summary at the same time."""
    return atomic_write(path, lambda partial: partial.write_text(text))
