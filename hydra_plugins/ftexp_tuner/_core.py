"""What :meth:`~hydra_plugins.ftexp_tuner.tuner.OptunaTuner.sweep` runs: one Optuna study per scenario, trials asked
and told through Optuna's ask/tell API and run as jobs of the configured launcher, then each scenario's best
configuration over the final seeds. Imported by ``sweep`` only: the leading underscore keeps Hydra's plugin scan,
which runs on every start, from importing it (and Optuna with it).

Files in the sweep dir::

    tuning.db                       the studies (SQLite; hydra.sweeper.storage for another Optuna RDB storage)
    tuning.md, tuning.csv           per scenario, its trials and its best; rewritten after every batch of trials
    tuning/<scenario>/trial<NNN>/   one trial's job dir (``tuning/<scenario>`` gets its own trial summary)
    tuning/superseded/              final runs of an earlier best, moved aside when a resumed tuning found another
    <num>_<overrides>/              the final runs, named and summarized as any sweep's jobs
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import Trial, TrialState

from ftexp.sweeps.runs import load_job
from hydra_plugins.ftexp_tuner import _records
from hydra_plugins.ftexp_tuner import _trials as trial_info
from hydra_plugins.ftexp_tuner._settings import (
    SEED_KEY,
    Plan,
    Scenario,
    SearchParam,
    TuningConfigError,
    param_overrides,
    plan,
    quoted,
)

if TYPE_CHECKING:
    from hydra_plugins.ftexp_tuner.tuner import OptunaTuner

log = logging.getLogger("hydra_plugins.ftexp_tuner")

TUNING_DIR = "tuning"
SUPERSEDED_DIR = "superseded"
STUDY_FILE = "tuning.db"
METRIC_ATTR = "optimized_metric"  # a study's user attr: what it tunes, checked when a tuning resumes


@dataclass
class Tuning:
    """One tuning: the sweeper's settings and Hydra's objects, the plan, the studies by scenario."""

    tuner: OptunaTuner
    plan: Plan
    sweep_dir: Path
    storage: optuna.storages.RDBStorage
    studies: dict[Scenario, optuna.Study]

    @property
    def n_final_jobs(self) -> int:
        return len(self.plan.scenarios) * len(self.tuner.final_seeds)


def tune(tuner: OptunaTuner, arguments: Sequence[str]) -> list[Sequence[JobReturn]]:
    """Tune every scenario, then run each one's best configuration over the final seeds; the launchers' returns,
    batch by batch. A failed trial is recorded in its study; a failed final run fails the sweep at the end, as a
    failed job of Hydra's basic sweeper does (after every final run has run and the records are written)."""
    assert tuner.config is not None and tuner.hydra_context is not None and tuner.launcher is not None
    parser = OverridesParser.create(config_loader=tuner.hydra_context.config_loader)
    the_plan = plan(tuner.scenarios, arguments, tuner.space, parser)
    for scenario in the_plan.scenarios:  # a misspelt key fails here, before any directory or study exists
        tuner.validate_batch_is_legal([job_overrides(the_plan, scenario, tuner.space, _some_params(tuner.space), 0)])
    sweep_dir = Path(str(tuner.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(tuner.config, sweep_dir / "multirun.yaml")
    storage = optuna.storages.RDBStorage(tuner.storage or f"sqlite:///{(sweep_dir / STUDY_FILE).absolute()}")
    studies = {scenario: open_study(tuner, storage, scenario) for scenario in the_plan.scenarios}
    tuning = Tuning(tuner, the_plan, sweep_dir, storage, studies)
    log.info(
        f"Tuning {len(studies)} scenario(s), {tuner.n_trials} trials each ({tuner.direction} "
        f"{tuner.config.optimized_metric}); studies: {storage.url}; sweep dir: {sweep_dir}"
    )
    for study in studies.values():
        rerun_interrupted(tuning, study)
    returns = []
    for scenario, study in studies.items():
        while (size := min(tuner.parallel_trials, trial_info.trials_left(study, tuner.n_trials))) > 0:
            returns.append(run_trials(tuning, scenario, study, size))
            _records.write(tuning)
    final = run_final(tuning)
    _records.write(tuning)
    for ret in final:
        _ = ret.return_value  # raises the job's error, as Hydra's basic sweeper does
    return [*returns, final]


def open_study(tuner: OptunaTuner, storage: optuna.storages.RDBStorage, scenario: Scenario) -> optuna.Study:
    """The scenario's study, created or, when the storage has it (a resumed tuning), loaded; a loaded study must
    have been tuning the same metric in the same direction (Optuna itself would load it with its own direction).

    Its TPE sampler is seeded with ``sampler_seed`` plus the number of trials the study already holds: the sampler's
    random state is not stored, and the same seed again would draw the first trials' random params again."""
    assert tuner.config is not None
    metric = str(tuner.config.optimized_metric)
    study = optuna.create_study(
        storage=storage, study_name=scenario.label, direction=tuner.direction, load_if_exists=True
    )
    tuned = study.user_attrs.get(METRIC_ATTR, metric), study.direction.name.lower()
    if tuned != (metric, tuner.direction):
        raise TuningConfigError(
            f"the study {scenario.label!r} in {storage.url} tunes {tuned[1]} {tuned[0]}, this tuning "
            f"{tuner.direction} {metric}: resume with the same optimized_metric, or start a new sweep dir"
        )
    study.set_user_attr(METRIC_ATTR, metric)
    # the final runs' job numbers follow from the scenario's place and the final seeds: a resume that changed them
    # would renumber completed runs and take them for an earlier best's
    numbering = {"scenario_index": scenario.index, "final_seeds": list(tuner.final_seeds)}
    before = {key: study.user_attrs.get(key, value) for key, value in numbering.items()}
    if before != numbering:
        raise TuningConfigError(
            f"the study {scenario.label!r} in {storage.url} was tuned as scenario {before['scenario_index']} of the "
            f"sweep with final_seeds {before['final_seeds']}, this tuning has it as {numbering['scenario_index']} with "
            f"{numbering['final_seeds']}: resume with the same scenarios, in the same order, and the same final_seeds, "
            "or start a new sweep dir"
        )
    for key, value in numbering.items():
        study.set_user_attr(key, value)
    seed = tuner.sampler_seed + len(study.get_trials(deepcopy=False))
    # trials asked together: TPE counts those still running as "constant liars" (their worst value), so that a batch
    # does not sample one point N times (Optuna 5's default; 4 has it too, as an experimental option)
    study.sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=tuner.n_startup_trials, constant_liar=tuner.parallel_trials > 1
    )
    return study


def rerun_interrupted(tuning: Tuning, study: optuna.Study) -> None:
    """A trial still RUNNING when a tuning starts was cut short when an earlier tuning stopped (only this process
    tells trials): mark it failed and interrupted, which does not count it toward ``n_trials``, and enqueue its
    params, so that the same configuration runs again as the next trial (a trial stopped before it had params
    is just replaced by a new one)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _set_user_attr(tuning.storage, study, trial.number, trial_info.INTERRUPTED, True)
        _set_user_attr(tuning.storage, study, trial.number, trial_info.ERROR, "interrupted: the tuning stopped first")
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={trial_info.RERUN_OF: trial.number})
        log.warning(f"{study.study_name}: trial {trial.number} was interrupted; {_rerun(trial.params)}")


def _rerun(params: dict[str, Any]) -> str:
    return "its params run again" if params else "it had no params yet: a new trial replaces it"


def _set_user_attr(storage: optuna.storages.RDBStorage, study: optuna.Study, number: int, key: str, value: object):
    """A user attr on a trial known by its number (a trial of an earlier process: no ``Trial`` object), through the
    storage's public API."""
    study_id = storage.get_study_id_from_name(study.study_name)
    storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study_id, number), key, value)


