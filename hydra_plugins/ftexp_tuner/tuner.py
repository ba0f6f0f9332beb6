"""A Hydra sweeper that tunes each scenario's hyperparameters with Optuna, then runs each scenario's best
configuration over the final seeds.

Per scenario (a combination of ``scenarios`` values, e.g. ``schedule=nofts``), one Optuna study with a seeded TPE
sampler: ``n_trials`` trials, asked ``parallel_trials`` at a time through Optuna's ask/tell API and run as one batch
of whichever launcher the config selects (basic, ``hardware=local_gpus``, ``hardware=slurm``), every trial at
``seed=<tuning_seed>``; each job returns its best ``optimized_metric`` on the validation split, which the study is
told. A failed job (or one without a finite value) is told as a failed trial, with its error, and the tuning goes
on. Then each scenario with a completed trial runs its best params once per ``final_seeds`` seed, as the jobs of an
ordinary sweep: named by their overrides (the tuned values included), summarized by the sweep's callback.

The studies live in ``<sweep dir>/tuning.db`` (SQLite): the same command with ``hydra.sweep.dir=<that dir>`` resumes
a tuning that stopped, running only the trials left and the final runs not completed; a trial the stop cut short
runs again with the same params. Files: :mod:`._core`.

Config: ``hydra/sweeper=ftexp_optuna``, the dataclass in :mod:`.config`; ``+sweep=tune`` selects it. As in Hydra's
own plugins, this module, which Hydra's plugin scan imports on every start, holds only the class; ``sweep`` imports
the machinery (and Optuna).
"""

# no `from __future__ import annotations`: Hydra's plugin scan may execute this module before it is in sys.modules
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ftexp_tuner._settings import SearchParam, check_counts, check_direction, check_search_space


class OptunaTuner(Sweeper):
    """Tunes each scenario with Optuna, then runs its best configuration over the final seeds (module docstring)."""

    def __init__(
        self,
        scenarios: Mapping[str, Sequence[Any]],
        search_space: Mapping[str, Any],
        n_trials: int,
        parallel_trials: int = 1,
        n_startup_trials: int = 10,
        sampler_seed: int = 0,
        tuning_seed: int = 0,
        final_seeds: Sequence[int] = (1, 2, 3),
        direction: str | None = None,
        storage: str | None = None,
    ) -> None:
        self.scenarios = _plain(scenarios)
        self.search_space = _plain(search_space)
        self.n_trials = n_trials
        self.parallel_trials = parallel_trials
        self.n_startup_trials = n_startup_trials
        self.sampler_seed = sampler_seed
        self.tuning_seed = tuning_seed
        self.final_seeds = list(_plain(final_seeds))
        self.direction = direction
        self.storage = storage
        self.space: tuple[SearchParam, ...] = ()  # the checked search space, from setup()
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        # the settings first: a search space that cannot work fails before the launcher or any directory exists
        self.space = check_search_space(self.search_space)
        self.direction = check_direction(self.direction, config.get("optimized_metric"))
        check_counts(self.n_trials, self.parallel_trials, self.n_startup_trials, self.final_seeds)
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        from hydra_plugins.ftexp_tuner import _core  # Optuna and the tuning: only when a tuning runs

        return _core.tune(self, arguments)


def _plain(value: Any) -> Any:
    """A config node as plain Python containers (Hydra passes DictConfig and ListConfig)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
