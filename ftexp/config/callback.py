"""The Hydra callback that validates a config before Hydra creates the run or sweep dir (``hydra.callbacks`` in
``ftexp/conf/config.yaml``): a failed start touches nothing, not even an earlier run's dir that ``hydra.run.dir``
points at. A module of its own because it is the one piece that depends on Hydra's run-time state.
"""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
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
        # ${hydra:runtime.output_dir} resolves only once Hydra has set up the job: validate a copy in which it is the
        # directory Hydra is about to create, as run_job() will set it
        job = copy.deepcopy(config)
        with open_dict(job.hydra.runtime):
            job.hydra.runtime.output_dir = str(Path(str(OmegaConf.select(job, dir_key))).absolute())
        hydra_config = HydraConfig.instance()
        previous = hydra_config.cfg
        hydra_config.set_config(job)
        try:
            problems = config_problems(job)
        finally:
            hydra_config.cfg = previous
        if problems:
            print(ConfigError(problems), file=sys.stderr)
            sys.exit(1)
