"""Aggregate the jobs of each scenario into one row: seeds completed, metrics as mean ± std, epochs, phases, time and
compute; and render the rows as markdown.

Decisions (also printed under the markdown table, :func:`legend`):

- Metrics (validation at the best epoch, test, epochs, phases, wall time) are over the **completed** jobs only: a
  failed or interrupted job's partial run would bias the comparison. The ``jobs`` column says how many that is.
- std is the sample standard deviation (n - 1); with one value it is undefined: ``None`` in the CSV and ``± —`` in
  the markdown. ``<metric>_n`` says how many values a mean used: fewer than the completed jobs when a job's metric
  is NaN or was never logged, which the markdown shows as ``(n=k)``.
- Every status counts, including one outside :data:`STATUSES` (``unknown`` for a ``result.json`` without a status,
  a status of a newer writer as it is): ``not_completed`` lists them all.
- Phases reached are shown per completed seed, in seed order as ``seeds_completed`` (``1, 3, 3 of 3``): a mean
  of 2.3 would hide a seed that never left phase 0.
- Cost sums **every** job that wrote ``result.json``, whatever its status (a failed job used its hardware too), in
  two measures. *Allotted*: what the jobs held, GPU-hours = wall time x devices for GPU jobs, CPU-hours = wall time
  x ``cpu_threads`` x devices (processes) for CPU jobs; jobs whose hardware is unknown (older files whose config
  left the accelerator to Lightning) count in neither. *CPU time used*: the CPU time the jobs' processes recorded
  (``cpu_time_s``: user + system, with the DataLoader workers; rank 0's only under ddp), in CPU-hours; where the
  CPUs were shared (an oversubscribed node) or waiting, it is below the allotted CPU-hours. Files written before
  it was recorded leave it out (the cell says of how many jobs it is).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftexp.record import BestEpoch, RunRecord, RunStatus
from ftexp.sweeps.runs import Job, hardware
from ftexp.sweeps.scenarios import Scenario, ScenarioSet

STATUSES = tuple(RunStatus)  # a column each; the four a run records, then running/missing
# the OOD test metrics only where the data has an out-of-distribution test split (data=transfer)
METRICS = ("best_val_acc", "best_val_loss", "test_acc", "test_loss", "test_ood_acc", "test_ood_loss")
MAX_SEEDS_LISTED = 5  # phases reached: listed seed by seed up to this many, else as a range


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


def phases_reached(record: RunRecord) -> int | None:
    """How many phases the job trained in: ``reached_depth + 1`` for a scheduled run; a run without a schedule
    (``schedule=nofts``) records no depth, only the one phase it ran in ``phases_run``."""
    if isinstance(record.reached_depth, int):
        return record.reached_depth + 1
    return len(record.phases_run) if record.phases_run else None


def trainable_at_end(record: RunRecord) -> int | None:
    """The weights the job trained in the last phase it reached (every phase trains what the ones before thawed
    too): how much of the model the scenario fine-tunes, the adapters' trade-off beside full fine-tuning."""
    per_phase = record.trainable_params_per_phase or {}
    if isinstance(record.reached_depth, int):
        return per_phase.get(str(record.reached_depth))
    return per_phase.get(str(record.phases_run[-1].depth)) if record.phases_run else None  # nofts: one phase


def compute_hours(wall: Any, hw: dict[str, Any]) -> dict[str, float | None]:
    """``{"allotted_gpu_hours": ..., "allotted_cpu_hours": ...}`` a job held for ``wall`` seconds on the hardware
    ``hw`` (:func:`ftexp.sweeps.runs.hardware`; see the module docstring); ``None`` where unknown. It takes the
    hardware rather than the job because :func:`job_row` needs the hardware too, and it may come from parsing the
    config."""
    hours: dict[str, float | None] = {"allotted_gpu_hours": None, "allotted_cpu_hours": None}
    if not isinstance(wall, int | float):
        return hours
    devices = hw.get("devices")
    if hw.get("accelerator") == "gpu" and isinstance(devices, int):
        hours["allotted_gpu_hours"] = wall * devices / 3600
    elif hw.get("accelerator") == "cpu" and isinstance(hw.get("cpu_threads"), int):
        hours["allotted_cpu_hours"] = wall * hw["cpu_threads"] * (devices if isinstance(devices, int) else 1) / 3600
    return hours


