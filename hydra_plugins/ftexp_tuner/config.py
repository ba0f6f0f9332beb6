"""The config of the tuning sweeper, registered in Hydra's ConfigStore as ``hydra/sweeper=ftexp_optuna``.

``+sweep=tune`` (``ftexp/conf/sweep/tune.yaml``) selects it with the demo's scenarios and search space::

    python -m ftexp +sweep=tune
    python -m ftexp +sweep=tune experiment=offline_transfer hardware=slurm hydra.sweeper.parallel_trials=8

Print it with ``python -m ftexp +sweep=tune --cfg hydra -p hydra.sweeper``. Hydra imports this module on every start
(its plugin scan), so it holds the dataclass and nothing else.
"""

# no `from __future__ import annotations`: Hydra's plugin scan may execute this module before it is in sys.modules,
# where the ConfigStore cannot resolve string annotations
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaTunerConf:
    """Tune each scenario's hyperparameters on the validation split with Optuna's TPE sampler (one study per
    scenario), each trial a job of the configured launcher; then run each scenario's best configuration once per
    final seed, as an ordinary sweep whose summary compares the scenarios. The study storage (SQLite in the sweep
    dir by default) makes a rerun with ``hydra.sweep.dir=<that dir>`` resume where the tuning stopped.
    """

    _target_: str = "hydra_plugins.ftexp_tuner.tuner.OptunaTuner"
    # override key -> values; their product is the set of scenarios, each tuned in a study of its own, e.g.
    # {schedule: [nofts, explicit]}. A comma list on the command line (schedule=nofts,implicit) replaces an axis.
    scenarios: dict[str, list[Any]] = field(default_factory=dict)
    # override key -> {type: float | int | categorical, low, high, log, step, choices}; the key dotted or nested,
    # model: {optimizer: {lr: {type: float, ...}}}, which the command line reaches field by field:
    # hydra.sweeper.search_space.model.optimizer.lr.high=1e-4
    search_space: dict[str, Any] = field(default_factory=dict)
    # trials per scenario (completed and failed ones count; a trial cut short by an interruption does not)
    n_trials: int = 10
    # trials asked together and launched as one batch of the launcher: > 1 for local_gpus or SLURM
    parallel_trials: int = 1
    # TPE samples at random for this many trials of a study before it models the results (Optuna's default: 10)
    n_startup_trials: int = 10
    sampler_seed: int = 0
    # the `seed=` of every trial: the tuning never sees the final seeds
    tuning_seed: int = 0
    # each scenario's best configuration runs once per seed ([]: tune only)
    final_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    # minimize | maximize; null: from optimized_metric (minimize a name holding "loss", maximize one holding "acc")
    direction: str | None = None
    # an Optuna storage URL; null: sqlite:///<sweep dir>/tuning.db
    storage: str | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="ftexp_optuna", node=OptunaTunerConf, provider="ftexp_tuner")
