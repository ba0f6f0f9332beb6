"""Summarize a sweep directory into files: ``summary.md`` (the table), ``summary.csv`` (one row per scenario),
``jobs.csv`` (one row per job) and ``plots/*.png``.

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
from ftexp.sweeps.runs import Job, load_jobs
from ftexp.sweeps.scenarios import ScenarioSet, group_scenarios
from ftexp.sweeps.table import job_rows, legend, markdown_table, scenario_rows, unfinished_notes

PLOTS = {"val_curves.png": "validation loss and accuracy by epoch", "lr.png": "learning rate per parameter group"}


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
    sweep: Sweep, plots: list[Path] | tuple[Path, ...] = (), rows: list[dict[str, Any]] | None = None
) -> str:
    """The scenario table with what its columns mean, the jobs that did not complete, and links to ``plots``
    (paths relative to where the markdown is written). ``rows``: the sweep's :func:`scenario_rows` when the caller
    has them already (:func:`write_tables` writes them to ``summary.csv`` too), else they are made here."""
    if rows is None:
        rows = scenario_rows(sweep.scenarios, job_rows(sweep.scenarios, sweep.dir))
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
    ]
    notes = unfinished_notes(sweep.scenarios, sweep.dir)
    if notes:
        lines += ["", "Jobs not completed, or completed after several attempts:", ""]
        lines += [f"- {note}" for note in notes]
    if plots:
        lines += ["", *(f"![{PLOTS.get(p.name, p.stem)}]({p.as_posix()})" for p in plots)]
    return "\n".join(lines) + "\n"


def write_tables(sweep: Sweep, out_dir: str | os.PathLike, plots: list[Path] | tuple[Path, ...] = ()) -> Summary:
    """Write ``summary.md``, ``summary.csv`` and ``jobs.csv`` into ``out_dir``; ``plots`` are linked from the
    markdown. Each job's row is made once, as this runs after every job of a sweep; the markdown comes back with
    the files, so nobody reads back what was just written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    links = [Path(os.path.relpath(p, out_dir)) for p in plots]
    jobs = job_rows(sweep.scenarios, sweep.dir)
    scenarios = scenario_rows(sweep.scenarios, jobs)
    markdown = markdown_summary(sweep, links, scenarios)
    files = [
        _write_text(out_dir / "summary.md", markdown),
        _write_text(out_dir / "summary.csv", csv_text(scenarios)),
        _write_text(out_dir / "jobs.csv", csv_text(jobs)),
    ]
    return Summary(sweep=sweep, markdown=markdown, files=files)


def write_plots(sweep: Sweep, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``plots/val_curves.png`` and ``plots/lr.png`` under ``out_dir``."""
    from ftexp.sweeps.curves import load_curves
    from ftexp.sweeps.plots import plot_learning_rates, plot_validation_curves, save_figure

    curves = load_curves(sweep.jobs)
    plots_dir = Path(out_dir) / "plots"
    return [
        save_figure(plot_validation_curves(sweep.scenarios, curves), plots_dir / "val_curves.png"),
        save_figure(plot_learning_rates(sweep.scenarios, curves), plots_dir / "lr.png"),
    ]


def summarize_sweep(
    sweep_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, plots: bool = True
) -> Summary:
    """Load ``sweep_dir`` and write the tables (and, with ``plots``, the figures) into ``out_dir`` (default: the
    sweep dir)."""
    sweep = load_sweep(sweep_dir)
    out_dir = Path(out_dir) if out_dir is not None else sweep.dir
    figures = write_plots(sweep, out_dir) if plots else []
    summary = write_tables(sweep, out_dir, figures)
    summary.files += figures
    return summary


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (the first row's keys as header; ``None`` as an empty cell)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> Path:
    """Atomically: jobs of a sweep finishing together may rewrite the summary at the same time."""
    return atomic_write(path, lambda partial: partial.write_text(text))
