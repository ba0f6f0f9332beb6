"""Aggregate the jobs of each scenario into one row: seeds completed, metrics as mean ± std, epochs, phases, time and
compute; and render the rows as markdown.

Decisions (also printed under the markdown table, :func:`legend`):

- Metrics (validation at the best epoch, test, epochs, phases, wall time) are over the **completed** jobs only: a
  failed or interrupted job's partial run would bias the comparison. The ``jobs`` column says how many that is.
- std is the sample standard deviation (n - 1); with one completed job it is undefined: ``None`` in the CSV and
  ``± —`` in the markdown.
- Compute sums **every** job that wrote ``result.json``, whatever its status (a failed job used its hardware too):
  GPU-hours = wall time x devices for GPU jobs; CPU-hours = wall time x ``cpu_threads`` x devices (processes) for
  CPU jobs. Jobs whose hardware is unknown (older files whose config left the accelerator to Lightning) count in
  neither.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftexp.sweeps.runs import RUNNING_OR_MISSING, Job, hardware
from ftexp.sweeps.scenarios import Scenario, ScenarioSet

STATUSES = ("completed", "failed", "interrupted", "requeued", RUNNING_OR_MISSING)
METRICS = ("best_val_acc", "best_val_loss", "test_acc", "test_loss")


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None with one value
    n: int


def stat(values: list[float | None]) -> Stat | None:
    """Mean and sample std of the values that are numbers (NaN and None left out); ``None`` when there are none."""
    numbers = [float(v) for v in values if isinstance(v, int | float) and not math.isnan(v)]
    if not numbers:
        return None
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return Stat(mean=statistics.fmean(numbers), std=std, n=len(numbers))


def phases_reached(result: dict[str, Any]) -> int | None:
    """How many phases the job trained in: ``reached_depth + 1``, else (older files) the phases it ran."""
    if isinstance(result.get("reached_depth"), int):
        return result["reached_depth"] + 1
    return len(result["phases_run"]) if result.get("phases_run") else None


def compute_hours(job: Job) -> dict[str, float | None]:
    """``{"gpu_hours": ..., "cpu_hours": ...}`` the job used (see the module docstring); ``None`` where unknown."""
    hours: dict[str, float | None] = {"gpu_hours": None, "cpu_hours": None}
    wall = (job.result or {}).get("wall_time_s")
    if not isinstance(wall, int | float):
        return hours
    hw = hardware(job)
    devices = hw.get("devices")
    if hw.get("accelerator") == "gpu" and isinstance(devices, int):
        hours["gpu_hours"] = wall * devices / 3600
    elif hw.get("accelerator") == "cpu" and isinstance(hw.get("cpu_threads"), int):
        hours["cpu_hours"] = wall * hw["cpu_threads"] * (devices if isinstance(devices, int) else 1) / 3600
    return hours


def job_row(job: Job, label: str, sweep_dir: Path) -> dict[str, Any]:
    """One job as flat values (a row of ``jobs.csv``)."""
    result = job.result or {}
    best, test, hw = result.get("best") or {}, result.get("test") or {}, hardware(job)
    return {
        "job": job.name_in(sweep_dir),
        "scenario": label,
        "seed": job.seed,
        "status": job.status,
        "error": job.error,
        "attempts": len(result["attempts"]) if isinstance(result.get("attempts"), list) else None,
        "best_epoch": best.get("epoch"),
        "best_val_loss": best.get("val_loss"),
        "best_val_acc": best.get("val_acc"),
        "test_loss": test.get("test_loss"),
        "test_acc": test.get("test_acc"),
        "epochs_run": result.get("epochs_run"),
        "phases_reached": phases_reached(result),
        "phases_total": result["final_depth"] + 1 if isinstance(result.get("final_depth"), int) else None,
        "wall_time_s": result.get("wall_time_s"),
        "accelerator": hw.get("accelerator"),
        "devices": hw.get("devices"),
        "cpu_threads": hw.get("cpu_threads"),
        **compute_hours(job),
        "slurm_job_id": hw.get("slurm_job_id"),
        "overrides": " ".join(job.overrides),
    }


def job_rows(scenarios: ScenarioSet, sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job, scenario by scenario in table order."""
    return [job_row(job, scenario.label, sweep_dir) for scenario in scenarios for job in scenario.jobs]


