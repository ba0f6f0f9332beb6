"""The Hydra callbacks that act before Hydra creates the run or sweep dir (``hydra.callbacks`` in
``ftexp/conf/config.yaml``): :class:`ValidateConfig`, so that a failed start touches nothing, not even an earlier
run's dir that ``hydra.run.dir`` points at, and :class:`DryRunPlan`, so that ``dry_run=true`` leaves nothing behind.
A module of its own because it is the one piece that depends on Hydra's run-time state.
"""

from __future__ import annotations

import copy
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf, open_dict

from ftexp.config.rules import SLURM_LAUNCHER
from ftexp.config.validate import ConfigError, config_problems


class ValidateConfig(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in config.yaml): validate before Hydra creates the run or sweep dir.

    Hydra turns exceptions raised by callbacks into warnings and carries on, so an invalid config ends the process
    here: the problems go to stderr and the exit status is 1, as for Hydra's own composition errors.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate_or_exit(config, "hydra.run.dir")
        launcher = config.hydra.get("launcher")
        if launcher is not None and launcher.get("_target_") == SLURM_LAUNCHER:
            warnings.warn(
                "hydra.launcher is submitit_slurm, which Hydra uses in multirun mode only (python -m ftexp -m ...): "
                "this run trains on this machine",
                stacklevel=1,
            )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate_or_exit(config, "hydra.sweep.dir")

    @staticmethod
    def _validate_or_exit(config: DictConfig, dir_key: str) -> None:
        with as_the_job_sees_it(config, dir_key) as job:
            problems = config_problems(job)
        if problems:
            print(ConfigError(problems), file=sys.stderr)
            sys.exit(1)


class DryRunPlan(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in config.yaml, after :class:`ValidateConfig`): for ``dry_run=true``,
    print the phase plan (:func:`ftexp.dry_run.dry_run`) and end the process before Hydra's job runner creates the
    run dir, ``.hydra/`` and ``train.log``: a dry run leaves nothing behind. The exit status is 1 when the plan
    finds problems. (A sweep, ``-m``, with ``dry_run=true`` still gets Hydra's sweep and job dirs: its jobs print
    their plans from :func:`ftexp.train.run`.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("dry_run"):
            return
        from ftexp.dry_run import dry_run  # torch and the model code: only for a dry run

        with as_the_job_sees_it(config, "hydra.run.dir") as job:
            try:
                dry_run(job)
            except CompactHydraException as err:  # ConfigError: the problems are listed under the table
                print(err, file=sys.stderr)
                sys.exit(1)
            except Exception:  # Hydra would only warn about a callback's error, and then run the job
                traceback.print_exc()
                sys.exit(1)
        sys.exit(0)


@contextmanager
def as_the_job_sees_it(config: DictConfig, dir_key: str) -> Iterator[DictConfig]:
    """A copy of ``config`` in which ``${hydra:runtime.output_dir}`` is the directory Hydra is about to create at
    ``dir_key`` (as run_job() will set it; it resolves only once Hydra has set up the job), installed as Hydra's
    config while the block runs. Nothing is created."""
    job = copy.deepcopy(config)
    with open_dict(job.hydra.runtime):
        job.hydra.runtime.output_dir = str(Path(str(OmegaConf.select(job, dir_key))).absolute())
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(job)
    try:
        yield job
    finally:
        hydra_config.cfg = previous