def job_row(job: Job, label: str, sweep_dir: Path) -> dict[str, Any]:
    """One job as flat values (a row of ``jobs.csv``; a job without ``result.json`` has only what Hydra saved)."""
    record = job.result or RunRecord()
    best, test, hw = record.best or BestEpoch(), record.test.metrics if record.test else {}, hardware(job)
    return {
        "job": job.name_in(sweep_dir),
        "scenario": label,
        "recipe": record.recipe,
        "seed": job.seed,
        "status": str(job.status),
        "error": job.error,
        "attempts": len(record.attempts) if record.attempts is not None else None,
        "best_epoch": best.epoch,
        "best_val_loss": best.metrics.get("val_loss"),
        "best_val_acc": best.metrics.get("val_acc"),
        "test_loss": test.get("test_loss"),
        "test_acc": test.get("test_acc"),
        "test_ood_loss": test.get("test_ood_loss"),
        "test_ood_acc": test.get("test_ood_acc"),
        "epochs_run": record.epochs_run,
        "phases_reached": phases_reached(record),
        "trainable_weights": trainable_at_end(record),
        "total_weights": record.total_params,
        "phases_total": record.final_depth + 1 if isinstance(record.final_depth, int) else None,
        "wall_time_s": record.wall_time_s,
        "cpu_time_s": record.cpu_time_s,
        "accelerator": hw.get("accelerator"),
        "devices": hw.get("devices"),
        "cpu_threads": hw.get("cpu_threads"),
        **compute_hours(record.wall_time_s, hw),
        "slurm_job_id": hw.get("slurm_job_id"),
        "overrides": " ".join(job.overrides),
    }