def scenario_row(scenario: Scenario, sweep_dir: Path) -> dict[str, Any]:
    """One scenario as flat values (a row of ``summary.csv``): counts per status, then mean and std columns."""
    jobs = [job_row(job, scenario.label, sweep_dir) for job in scenario.jobs]
    done = [row for row in jobs if row["status"] == "completed"]
    counts = Counter(row["status"] for row in jobs)
    row: dict[str, Any] = {
        "scenario": scenario.label,
        "overrides": " ".join(scenario.key),
        "jobs": len(jobs),
        **{status.replace("/", "_or_"): counts.get(status, 0) for status in STATUSES},
        "seeds_completed": " ".join(str(r["seed"]) for r in done if r["seed"] is not None),
    }
    for metric in METRICS:
        summary = stat([r[metric] for r in done])
        row[f"{metric}_mean"] = summary.mean if summary else None
        row[f"{metric}_std"] = summary.std if summary else None
    row["epochs_mean"] = _mean([r["epochs_run"] for r in done])
    row["phases_reached_mean"] = _mean([r["phases_reached"] for r in done])
    totals = {r["phases_total"] for r in jobs if r["phases_total"] is not None}  # one schedule: one value
    row["phases_total"] = totals.pop() if len(totals) == 1 else None
    wall = _mean([r["wall_time_s"] for r in done])
    row["wall_time_min_mean"] = wall / 60 if wall is not None else None
    for unit in ("gpu_hours", "cpu_hours"):
        known = [r[unit] for r in jobs if r[unit] is not None]
        row[unit] = sum(known) if known else None
    return row


def scenario_rows(scenarios: ScenarioSet, sweep_dir: Path) -> list[dict[str, Any]]:
    return [scenario_row(scenario, sweep_dir) for scenario in scenarios]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The scenario rows as a markdown table; the test columns only when some scenario has test metrics."""
    metrics = [("best val acc", "best_val_acc", 3), ("best val loss", "best_val_loss", 4)]
    if any(row["test_acc_mean"] is not None or row["test_loss_mean"] is not None for row in rows):
        metrics += [("test acc", "test_acc", 3), ("test loss", "test_loss", 4)]
    header = ["scenario", "completed", *(title for title, _, _ in metrics)]
    header += ["epochs", "phases", "wall (min)", "compute", "not completed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["scenario"].replace("|", "\\|"), f"{row['completed']}/{row['jobs']}"]
        cells += [_mean_std(row[f"{name}_mean"], row[f"{name}_std"], digits) for _, name, digits in metrics]
        phases = _number(row["phases_reached_mean"], 1)
        if row["phases_total"] is not None and row["phases_reached_mean"] is not None:
            phases += f" of {row['phases_total']}"
        wall = row["wall_time_min_mean"]
        cells += [_number(row["epochs_mean"], 1), phases, _number(wall, 1 if wall is None or wall >= 1 else 2)]
        cells.append(_compute(row))
        cells.append(
            ", ".join(f"{row[s.replace('/', '_or_')]} {s}" for s in STATUSES[1:] if row[s.replace("/", "_or_")])
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def unfinished_notes(scenarios: ScenarioSet, sweep_dir: Path) -> list[str]:
    """One line per job that did not complete (with its error) or needed several attempts."""
    notes = []
    for scenario in scenarios:
        for job in scenario.jobs:
            where = f"`{job.name_in(sweep_dir)}` ({scenario.label}, seed {job.seed})"
            attempts = (job.result or {}).get("attempts")
            if not job.completed:
                notes.append(f"{where}: {job.status}" + (f": {_one_line(job.error)}" if job.error else ""))
            elif isinstance(attempts, list) and len(attempts) > 1:
                notes.append(f"{where}: completed in {len(attempts)} attempts")
    return notes


def legend(scenarios: ScenarioSet) -> str:
    """What the columns mean, as printed under the table."""
    monitors = sorted(
        {
            f"{best.get('mode', 'min')} {best['monitor']}"
            for scenario in scenarios
            for job in scenario.completed
            if (best := (job.result or {}).get("best") or {}).get("monitor")
        }
    )
    chosen_by = f"chosen by {', '.join(monitors)}" if monitors else "chosen by the checkpoint monitor"
    return (
        f"Validation metrics at each job's best epoch ({chosen_by}) and test metrics of its best checkpoint: mean ± "
        "sample std over the completed jobs (± —: one completed job). Epochs, phases reached (of the schedule's "
        "total) and wall time: means over the completed jobs. Compute: summed over every job that wrote "
        "result.json, whatever its status; GPU-h = wall time x devices, CPU-h = wall time x cpu_threads x "
        "processes."
    )


def _mean(values: list[float | None]) -> float | None:
    summary = stat(values)
    return summary.mean if summary else None


def _mean_std(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± " + (f"{std:.{digits}f}" if std is not None else "—")


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _compute(row: dict[str, Any]) -> str:
    parts = [
        f"{row[unit]:.3g} {name}"
        for unit, name in (("gpu_hours", "GPU-h"), ("cpu_hours", "CPU-h"))
        if row[unit] is not None
    ]
    return " + ".join(parts) or "n/a"


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= 300 else line[:297] + "..."
