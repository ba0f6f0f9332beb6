"""``tuning.md`` and ``tuning.csv`` in the sweep dir: what the studies hold, readable without Optuna.

``tuning.md``: one row per scenario (trials completed and failed, the best value, its params and trial), then one row
per trial (params as the job ran them, value, state, error). ``tuning.csv``: the trial rows, with each scenario's best
marked. Both are rewritten whole (atomically) after every batch of trials and at the end."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from ftexp.files import atomic_write
from hydra_plugins.ftexp_tuner import _trials as trial_info
from hydra_plugins.ftexp_tuner._settings import override_value

if TYPE_CHECKING:
    from hydra_plugins.ftexp_tuner._core import Tuning

MARKDOWN = "tuning.md"
CSV = "tuning.csv"


def write(tuning: Tuning) -> None:
    scenarios, trials = scenario_rows(tuning), trial_rows(tuning)
    atomic_write(tuning.sweep_dir / MARKDOWN, lambda path: path.write_text(markdown(tuning, scenarios, trials)))
    atomic_write(tuning.sweep_dir / CSV, lambda path: path.write_text(csv_text(trials)))


def scenario_rows(tuning: Tuning) -> list[dict[str, Any]]:
    rows = []
    for scenario, study in tuning.studies.items():
        trials = study.get_trials(deepcopy=False)
        best = trial_info.best_trial(study)
        rows.append(
            {
                "scenario": scenario.label,
                "completed": sum(t.state == TrialState.COMPLETE for t in trials),
                "failed": sum(t.state == TrialState.FAIL for t in trials),
                "best value": _number(best.value) if best else "",
                "best params": " ".join(f"{k}={v}" for k, v in _params(tuning, best).items()) if best else "",
                "best trial": best.number if best else "",
            }
        )
    return rows


def trial_rows(tuning: Tuning) -> list[dict[str, Any]]:
    metric = str(tuning.tuner.config.optimized_metric)
    rows = []
    for scenario, study in tuning.studies.items():
        best = trial_info.best_trial(study)
        for trial in study.get_trials(deepcopy=False):
            rows.append(
                {
                    "scenario": scenario.label,
                    "trial": trial.number,
                    **_params(tuning, trial),
                    metric: _number(trial.value),
                    "state": trial_info.state(trial),
                    "best": best is not None and trial.number == best.number,
                    "error": trial.user_attrs.get(trial_info.ERROR, ""),
                    "job_dir": trial.user_attrs.get(trial_info.JOB_DIR, ""),
                }
            )
    return rows


def _params(tuning: Tuning, trial: FrozenTrial) -> dict[str, str]:
    """The trial's params as its job's overrides wrote them (``0.001``), by key in the search space's order."""
    return {p.key: override_value(trial.params[p.key]) for p in tuning.tuner.space if p.key in trial.params}


def markdown(tuning: Tuning, scenarios: list[dict[str, Any]], trials: list[dict[str, Any]]) -> str:
    tuner = tuning.tuner
    metric = str(tuner.config.optimized_metric)
    seeds = ", ".join(str(seed) for seed in tuner.final_seeds) or "none"
    lines = [
        f"# Tuning: {tuner.direction} {metric}",
        "",
        f"Optuna TPE (sampler seed {tuner.sampler_seed}, {tuner.n_startup_trials} random trials first), "
        f"{tuner.n_trials} trials per scenario at seed {tuner.tuning_seed}, {tuner.parallel_trials} at a time; "
        f"each scenario's best then runs with seeds {seeds} (the sweep's summary.md). Studies: "
        f"`{tuning.storage.url}`.",
        "",
        _table(scenarios),
        "",
        "## Trials",
        "",
        _table([{key: value for key, value in row.items() if key not in ("best", "job_dir")} for row in trials]),
        "",
    ]
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none yet)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (str(row.get(column, "")).replace("|", "\\|").replace("\n", " ") for column in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