def job_rows(scenarios: ScenarioSet, sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job, scenario by scenario in table order (the order :func:`scenario_rows` relies on)."""
    return [job_row(job, scenario.label, sweep_dir) for scenario in scenarios for job in scenario.jobs]


def scenario_row(scenario: Scenario, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario as flat values (a row of ``summary.csv``) from the rows of its jobs: counts per status, then mean,
    std and number of values of each metric."""
    done = sorted(  # in seed order: seeds_completed and phases_reached_per_seed list the seeds alike
        (row for row in jobs if row["status"] == RunStatus.COMPLETED),
        key=lambda row: (row["seed"] is None, row["seed"] if row["seed"] is not None else 0),
    )
    counts = Counter(row["status"] for row in jobs)
    row: dict[str, Any] = {
        "scenario": scenario.label,
        "recipe": _one_value([r["recipe"] for r in jobs]),
        "overrides": " ".join(scenario.key),
        "jobs": len(jobs),
        **{_column(status): counts[status] for status in STATUSES},
        "not_completed": not_completed(counts),
        "seeds_completed": " ".join(str(r["seed"]) for r in done if r["seed"] is not None),
    }
    for metric in METRICS:
        summary = stat([r[metric] for r in done])
        row[f"{metric}_mean"] = summary.mean if summary else None
        row[f"{metric}_std"] = summary.std if summary else None
        row[f"{metric}_n"] = summary.n if summary else 0
    row["epochs_mean"] = _mean([r["epochs_run"] for r in done])
    row["phases_reached_mean"] = _mean([r["phases_reached"] for r in done])
    row["phases_reached_per_seed"] = " ".join(_text(r["phases_reached"]) for r in done)  # as seeds_completed
    row["trainable_weights_mean"] = _mean([r["trainable_weights"] for r in done])
    row["total_weights"] = _one_value([r["total_weights"] for r in done])
    totals = {r["phases_total"] for r in jobs if r["phases_total"] is not None}  # one schedule: one value
    row["phases_total"] = totals.pop() if len(totals) == 1 else None
    wall = _mean([r["wall_time_s"] for r in done])
    row["wall_time_min_mean"] = wall / 60 if wall is not None else None
    for unit in ("allotted_gpu_hours", "allotted_cpu_hours"):
        known = [r[unit] for r in jobs if r[unit] is not None]
        row[unit] = sum(known) if known else None
    used = [r["cpu_time_s"] for r in jobs if r["cpu_time_s"] is not None]
    row["cpu_time_used_hours"] = sum(used) / 3600 if used else None
    row["cpu_time_used_n"] = len(used)
    return row


def scenario_rows(scenarios: ScenarioSet, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario, from the sweep's :func:`job_rows` (made once per summary, and written to ``jobs.csv``
    too), which list the jobs scenario by scenario."""
    return [scenario_row(scenario, rows) for scenario, rows in rows_by_scenario(scenarios, jobs)]


def rows_by_scenario(scenarios: ScenarioSet, jobs: list[dict[str, Any]]) -> list[tuple[Scenario, list[dict[str, Any]]]]:
    """Each scenario with the rows of its jobs, cut from the sweep's :func:`job_rows` (which list the jobs scenario
    by scenario); ``ValueError`` for rows of other jobs."""
    if len(jobs) != sum(len(scenario.jobs) for scenario in scenarios):
        raise ValueError(f"{len(jobs)} job rows for scenarios of other jobs: pass job_rows(scenarios, sweep_dir)")
    cut, start = [], 0
    for scenario in scenarios:
        cut.append((scenario, jobs[start : start + len(scenario.jobs)]))
        start += len(scenario.jobs)
    return cut


def not_completed(counts: Counter[str]) -> str:
    """``1 failed, 1 unknown``: every status but ``completed``, including those outside :data:`STATUSES` (which
    come after them), so that the cell and the ``completed`` column always add up to the jobs."""
    statuses = [*STATUSES, *sorted(set(counts) - set(STATUSES))]
    return ", ".join(f"{counts[s]} {s}" for s in statuses if s != RunStatus.COMPLETED and counts[s])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The scenario rows as a markdown table; the test (and OOD test) columns only when some scenario has them."""
    metrics = [("best val acc", "best_val_acc", 3), ("best val loss", "best_val_loss", 4)]
    if any(row["test_acc_mean"] is not None or row["test_loss_mean"] is not None for row in rows):
        metrics += [("test acc", "test_acc", 3), ("test loss", "test_loss", 4)]
    if any(row["test_ood_acc_mean"] is not None or row["test_ood_loss_mean"] is not None for row in rows):
        metrics += [("OOD test acc", "test_ood_acc", 3), ("OOD test loss", "test_ood_loss", 4)]
    recipes = any(row.get("recipe") for row in rows)
    header = ["scenario", *(["recipe"] if recipes else []), "completed", *(title for title, _, _ in metrics)]
    header += ["epochs", "phases reached", "trained weights", "wall (min)", "allotted", "CPU time used"]
    header += ["not completed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["scenario"].replace("|", "\\|")]
        cells += [(row.get("recipe") or "").replace("|", "\\|")] if recipes else []
        cells += [f"{row['completed']}/{row['jobs']}"]
        cells += [_metric_cell(row, name, digits) for _, name, digits in metrics]
        wall = row["wall_time_min_mean"]
        cells += [
            _number(row["epochs_mean"], 1),
            _phases_cell(row),
            _trainable_cell(row),
            _number(wall, 1 if wall is None or wall >= 1 else 2),
        ]
        cells += [_allotted(row), _cpu_time_used(row), row["not_completed"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def unfinished_notes(scenarios: ScenarioSet, sweep_dir: Path) -> list[str]:
    """One line per job that did not complete (with its error) or needed several attempts."""
    notes = []
    for scenario in scenarios:
        for job in scenario.jobs:
            where = f"`{job.name_in(sweep_dir)}` ({scenario.label}, seed {job.seed})"
            attempts = job.result.attempts if job.result is not None else None
            if not job.completed:
                notes.append(f"{where}: {job.status}" + (f": {_one_line(job.error)}" if job.error else ""))
            elif attempts is not None and len(attempts) > 1:
                notes.append(f"{where}: completed in {len(attempts)} attempts")
    return notes


def legend(scenarios: ScenarioSet) -> str:
    """What the columns mean, as printed under the table."""
    monitors = sorted(
        {
            f"{best.mode or 'min'} {best.monitor}"
            for scenario in scenarios
            for job in scenario.completed
            if job.result is not None and (best := job.result.best) is not None and best.monitor
        }
    )
    chosen_by = f"chosen by {', '.join(monitors)}" if monitors else "chosen by the checkpoint monitor"
    return (
        f"Validation metrics at each job's best epoch ({chosen_by}) and test metrics of its best checkpoint: mean ± "
        "sample std over the completed jobs (± —: a single value; (n=k): only k of the completed jobs have the "
        "metric, the others' value is NaN or missing). Epochs and wall time: means over the completed jobs. Phases "
        "reached: each completed job's, in seed order (of the schedule's total). Trained weights: those trainable in "
        "the last phase a job reached, mean over the completed jobs (share of the model's). Allotted and CPU time "
        "used: summed "
        "over every job that wrote result.json, whatever its status; allotted = what the jobs held, GPU-h = wall "
        "time x devices, CPU-h = wall time x cpu_threads x processes; CPU time used = the user + system CPU time "
        "the jobs' processes recorded (with their DataLoader workers; rank 0's only under ddp), in CPU-hours: below "
        "the allotted CPU-h where the CPUs were shared or waiting."
    )


def _one_value(values: list[Any]) -> Any:
    """The value the jobs of a scenario share (``None`` if they differ or none has one)."""
    known = {value for value in values if value is not None}
    return known.pop() if len(known) == 1 else None


def _mean(values: list[float | None]) -> float | None:
    summary = stat(values)
    return summary.mean if summary else None


def _metric_cell(row: dict[str, Any], metric: str, digits: int) -> str:
    """``0.610 ± 0.014``; ``± —`` with a single value; ``(n=k)`` when fewer than the completed jobs have the metric,
    so that a missing value is not read as agreement between the seeds."""
    mean, std, n = row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_n"]
    if mean is None:
        return "n/a"
    cell = f"{mean:.{digits}f} ± " + (f"{std:.{digits}f}" if std is not None else "—")
    return cell + (f" (n={n})" if n < row["completed"] else "")


def _column(status: str) -> str:
    """The CSV column of a status: ``running/missing`` -> ``running_or_missing``."""
    return status.replace("/", "_or_")


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _phases_cell(row: dict[str, Any]) -> str:
    """``1, 3, 3 of 3``: each completed seed's phases reached, in seed order; with more than
    :data:`MAX_SEEDS_LISTED` seeds the range and the median (``1-3 of 3, median 3``)."""
    values = row["phases_reached_per_seed"].split()
    if not values or all(value == "?" for value in values):
        return "n/a"
    numbers = sorted(int(value) for value in values if value != "?")
    if len(values) <= MAX_SEEDS_LISTED:
        cell = ", ".join(values)
    else:
        cell = f"{numbers[0]}-{numbers[-1]}" if numbers[0] != numbers[-1] else str(numbers[0])
    if row["phases_total"] is not None:
        cell += f" of {row['phases_total']}"
    if len(values) > MAX_SEEDS_LISTED and numbers[0] != numbers[-1]:
        cell += f", median {statistics.median(numbers):g}"
    return cell


def _allotted(row: dict[str, Any]) -> str:
    parts = [
        f"{row[unit]:.3g} {name}"
        for unit, name in (("allotted_gpu_hours", "GPU-h"), ("allotted_cpu_hours", "CPU-h"))
        if row[unit] is not None
    ]
    return " + ".join(parts) or "n/a"


def _cpu_time_used(row: dict[str, Any]) -> str:
    """The CPU-hours the jobs recorded; ``(k of m jobs)`` when only k of the m jobs that wrote result.json did."""
    if row["cpu_time_used_hours"] is None:
        return "n/a"
    recorded = row["jobs"] - row[_column(RunStatus.RUNNING_OR_MISSING)]
    partial = f" ({row['cpu_time_used_n']} of {recorded} jobs)" if row["cpu_time_used_n"] < recorded else ""
    return f"{row['cpu_time_used_hours']:.3g} CPU-h{partial}"


def _trainable_cell(row: dict[str, Any]) -> str:
    """``41.9k (51 %)``: the weights trained in the last phase reached (mean over seeds), and their share of the
    model's."""
    trained, total = row["trainable_weights_mean"], row["total_weights"]
    if trained is None:
        return "?"
    percent = 100 * trained / total if total else None
    share = "" if percent is None else f" ({percent:.0f} %)" if percent >= 10 else f" ({percent:.2g} %)"
    return f"{_compact_count(trained)}{share}"


def _compact_count(count: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return f"{count:.0f}"


def _text(value: Any) -> str:
    return "?" if value is None else str(value)


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= 300 else line[:297] + "..."
