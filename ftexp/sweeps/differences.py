"""The summary's "Differences vs <baseline>" section: every scenario against a baseline scenario, metric by metric,
paired by seed, with a Student-t interval (:mod:`ftexp.sweeps.paired`); written into ``summary.md`` and, as one
row per metric and scenario, into ``differences.csv``.

The baseline is chosen by a selector, overrides separated by spaces (default ``schedule=nofts``): the scenarios
whose overrides include all of them. A scenario label from the table is such a selector. A bare word is a schedule
name (``nofts`` means ``schedule=nofts``), as runs started without overrides are grouped by their recorded schedule.

- One scenario matches: every other scenario is compared with it, also one that differs in more than the
  selector's keys, as when each schedule runs at its own tuned lr (``schedule=explicit model.optimizer.lr=1e-4``
  against ``schedule=nofts model.optimizer.lr=2e-5``): that is the comparison such a sweep is made for.
- Several match (the sweep varies something else too, say the lr, for every schedule): each scenario is compared
  with the baseline that has the same values of the other overrides (explicit at lr 1e-4 with nofts at lr 1e-4);
  a scenario without such a baseline is named in a note under the table.
- None matches, or every scenario does: there is nothing to compare, and one line says why instead of the table.

Values are the completed jobs' (as in the table), and a pair needs a seed completed in both scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ftexp.overrides import override_key
from ftexp.record import RunStatus
from ftexp.sweeps.paired import CONFIDENCE, PairedDifference, paired_difference, t_critical
from ftexp.sweeps.scenarios import Scenario, ScenarioSet
from ftexp.sweeps.table import MAX_SEEDS_LISTED, METRICS, rows_by_scenario

DEFAULT_BASELINE = "schedule=nofts"
CSV_COLUMNS = (
    "metric",
    "scenario",
    "baseline",
    "n_pairs",
    "seeds",
    "differences",
    "mean_diff",
    "ci_low",
    "ci_high",
    "confidence",
    "includes_zero",
    "verdict",
)

Setting = tuple[str, str]  # (key, value) of an override, however it was written (+key=value, ++key=value)


@dataclass(frozen=True)
class ScenarioDifference:
    """One row of the section: ``scenario`` minus ``baseline`` (scenario labels) in ``metric``."""

    metric: str
    scenario: str
    baseline: str
    difference: PairedDifference


@dataclass
class Differences:
    """The section: its rows, notes on scenarios left out, and, when there is no table, why (``omitted``)."""

    selector: str | None
    rows: list[ScenarioDifference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    omitted: str | None = None
    several_baselines: bool = False  # then each row names its baseline


def sweep_differences(
    scenarios: ScenarioSet,
    jobs: list[dict[str, Any]],
    selector: str | None = DEFAULT_BASELINE,
    confidence: float = CONFIDENCE,
) -> Differences:
    """Every scenario minus its baseline (chosen by ``selector``, see the module docstring) in each metric some
    completed job has, from the sweep's :func:`~ftexp.sweeps.table.job_rows`; metric by metric, then in sweep order.

    >>> differences = sweep_differences(scenarios, job_rows(scenarios, sweep_dir))  # doctest: +SKIP
    >>> [(row.scenario, row.difference.verdict) for row in differences.rows][:1]  # doctest: +SKIP
    [('schedule=explicit', 'higher than the baseline (interval excludes 0)')]
    """
    selector = " ".join((selector or "").split()) or None
    if selector is None:
        return Differences(selector, omitted="no baseline chosen")
    wanted = {_setting(part) for part in selector.split()}
    cut = rows_by_scenario(scenarios, jobs)
    baselines = [scenario for scenario, _ in cut if wanted <= _settings(scenario)]
    if not baselines:
        return Differences(selector, omitted=f"no scenario of the sweep has `{selector}`")
    if len(baselines) == len(cut):
        return Differences(selector, omitted=f"every scenario of the sweep has `{selector}`: none to compare")
    result = Differences(selector, several_baselines=len(baselines) > 1)
    rows_of = {id(scenario): scenario_jobs for scenario, scenario_jobs in cut}
    pairs = []
    for scenario, _ in cut:
        if any(scenario is baseline for baseline in baselines):
            continue
        baseline = baseline_for(scenario, baselines, {key for key, _ in wanted})
        if baseline is None:
            result.notes.append(f"{scenario.label}: no baseline scenario with its other overrides")
        else:
            pairs.append((scenario, baseline))
    for metric in METRICS:
        if not any(seed_values(scenario_jobs, metric) for _, scenario_jobs in cut):
            continue  # e.g. test metrics in a sweep run with test=false
        for scenario, baseline in pairs:
            values, reference = (seed_values(rows_of[id(s)], metric) for s in (scenario, baseline))
            difference = paired_difference(values, reference, confidence)
            result.rows.append(ScenarioDifference(metric, scenario.label, baseline.label, difference))
    if not result.rows:
        result.omitted = "; ".join(result.notes) if not pairs else "no completed job has a metric to compare yet"
    return result


def baseline_for(scenario: Scenario, baselines: list[Scenario], selector_keys: set[str]) -> Scenario | None:
    """The baseline ``scenario`` is compared with: the only one, or the one with the same settings outside the
    selector's keys (``None`` when no baseline or several have them)."""
    if len(baselines) == 1:
        return baselines[0]
    own = {setting for setting in _settings(scenario) if setting[0] not in selector_keys}
    same = [b for b in baselines if {s for s in _settings(b) if s[0] not in selector_keys} == own]
    return same[0] if len(same) == 1 else None


