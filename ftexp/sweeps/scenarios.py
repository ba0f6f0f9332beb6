"""Group the jobs of a sweep into scenarios: the same overrides except the seed.

Overrides that say where or how a job runs rather than what it trains are not part of a scenario: the seed,
``+sweep=...``, ``hardware`` and ``hydra.*`` / ``hydra/...``. A scenario's label shows only the overrides that differ
between the scenarios of the sweep (``schedule=explicit lr_reinit=implicit``); the ones all share are
:attr:`ScenarioSet.common`. Jobs left with no scenario override (none recorded, or only a seed) fall back to
``result["scenario"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftexp.overrides import override_key, varies_between_jobs
from ftexp.sweeps.runs import Job


@dataclass
class Scenario:
    key: tuple[str, ...]  # the scenario's overrides, sorted: equal for all its seeds
    label: str
    jobs: list[Job] = field(default_factory=list)

    @property
    def completed(self) -> list[Job]:
        return [job for job in self.jobs if job.completed]


@dataclass
class ScenarioSet:
    scenarios: list[Scenario]
    common: list[str]  # overrides every scenario shares (left out of the labels)

    def __iter__(self):
        return iter(self.scenarios)

    def __len__(self) -> int:
        return len(self.scenarios)


def is_scenario_override(override: str) -> bool:
    """Whether an override changes what a job trains: one that varies between the jobs of a sweep
    (:func:`ftexp.overrides.varies_between_jobs`, the rule that also names the job dirs), except the seed, whose jobs
    repeat one scenario."""
    return varies_between_jobs(override) and override_key(override) != "seed"


def scenario_overrides(job: Job) -> list[str]:
    """The job's scenario overrides in command-line order; ``[result["scenario"]]`` when it has none (a run started
    without overrides, or with only a seed), so that such runs group by what they trained."""
    overrides = [o for o in job.overrides if is_scenario_override(o)]
    if not overrides and job.scenario_name:
        return [job.scenario_name]
    return overrides


def group_scenarios(jobs: list[Job]) -> ScenarioSet:
    """One scenario per distinct set of scenario overrides, in sweep order (the first job of each; ``jobs`` come
    sorted by :func:`ftexp.sweeps.runs.load_jobs`), labelled by what differs between them.

    >>> [s.label for s in group_scenarios(load_jobs(sweep_dir))]  # doctest: +SKIP
    ['schedule=nofts', 'schedule=implicit', 'schedule=explicit']
    """
    by_key: dict[tuple[str, ...], tuple[list[str], list[Job]]] = {}
    for job in jobs:
        overrides = scenario_overrides(job)
        by_key.setdefault(tuple(sorted(overrides)), (overrides, []))[1].append(job)
    keys = list(by_key)
    common = [o for o in by_key[keys[0]][0] if all(o in key for key in keys)] if keys else []
    scenarios = []
    for key, (overrides, members) in by_key.items():
        differing = [o for o in overrides if o not in common]
        if len(by_key) == 1:
            label = " ".join(overrides) or members[0].scenario_name or "(no overrides)"
        else:
            label = " ".join(differing) or "(common overrides only)"
        scenarios.append(Scenario(key=key, label=label, jobs=members))
    return ScenarioSet(scenarios=scenarios, common=common if len(scenarios) > 1 else [])