def suggest(trial: Trial, param: SearchParam) -> None:
    """Sample the param into the trial from its distribution (checked by :func:`._settings.search_param`); an
    enqueued trial gets its own value (Optuna warns when it lies outside the range)."""
    if param.type == "categorical":
        trial.suggest_categorical(param.key, list(param.choices))
    elif param.type == "int":
        trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    else:
        trial.suggest_float(param.key, float(param.low), float(param.high), step=param.step, log=param.log)


def ask(study: optuna.Study, space: Sequence[SearchParam]) -> tuple[Trial, str | None]:
    """The next trial (an enqueued one first) with its params; ``(trial, why not)`` when an enqueued trial's params
    cannot be taken (a negative value of a log-scale param, a choice the search space no longer has): that trial is
    then failed without a job, rather than stopping this and every resumed tuning."""
    trial = study.ask()
    try:
        for param in space:
            suggest(trial, param)
    except ValueError as err:
        return trial, f"its params do not fit the search space: {err}"
    return trial, None


def _some_params(space: Sequence[SearchParam]) -> dict[str, object]:
    """A point of the search space (each low bound, or first choice): what the config check composes."""
    return {param.key: param.choices[0] if param.type == "categorical" else param.low for param in space}


def job_overrides(
    the_plan: Plan, scenario: Scenario, space: Sequence[SearchParam], params: dict[str, Any], seed: int
) -> list[str]:
    """A job's overrides: the scenario's, the params', the seed, then the command line's (in this order, as Hydra's
    basic sweeper puts a sweep's own before the command line's, so that they lead the job dir's name)."""
    return [*scenario.overrides, *param_overrides(space, params), f"{SEED_KEY}={seed}", *the_plan.fixed]


