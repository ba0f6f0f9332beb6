"""Figures of a sweep, drawn with matplotlib's object-oriented API (``Figure``, no pyplot): nothing global changes,
so they work in a Hydra callback, a headless job and a notebook alike, and are written as PNG by the Agg canvas.

- :func:`plot_validation_curves`: val loss and val acc by epoch, one colour per scenario: the mean over its completed
  jobs (all its jobs while none has completed, so that a running sweep has curves) and, with several, a band from the
  lowest to the highest value; dashed vertical lines where a later phase began.
- :func:`plot_learning_rates`: one panel per scenario, the learning rate of every parameter group by epoch (each
  job a thin line, a colour per LearningRateMonitor name), with the same phase lines.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ftexp.files import atomic_write
from ftexp.sweeps.curves import Curves, Points, phase_starts
from ftexp.sweeps.runs import Job
from ftexp.sweeps.scenarios import ScenarioSet

VALIDATION_METRICS = ("val_loss", "val_acc")


def plot_validation_curves(
    scenarios: ScenarioSet, curves: dict[Path, Curves], metrics: tuple[str, ...] = VALIDATION_METRICS
) -> Figure:
    """One panel per metric; every scenario's mean over its jobs, a min-max band, and its phase starts.

    The jobs are the scenario's completed ones, as in the results table: a failed job's partial run would bias the
    comparison. A scenario none of whose jobs has completed yet (a sweep still running) is drawn from all its jobs.

    A phase that begins at epoch *e* is drawn at *e* - 0.5: between the last validation of the previous phase and the
    first one of the new phase.
    """
    figure = Figure(figsize=(6 * len(metrics), 4.5), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    colors = _colors(len(scenarios))
    for ax, metric in zip(axes, metrics, strict=True):
        for color, scenario in zip(colors, scenarios, strict=True):
            jobs = scenario.completed or scenario.jobs
            series = [curves[job.dir].scalars.get(metric, []) for job in jobs if job.dir in curves]
            epochs, means, lows, highs = _mean_band([points for points in series if points])
            if not epochs:
                continue
            ax.plot(epochs, means, color=color, marker="o", markersize=3, label=scenario.label)
            if any(low != high for low, high in zip(lows, highs, strict=True)):
                ax.fill_between(epochs, lows, highs, color=color, alpha=0.2, linewidth=0)
            _mark_phases(ax, jobs, curves, color)
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
    _legend(axes[0])
    seeds = "mean over the completed seeds, or all while none has"
    figure.suptitle(f"validation metrics ({seeds}; band: min-max; dashed: a phase begins)", fontsize=10)
    return figure


def plot_learning_rates(scenarios: ScenarioSet, curves: dict[Path, Curves]) -> Figure:
    """One panel per scenario: the learning rate of each parameter group by epoch, all jobs as thin lines. The lr
    of epoch *e* spans *e* - 0.5 to *e* + 0.5, so that a phase line at *e* - 0.5 is where the new phase's lrs begin."""
    columns = min(3, max(1, len(scenarios)))
    rows = max(1, math.ceil(len(scenarios) / columns))
    figure = Figure(figsize=(5.5 * columns, 3.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, scenario in zip(axes, scenarios, strict=False):
        tags = sorted({tag for job in scenario.jobs for tag in curves.get(job.dir, Curves()).lr_tags()}, key=_tag_order)
        colors = dict(zip(tags, _colors(len(tags)), strict=True))
        values = []
        for job in scenario.jobs:
            for tag in curves.get(job.dir, Curves()).lr_tags():
                points = curves[job.dir].scalars[tag]
                ax.plot(*_epoch_steps(points), color=colors[tag], linewidth=1, alpha=0.8)
                values += [lr for _, lr in points]
        if values and min(values) > 0:
            ax.set_yscale("log")
        _mark_phases(ax, scenario.jobs, curves, "gray")
        ax.set(xlabel="epoch", ylabel="learning rate", title=scenario.label)
        ax.grid(alpha=0.3)
        if tags:
            handles = [Line2D([], [], color=colors[tag], label=tag) for tag in tags]
            ax.legend(handles=handles, fontsize=6, ncol=1 + len(tags) // 16, loc="upper left", bbox_to_anchor=(1.01, 1))
        else:
            ax.text(0.5, 0.5, "no learning rates logged", transform=ax.transAxes, ha="center", va="center")
    for ax in axes[len(scenarios) :]:
        ax.set_visible(False)
    figure.suptitle("learning rate per parameter group (dashed: a phase begins)", fontsize=10)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as PNG, atomically: a reader never sees half an image, and jobs ending together may write
    the same plot at the same time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda partial: figure.savefig(partial, dpi=110))


def _epoch_steps(points: Points) -> tuple[list[float], list[float]]:
    """A constant value across each epoch: x from *e* - 0.5 to *e* + 0.5."""
    xs = [x for epoch, _ in points for x in (epoch - 0.5, epoch + 0.5)]
    ys = [y for _, value in points for y in (value, value)]
    return xs, ys


def _mean_band(series: list[Points]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per epoch over the jobs that reached it: mean, min and max (NaN values left out)."""
    by_epoch: dict[int, list[float]] = {}
    for points in series:
        for epoch, value in points:
            if not math.isnan(value):
                by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    return (
        epochs,
        [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs],
        [min(by_epoch[e]) for e in epochs],
        [max(by_epoch[e]) for e in epochs],
    )


def _mark_phases(ax, jobs: list[Job], curves: dict[Path, Curves], color) -> None:
    """Dashed lines where a later phase of any of ``jobs`` began: the jobs a panel draws, and no others."""
    starts = {epoch for job in jobs for epoch in phase_starts(job, curves.get(job.dir))}
    for epoch in sorted(starts):
        ax.axvline(epoch - 0.5, color=color, linestyle="--", linewidth=1, alpha=0.6)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        phase = Line2D([], [], color="gray", linestyle="--", linewidth=1, label="phase begins")
        ax.legend(handles=[*ax.get_legend_handles_labels()[0], phase], fontsize=8)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]


def _tag_order(tag: str) -> tuple:
    """``lr-AdamW/pg2`` before ``lr-AdamW/pg10``: the group number compared as a number."""
    name, _, group = tag.rpartition("/pg")
    return (name, int(group)) if name and group.isdigit() else (tag, -1)