def seed_values(jobs: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """``{seed: value}`` of the completed jobs (rows of :func:`~ftexp.sweeps.table.job_rows`) that have a seed and
    a number for ``metric``. A seed completed twice in one scenario (a sweep given ``seed=1,1``) is left out: which
    of its values would pair is a guess."""
    found: dict[int, list[float]] = {}
    for row in jobs:
        value = row[metric]
        if row["status"] == RunStatus.COMPLETED and row["seed"] is not None and _is_number(value):
            found.setdefault(row["seed"], []).append(float(value))
    return {seed: values[0] for seed, values in found.items() if len(values) == 1}


def markdown_section(differences: Differences) -> str:
    """The section of ``summary.md``: a heading, what the numbers are, the table and the notes; one line when there is
    no table."""
    if differences.omitted is not None:
        return f"No differences vs a baseline: {differences.omitted} (`--baseline`, or the callback's `baseline`)."
    confidence = differences.rows[0].difference.confidence
    level, quantile = f"{100 * confidence:g} %", f"{100 * (1 - (1 - confidence) / 2):g} %"
    vs = "its baseline (the one with the same other overrides)" if differences.several_baselines else "the baseline"
    lines = [
        f"## Differences vs `{differences.selector}`",
        "",
        f"Each scenario minus {vs}, seed by seed (only seeds completed in both are paired): the mean difference "
        f"and its {level} Student-t interval, mean ± t · sd / √n over the n pairs (sd: their sample std; t: the "
        f"{quantile} quantile of Student's t with n - 1 degrees of freedom, {t_critical(confidence, 2):.2f} for 3 "
        "pairs). Where the interval includes 0, these seeds give no evidence of a difference. Each interval holds "
        "for its own comparison, uncorrected for the many in this table: with 20 comparisons of scenarios that do "
        "not differ, about one interval excludes 0 by chance. The same numbers, with each seed's difference: "
        "`differences.csv`.",
        "",
        f"| metric | scenario | mean diff | {level} interval | pairs (seeds) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in differences.rows:
        difference, digits = row.difference, _digits(row.metric)
        scenario = row.scenario + (f" (vs {row.baseline})" if differences.several_baselines else "")
        interval = (
            f"[{_signed(difference.low, digits)}, {_signed(difference.high, digits)}]"
            if difference.low is not None and difference.high is not None
            else "—"
        )
        mean = _signed(difference.mean, digits) if difference.mean is not None else "n/a"
        cells = [row.metric.replace("_", " "), scenario.replace("|", "\\|"), mean, interval, _pairs(difference)]
        lines.append("| " + " | ".join([*cells, difference.verdict]) + " |")
    if differences.notes:
        lines += ["", "Left out:", "", *(f"- {note}" for note in differences.notes)]
    return "\n".join(lines)


def csv_rows(differences: Differences) -> list[dict[str, Any]]:
    """One row per metric and scenario (:data:`CSV_COLUMNS`), for ``differences.csv``."""
    return [
        {
            "metric": row.metric,
            "scenario": row.scenario,
            "baseline": row.baseline,
            "n_pairs": row.difference.n,
            "seeds": " ".join(str(seed) for seed in row.difference.seeds),
            "differences": " ".join(f"{value:.6g}" for value in row.difference.differences),
            "mean_diff": row.difference.mean,
            "ci_low": row.difference.low,
            "ci_high": row.difference.high,
            "confidence": row.difference.confidence,
            "includes_zero": row.difference.includes_zero,
            "verdict": row.difference.verdict,
        }
        for row in differences.rows
    ]


def _setting(override: str) -> Setting:
    """``("schedule", "nofts")`` for ``schedule=nofts``, ``+schedule=nofts`` and a bare ``nofts`` (see the module
    docstring)."""
    if "=" not in override:
        return ("schedule", override.strip())
    return (override_key(override), override.partition("=")[2].strip())


def _settings(scenario: Scenario) -> set[Setting]:
    return {_setting(override) for override in scenario.key}


def _digits(metric: str) -> int:
    """As the table shows the metric: losses with 4 decimals, accuracies with 3."""
    return 4 if metric.endswith("loss") else 3


def _signed(value: float, digits: int) -> str:
    """``+0.012``, ``-0.0040``; a value that rounds to 0 is ``+0.000`` (not ``-0.000``, a sign without a number)."""
    return f"{value if round(value, digits) != 0 else 0.0:+.{digits}f}"


def _pairs(difference: PairedDifference) -> str:
    """``3 (1, 2, 3)``: how many pairs and, up to :data:`~ftexp.sweeps.table.MAX_SEEDS_LISTED`, their seeds."""
    if not difference.seeds or len(difference.seeds) > MAX_SEEDS_LISTED:
        return str(difference.n)
    return f"{difference.n} ({', '.join(str(seed) for seed in difference.seeds)})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