def run_trials(tuning: Tuning, scenario: Scenario, study: optuna.Study, size: int) -> Sequence[JobReturn]:
    """Ask ``size`` trials, run them as one batch of the launcher, tell the study each one's outcome."""
    tuner = tuning.tuner
    first_job = tuning.n_final_jobs + sum(len(s.get_trials(deepcopy=False)) for s in tuning.studies.values())
    trials = []
    for trial, problem in (ask(study, tuner.space) for _ in range(size)):
        if problem is None:
            trials.append(trial)
        else:
            fail(study, trial, problem)
    batch = []
    for trial in trials:
        # the scenario's tuning dir is the trials' sweep dir: the summary callback tables them there, and the sweep's
        # own summary (which skips tuning/) covers the final runs only
        where, subdir = tuning.sweep_dir / TUNING_DIR / scenario.slug, f"trial{trial.number:03d}"
        overrides = job_overrides(tuning.plan, scenario, tuner.space, trial.params, tuner.tuning_seed)
        # test=false last, after the command line's: a trial is judged on the validation split and never looks at
        # the test split
        dirs = [f"hydra.sweep.dir={quoted(str(where))}", f"hydra.sweep.subdir={subdir}"]
        batch.append([*overrides, "test=false", *dirs])
        trial.set_user_attr(trial_info.OVERRIDES, param_overrides(tuner.space, trial.params))
        trial.set_user_attr(trial_info.JOB_DIR, (where / subdir).relative_to(tuning.sweep_dir).as_posix())
    if not batch:
        return []
    log.info(f"{study.study_name}: trials {', '.join(str(t.number) for t in trials)} of {tuner.n_trials}")
    returns = tuner.launcher.launch(batch, initial_job_idx=first_job)
    for trial, ret in zip(trials, returns, strict=True):
        tell(study, trial, ret, str(tuner.config.optimized_metric))
    return returns


def tell(study: optuna.Study, trial: Trial, ret: JobReturn, metric: str) -> None:
    """The job's value, or its failure with the error (a failed job, or no finite value of the metric)."""
    value, error = outcome(ret, metric)
    if error is None:
        study.tell(trial, value)
        log.info(
            f"{study.study_name}: trial {trial.number} {' '.join(trial.user_attrs[trial_info.OVERRIDES])}: {value:.4g}"
        )
    else:
        fail(study, trial, error)


