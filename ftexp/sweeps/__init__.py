"""Summarize a sweep directory (``python -m ftexp -m ...``) into a results table and plots.

``python -m ftexp.summarize <sweep_dir>`` or, after every job of a sweep, the Hydra callback
:class:`~ftexp.sweeps.callback.SummarizeSweep`. The pieces, one job each: :mod:`~ftexp.sweeps.runs` finds and loads
the jobs, :mod:`~ftexp.sweeps.scenarios` groups them, :mod:`~ftexp.sweeps.table` aggregates,
:mod:`~ftexp.sweeps.differences` compares each scenario with a baseline seed by seed (the statistics in
:mod:`~ftexp.sweeps.paired`), :mod:`~ftexp.sweeps.curves` reads the per-epoch curves, :mod:`~ftexp.sweeps.plots`
draws them, :mod:`~ftexp.sweeps.report` writes the files (each whole, through :mod:`ftexp.files`).

Reading a sweep dir never imports Hydra: the callback is Hydra's side, so this package does not import it (Hydra
finds it by its full path, ``ftexp.sweeps.callback.SummarizeSweep``).
"""

from ftexp.sweeps.curves import Curves, job_curves, load_curves, phase_starts
from ftexp.sweeps.differences import DEFAULT_BASELINE, Differences, sweep_differences
from ftexp.sweeps.paired import PairedDifference, paired_difference
from ftexp.sweeps.report import Summary, Sweep, load_sweep, markdown_summary, summarize_sweep, write_plots, write_tables
from ftexp.sweeps.runs import RUNNING_OR_MISSING, Job, find_latest_sweep, load_jobs
from ftexp.sweeps.scenarios import Scenario, ScenarioSet, group_scenarios
from ftexp.sweeps.table import job_rows, scenario_rows

__all__ = [
    "DEFAULT_BASELINE",
    "RUNNING_OR_MISSING",
    "Curves",
    "Differences",
    "Job",
    "PairedDifference",
    "Scenario",
    "ScenarioSet",
    "Summary",
    "Sweep",
    "find_latest_sweep",
    "group_scenarios",
    "job_curves",
    "job_rows",
    "load_curves",
    "load_jobs",
    "load_sweep",
    "markdown_summary",
    "paired_difference",
    "phase_starts",
    "scenario_rows",
    "summarize_sweep",
    "sweep_differences",
    "write_plots",
    "write_tables",
]
