"""ftexp's tuning sweeper: per-scenario hyperparameter search with Optuna, then each scenario's best configuration
over the final seeds. Laid out as the launchers (:mod:`hydra_plugins.ftexp_launchers`) and Hydra's own plugins.

Hydra imports every module under the ``hydra_plugins`` namespace package on every start, except those whose name
starts with one underscore, so the modules it imports hold nothing heavier than Hydra:

- ``config.py``: the sweeper's config dataclass, registered in Hydra's ConfigStore as ``hydra/sweeper=ftexp_optuna``;
- ``tuner.py``: the ``Sweeper`` class Hydra instantiates from it;
- ``_settings.py``: the config and the command line checked and turned into scenarios and a search space, before
  any directory is created;
- ``_core.py``: the tuning itself (Optuna studies, trials through the launcher, resume, the final runs), imported by
  ``sweep`` only;
- ``_trials.py``: what a study's trials say (state, budget, best), for ``_core`` and ``_records``;
- ``_records.py``: ``tuning.md`` and ``tuning.csv`` in the sweep dir.

Why not Hydra's own Optuna sweeper (hydra-optuna-sweeper): its latest release (1.3.0) requires optuna < 3, so it
would pin this project to an optuna several major versions old (the current one is 5.x).
"""
