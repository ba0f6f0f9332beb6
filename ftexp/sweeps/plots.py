"""Figures of a sweep, drawn with matplotlib's object-oriented API (``Figure``, no pyplot): nothing global changes,
so they work in a Hydra callback, a headless job and a notebook alike, and are written as PNG by the Agg canvas.

Both figures draw, for each scenario, the jobs the results table averages: its completed ones (all its jobs while
none has completed, so that a running sweep has curves). Where the seeds of a scenario began a phase at different
epochs, a phase start is summarized by its median epoch, and its label says over how many seeds and their range
(:class:`PhaseMark`).

- :func:`plot_validation_curves`: val loss and val acc by epoch, one colour per scenario: the mean over the seeds
  and, with several, a band from the lowest to the highest value; hollow markers and an ``n=k`` note where fewer
  seeds are averaged (the others had stopped); a dotted line where a later phase began, numbered by the phase.
- :func:`plot_learning_rates`: one panel per scenario, the learning rate of every parameter group by epoch, labelled
  by what it holds (the phase that added it and its modules, from ``result.json``'s ``param_groups``), a colour per
  phase, dashed for the group without weight decay (one line when it has the same lrs as its decay twin), each seed
  a faint line and their mean a bold one.
- :func:`plot_final_metrics`: the table's metrics, one panel each: every completed seed's value as a point, in the
  colour and at the offset of its seed in every scenario (so that a seed's points pair up across scenarios, as the
  differences section pairs them), and a bar at their mean.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ftexp.files import atomic_write
from ftexp.record import RunRecord
from ftexp.sweeps.curves import Curves, Points, group_index, group_order, phase_starts
from ftexp.sweeps.differences import seed_values
from ftexp.sweeps.runs import Job
from ftexp.sweeps.scenarios import Scenario, ScenarioSet
from ftexp.sweeps.table import METRICS, rows_by_scenario

VALIDATION_METRICS = ("val_loss", "val_acc")
PHASE_LINE = ":"  # a phase begins (dashed is a learning rate without weight decay)
MAX_MODULES_SHOWN = 2
MEAN_LINE_WIDTH, WIDER_UNDERNEATH = 1.6, 1.1  # the last group's line, and how much wider each earlier one is
SEED_SPREAD, MEAN_BAR = 0.4, 0.3  # final metrics: a scenario's seeds spread over 0.4 of its place, its mean bar ±0.3


@dataclass(frozen=True)
class PhaseMark:
    """Where a scenario's seeds began phase ``depth``: the median epoch over the ``reached`` seeds (of ``seeds``
    drawn) that got there, and the earliest and latest."""

    depth: int
    epoch: float
    first: int
    last: int
    reached: int
    seeds: int

    def describe(self) -> str:
        """``phase 2 at epoch 6 (3 seeds)``, ``phase 2 at epoch 5 (median of 3 seeds; range 4-6)``,
        ``phase 3 at epoch 9 (1 of 3 seeds)``."""
        epoch = f"{self.epoch:g}"
        reached = f"{self.reached} of {self.seeds} seeds" if self.reached < self.seeds else f"{self.seeds} seeds"
        if self.first == self.last:
            detail = f" ({reached})" if self.seeds > 1 else ""
        else:
            detail = f" (median of {reached}; range {self.first}-{self.last})"
        return f"phase {self.depth} at epoch {epoch}{detail}"


def phase_marks(jobs: list[Job], curves: dict[Path, Curves]) -> list[PhaseMark]:
    """One :class:`PhaseMark` per later phase any of ``jobs`` began, by depth."""
    starts: dict[int, list[int]] = {}
    for job in jobs:
        for depth, epoch in phase_starts(job, curves.get(job.dir)).items():
            starts.setdefault(depth, []).append(epoch)
    return [
        PhaseMark(depth, statistics.median(epochs), min(epochs), max(epochs), len(epochs), len(jobs))
        for depth, epochs in sorted(starts.items())
    ]


@dataclass(frozen=True)
class GroupLabel:
    """What a parameter group holds, for a legend: the phase that added it, its modules, and whether it is the
    group trained without weight decay (``None``: the run's groups do not differ in weight decay, or unknown)."""

    phase: int | None
    modules: str
    no_decay: bool | None

    def text(self, both_decays: bool = False) -> str:
        phase = f"phase {self.phase}: " if self.phase is not None else ""
        decay = {True: " (no decay)", False: " (decay)", None: ""}[self.no_decay]
        return f"{phase}{self.modules}{' (decay & no decay)' if both_decays else decay}"


def group_labels(record: RunRecord | None) -> dict[str, GroupLabel]:
    """The labels of a job's parameter groups, by LearningRateMonitor's group name (``pg1`` is the first), from its
    ``result.json``'s ``param_groups``; empty groups (a phase without ``no_decay`` parameters) have none, as they
    train nothing, and so have files written before ``param_groups`` was recorded. Module names lose the prefix
    they all share (``model.``); a run without a schedule, all of whose parameters train, says so."""
    groups = (record.param_groups if record is not None else None) or []
    modules = [module for group in groups for module in group.modules or []]
    prefix = _common_prefix(modules)
    decays = {group.weight_decay for group in groups if group.tensors}
    trains_everything = (
        record is not None
        and record.final_depth == 0
        and record.total_params is not None
        and (record.trainable_params_per_phase or {}).get("0") == record.total_params
    )
    labels = {}
    for index, group in enumerate(groups):
        if not group.tensors:
            continue
        names = [module[len(prefix) :] for module in group.modules or []]
        shown = ", ".join(names[:MAX_MODULES_SHOWN]) + (
            f" +{len(names) - MAX_MODULES_SHOWN} more" if len(names) > MAX_MODULES_SHOWN else ""
        )
        no_decay = group.weight_decay == 0 if len(decays) > 1 and group.weight_decay is not None else None
        labels[f"pg{index + 1}"] = GroupLabel(
            phase=None if trains_everything else group.phase,
            modules="all parameters" if trains_everything else shown or f"group {index + 1}",
            no_decay=no_decay,
        )
    return labels


@dataclass
class LRLine:
    """One legend entry of a learning-rate panel: a group (or a decay / no-decay pair with the same lrs) and its
    lrs in each seed."""

    label: str
    color_key: int
    dashed: bool
    per_seed: list[Points]

    @property
    def mean(self) -> Points:
        epochs, means, _, _, _ = _mean_band(self.per_seed)
        return list(zip(epochs, means, strict=True))


def lr_lines(scenario: Scenario, curves: dict[Path, Curves]) -> list[LRLine]:
    """The lines of a scenario's learning-rate panel, in group order: each group's lrs in every seed drawn, labelled
    by :func:`group_labels` (those of its first seed that recorded them; else ``group N``, from the group's
    LearningRateMonitor name). A no-decay group whose lrs equal its decay twin's in every seed shares its line."""
    jobs = _drawn(scenario)
    series = [curves[job.dir].learning_rates() if job.dir in curves else {} for job in jobs]
    labels = next((found for job in jobs if (found := group_labels(job.result))), {})
    groups = sorted({group for rates in series for group in rates}, key=group_order)
    if labels:  # an empty group trains nothing: its lr is not worth a line
        groups = [group for group in groups if group in labels or group_index(group) is None]
    lines, done = [], set()
    for group in groups:
        if group in done:
            continue
        label = labels.get(group, GroupLabel(None, _unnamed(group), None))
        twin = _no_decay_twin(group, label, labels)
        per_seed = [rates[group] for rates in series if group in rates]
        both = twin is not None and all(_same(rates.get(group), rates.get(twin)) for rates in series)
        if both:
            done.add(twin)
        color_key = label.phase if label.phase is not None else (group_index(group) or 0)
        lines.append(LRLine(label.text(both_decays=both), color_key, bool(label.no_decay), per_seed))
    return lines


def plot_validation_curves(
    scenarios: ScenarioSet, curves: dict[Path, Curves], metrics: tuple[str, ...] = VALIDATION_METRICS
) -> Figure:
    """One panel per metric; every scenario's mean over its seeds, a min-max band, and its phase starts, which the
    legend under the panels describes scenario by scenario.

    A phase that begins at epoch *e* is drawn at *e* - 0.5: between the last validation of the previous phase and the
    first one of the new phase.
    """
    figure = Figure(figsize=(6.5 * len(metrics), 5.5), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    colors = _colors(len(scenarios))
    handles = []
    for color, scenario in zip(colors, scenarios, strict=True):
        jobs = _drawn(scenario)
        marks = phase_marks(jobs, curves)
        drawn = False
        for ax, metric in zip(axes, metrics, strict=True):
            series = [points for job in jobs if (points := curves.get(job.dir, Curves()).scalars.get(metric))]
            drawn |= _plot_mean(ax, series, color)
            _mark_phases(ax, marks, color)
        if drawn:
            described = "; ".join(mark.describe() for mark in marks)
            label = f"{scenario.label} ({len(jobs)} seed{'s' * (len(jobs) != 1)})" + (
                f": {described}" if described else ""
            )
            handles.append(Line2D([], [], color=color, marker="o", markersize=4, label=label))
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
    if handles:
        fewer = "mean of fewer seeds (n=k: from there on, of k), the others had stopped"
        handles.append(Line2D([], [], color="gray", marker="o", markerfacecolor="none", linestyle="none", label=fewer))
        handles.append(_phase_handle())
        figure.legend(handles=handles, loc="outside lower left", fontsize=8, frameon=False)
    figure.suptitle(
        "validation metrics: mean over each scenario's completed seeds (all its seeds while none has completed), "
        "band: min-max over them",
        fontsize=10,
    )
    return figure


def _plot_mean(ax, series: list[Points], color) -> bool:
    """The mean of ``series`` by epoch, its min-max band, hollow markers where fewer series are averaged and an
    ``n=k`` note where that number changes; ``False`` when there is nothing to draw."""
    epochs, means, lows, highs, counts = _mean_band(series)
    if not epochs:
        return False
    ax.plot(epochs, means, color=color, linewidth=1.5)
    full = [i for i, n in enumerate(counts) if n == len(series)]
    fewer = [i for i, n in enumerate(counts) if n < len(series)]
    for indices, face in ((full, color), (fewer, "none")):
        xs, ys = [epochs[i] for i in indices], [means[i] for i in indices]
        ax.plot(xs, ys, linestyle="none", marker="o", markersize=4, color=color, markerfacecolor=face)
    for i in _count_changes(counts, len(series)):
        ax.annotate(
            f"n={counts[i]}", (epochs[i], means[i]), xytext=(3, 5), textcoords="offset points", fontsize=7, color=color
        )
    if any(low != high for low, high in zip(lows, highs, strict=True)):
        ax.fill_between(epochs, lows, highs, color=color, alpha=0.15, linewidth=0)
    return True


def plot_learning_rates(scenarios: ScenarioSet, curves: dict[Path, Curves]) -> Figure:
    """One panel per scenario: the learning rate of each parameter group by epoch (:func:`lr_lines`). The lr of
    epoch *e* spans *e* - 0.5 to *e* + 0.5, so that a phase line at *e* - 0.5 is where the new phase's lrs begin."""
    columns = min(3, max(1, len(scenarios)))
    rows = max(1, math.ceil(len(scenarios) / columns))
    figure = Figure(figsize=(6 * columns, 5.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, scenario in zip(axes, scenarios, strict=False):
        lines = lr_lines(scenario, curves)
        colors = _colors(max((line.color_key for line in lines), default=0) + 1)  # phase k: one colour everywhere
        values = []
        for order, line in enumerate(lines):
            style = {"color": colors[line.color_key], "linestyle": "--" if line.dashed else "-"}
            if len(line.per_seed) > 1:
                for points in line.per_seed:
                    ax.plot(*_epoch_steps(points), linewidth=0.8, alpha=0.35, **style)
            # groups of different phases often share an lr (a new scheduler restarting them at the same one): each
            # line is drawn narrower than the ones before it, so that where they coincide every one still shows
            width = MEAN_LINE_WIDTH + WIDER_UNDERNEATH * (len(lines) - 1 - order)
            ax.plot(*_epoch_steps(line.mean), linewidth=width, label=line.label, **style)
            values += [lr for points in line.per_seed for _, lr in points]
        if values and min(values) > 0:
            ax.set_yscale("log")
        marks = phase_marks(_drawn(scenario), curves)
        _mark_phases(ax, marks, "gray")
        seeds = len(_drawn(scenario))
        ax.set(xlabel="epoch", ylabel="learning rate", title=f"{scenario.label} ({seeds} seed{'s' * (seeds != 1)})")
        ax.grid(alpha=0.3)
        if lines:
            handles = ax.get_legend_handles_labels()[0]
            handles += [Line2D([], [], color="gray", linestyle=PHASE_LINE, label=mark.describe()) for mark in marks]
            ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
        else:
            ax.text(0.5, 0.5, "no learning rates logged", transform=ax.transAxes, ha="center", va="center")
    for ax in axes[len(scenarios) :]:
        ax.set_visible(False)
    figure.suptitle(
        "learning rate per parameter group, labelled by the phase that added it and its modules (decay & no decay: "
        "one line for the two groups, their lrs are equal; dashed: the group without weight decay; where lines "
        "coincide, the earlier group's shows around the later one's)\n"
        "bold: mean over the scenario's completed seeds (all its seeds while none has completed); faint: each seed; "
        "dotted line, number: the median epoch at which that phase began",
        fontsize=9,
    )
    return figure


def plot_final_metrics(scenarios: ScenarioSet, jobs: list[dict[str, Any]]) -> Figure:
    """One panel per metric of the table that some completed job has (from the sweep's
    :func:`~ftexp.sweeps.table.job_rows`): each scenario's completed seeds as points and their mean as a bar. A mean
    of 3 seeds hides whether one seed carries a difference; the points show it."""
    by_scenario = rows_by_scenario(scenarios, jobs)
    values = {
        metric: per_scenario
        for metric in METRICS
        if any(per_scenario := [seed_values(rows, metric) for _, rows in by_scenario])
    }
    seeds = sorted({seed for per_scenario in values.values() for found in per_scenario for seed in found})
    colors = dict(zip(seeds, _colors(len(seeds)), strict=True))
    offsets = dict(zip(seeds, _spread(len(seeds), SEED_SPREAD), strict=True))
    columns = min(2, max(1, len(values)))  # 2 x 2 for the four metrics: the scenario names need the width
    rows = max(1, math.ceil(len(values) / columns))
    panel_width = max(3.5, 0.9 * len(scenarios) + 1.2)
    figure = Figure(figsize=(panel_width * columns + 1.2, 4.5 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (metric, per_scenario) in zip(axes, values.items(), strict=False):
        for x, found in enumerate(per_scenario):
            for seed, value in found.items():
                point = {"linestyle": "none", "marker": "o", "markersize": 5, "color": colors[seed], "zorder": 3}
                ax.plot(x + offsets[seed], value, **point)  # over the mean's bar, which would hide the middle seed
            if found:
                ax.hlines(statistics.fmean(found.values()), x - MEAN_BAR, x + MEAN_BAR, color="black", linewidth=2)
        ax.set_xticks(range(len(scenarios)), [scenario.label for scenario in scenarios], rotation=30, ha="right")
        ax.set(ylabel=metric, title=metric.replace("_", " "), xlim=(-0.6, len(scenarios) - 0.4))
        ax.grid(alpha=0.3, axis="y")
    if values:
        handles = [Line2D([], [], color="black", linewidth=2, label="mean over the seeds")]
        handles += [Line2D([], [], color=colors[s], marker="o", linestyle="none", label=f"seed {s}") for s in seeds]
        figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    else:
        axes[0].text(0.5, 0.5, "no completed job has a metric yet", transform=axes[0].transAxes, ha="center")
        axes[0].set_axis_off()
    for ax in axes[max(1, len(values)) :]:
        ax.set_visible(False)
    figure.suptitle(
        "each completed seed's value (a seed keeps its colour and place in every scenario) and their mean", fontsize=10
    )
    return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as PNG, atomically: a reader never sees half an image, and jobs ending together may write
    the same plot at the same time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda partial: figure.savefig(partial, dpi=110, bbox_inches="tight"))


def _spread(n: int, width: float) -> list[float]:
    """``n`` offsets evenly across ``width``, centred on 0 (one: 0)."""
    if n < 2:
        return [0.0] * n
    return [-width / 2 + width * i / (n - 1) for i in range(n)]


def _drawn(scenario: Scenario) -> list[Job]:
    """The jobs a scenario's curves are drawn from (see the module docstring)."""
    return scenario.completed or scenario.jobs


def _epoch_steps(points: Points) -> tuple[list[float], list[float]]:
    """A constant value across each epoch: x from *e* - 0.5 to *e* + 0.5."""
    xs = [x for epoch, _ in points for x in (epoch - 0.5, epoch + 0.5)]
    ys = [y for _, value in points for y in (value, value)]
    return xs, ys


def _mean_band(series: list[Points]) -> tuple[list[int], list[float], list[float], list[float], list[int]]:
    """Per epoch over the series that reached it: mean, min, max and how many (NaN values left out)."""
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
        [len(by_epoch[e]) for e in epochs],
    )


def _count_changes(counts: list[int], seeds: int) -> list[int]:
    """Indices where the number of seeds averaged changes to fewer than all of them (or back up from fewer)."""
    return [
        i
        for i, n in enumerate(counts)
        if (n < seeds and (i == 0 or n != counts[i - 1])) or (i > 0 and counts[i - 1] < seeds <= n)
    ]


def _mark_phases(ax, marks: list[PhaseMark], color) -> None:
    """A dotted line at each phase's median start, numbered by the phase at the top of the panel."""
    for mark in marks:
        x = mark.epoch - 0.5
        ax.axvline(x, color=color, linestyle=PHASE_LINE, linewidth=1.2, alpha=0.8)
        top = (x, 1.0)  # x in epochs, y at the top of the panel
        ax.annotate(
            str(mark.depth),
            top,
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )


def _phase_handle() -> Line2D:
    return Line2D(
        [], [], color="gray", linestyle=PHASE_LINE, label="a phase begins (median over the seeds; its number)"
    )


def _colors(n: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]


def _common_prefix(modules: list[str]) -> str:
    """The leading modules (``model.``) all of ``modules`` share, as long as each keeps a name of its own."""
    parts = [module.split(".") for module in modules]
    if not parts:
        return ""
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    return "".join(f"{part}." for part in parts[0][:shared])


def _no_decay_twin(group: str, label: GroupLabel, labels: dict[str, GroupLabel]) -> str | None:
    """The no-decay group added with ``group`` (the next one, of the same phase), when ``group`` is a decay one."""
    index = group_index(group)
    if index is None or label.no_decay is not False:
        return None
    twin = f"pg{index + 2}"
    other = labels.get(twin)
    return twin if other is not None and other.no_decay and other.phase == label.phase else None


def _same(first: Points | None, second: Points | None) -> bool:
    """Whether two lr series have the same epochs and values (to float32 precision, as TensorBoard stores them)."""
    if first is None or second is None:
        return first is second
    return len(first) == len(second) and all(
        e1 == e2 and math.isclose(v1, v2, rel_tol=1e-6) for (e1, v1), (e2, v2) in zip(first, second, strict=True)
    )


def _unnamed(group: str) -> str:
    index = group_index(group)
    return f"group {index + 1}" if index is not None else group
