"""What a study's trials say, read the same way by the tuning (:mod:`._core`) and its records (:mod:`._records`): the
user attrs the tuner sets, a trial's state in words, which trials use up the budget, a study's best."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

# user attrs of a trial: why it failed; that an interrupted tuning cut it short (its params then run again, as a
# trial whose RERUN_OF is its number); the overrides its job ran; its job dir
ERROR = "error"
INTERRUPTED = "interrupted"
RERUN_OF = "rerun_of"
OVERRIDES = "overrides"
JOB_DIR = "job_dir"


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Completed and failed trials use up ``n_trials``; one cut short by an interruption does not (it runs again)."""
    if trial.state == TrialState.FAIL:
        return not trial.user_attrs.get(INTERRUPTED, False)
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def trials_left(study: optuna.Study, n_trials: int) -> int:
    return max(0, n_trials - sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False)))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best completed trial; ``None`` without any."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def state(trial: FrozenTrial) -> str:
    """``completed``, ``failed``, ``interrupted`` (failed, to run again), ``running``, ``waiting`` (enqueued)."""
    if trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED):
        return "interrupted"
    return {TrialState.COMPLETE: "completed", TrialState.FAIL: "failed"}.get(trial.state, trial.state.name.lower())