def fail(study: optuna.Study, trial: Trial, error: str) -> None:
    """Tell the study the trial failed, keeping why (its ``error`` user attr, tuning.md)."""
    trial.set_user_attr(trial_info.ERROR, error)
    study.tell(trial, state=TrialState.FAIL)
    log.warning(f"{study.study_name}: trial {trial.number} failed: {error}")


def outcome(ret: JobReturn, metric: str) -> tuple[float | None, str | None]:
    """``(value, None)`` for a job that returned a finite number, else ``(None, why not)``."""
    try:
        value = ret.return_value  # a failed job's raises the exception the job raised
    except Exception as error:
        return None, f"{type(error).__name__}: {error}"
    if ret.status is not JobStatus.COMPLETED:
        return None, f"the job ended {ret.status.name}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None, f"the run returned {value!r} as its best {metric}, not a finite number"
    return float(value), None


def run_final(tuning: Tuning) -> list[JobReturn]:
    """Each scenario's best params over the final seeds, as ordinary sweep jobs numbered ``scenario index x seeds +
    seed index``; a job whose dir already holds a completed run (a resumed tuning) is not run again."""
    tuner, seeds = tuning.tuner, tuning.tuner.final_seeds
    jobs: list[tuple[int, list[str]]] = []
    for scenario, study in tuning.studies.items():
        best = trial_info.best_trial(study)
        if best is None:
            log.warning(f"{scenario.label}: no completed trial, so no final runs (tuning.md lists its errors)")
            continue
        for i, seed in enumerate(seeds):
            jobs.append(
                (scenario.index * len(seeds) + i, job_overrides(tuning.plan, scenario, tuner.space, best.params, seed))
            )
    pending = []
    for num, overrides in jobs:
        job_dir = final_job_dir(tuner, num, overrides)
        set_aside_superseded(tuning.sweep_dir, num, job_dir)
        if job_dir.is_dir() and load_job(job_dir).completed:
            log.info(f"#{num} {job_dir.name}: completed before, not run again")
        else:
            pending.append((num, overrides))
    returns: list[JobReturn] = []
    for run in consecutive_runs(pending):  # the launcher numbers a batch's jobs consecutively
        returns += tuner.launcher.launch([overrides for _, overrides in run], initial_job_idx=run[0][0])
    return returns


def final_job_dir(tuner: OptunaTuner, num: int, overrides: list[str]) -> Path:
    """Where job ``num`` with these overrides writes: the sweep's ``hydra.sweep.subdir`` resolved as the launcher
    resolves it (``<num>_<the overrides that set it apart>``)."""
    assert tuner.hydra_context is not None and tuner.config is not None
    config: DictConfig = tuner.hydra_context.config_loader.load_sweep_config(tuner.config, list(overrides))
    with open_dict(config):
        config.hydra.job.num = num
    return Path(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir))


def set_aside_superseded(sweep_dir: Path, num: int, job_dir: Path) -> None:
    """Move final run ``num`` of an earlier best (the same number, other overrides) to ``tuning/superseded/``, so
    that the sweep's summary shows each scenario at its current best only; nothing is deleted."""
    for old in sweep_dir.glob(f"{num}_*"):
        if old.is_dir() and old.resolve() != job_dir.resolve() and (old / ".hydra").is_dir():
            target = sweep_dir / TUNING_DIR / SUPERSEDED_DIR / old.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(old, _free_name(target))
            log.info(f"#{num} {old.name}: a final run of an earlier best, moved to {target.parent}")


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def consecutive_runs(jobs: list[tuple[int, list[str]]]) -> list[list[tuple[int, list[str]]]]:
    """``jobs`` (sorted by number) split where a number is skipped: [(0, a), (1, b), (3, c)] -> [[0, 1], [3]]."""
    runs: list[list[tuple[int, list[str]]]] = []
    for job in jobs:
        if runs and runs[-1][-1][0] + 1 == job[0]:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs
