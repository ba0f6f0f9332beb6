"""``python -m ftexp [overrides]``: compose the config tree in ``ftexp/conf`` and run :func:`ftexp.train.run`."""

import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from ftexp.config import CONFIG_DIR, unknown_override_hints


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Returns the run's best ``optimized_metric``, the value a Hydra sweeper optimizes (``None`` for a dry run)."""
    quiet_known_noise()
    # imported here, not at the top: a mistyped group or key fails while Hydra composes, before torch loads
    from ftexp.train import run

    return run(cfg)["best"].get(cfg.optimized_metric)


def quiet_known_noise() -> None:
    """Silence, for this entry point only and by exact message, output that says nothing about the run and buries
    the ftexp: lines; library users keep Lightning's defaults."""
    # Lightning advertises a hosted logger on every run (a tip, not a problem of the run)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")
    )
    # once SLURM is installed, every local run is told that srun is not used: jobs meant for SLURM go through
    # hardware=slurm / slurm_cpu, which start them under SLURM themselves
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")


if __name__ == "__main__":
    try:
        main()
    except SystemExit as stop:
        if stop.code:  # Hydra reported an error; add "did you mean" for override keys the config does not have
            for hint in unknown_override_hints(sys.argv[1:], CONFIG_DIR):
                print(hint, file=sys.stderr)
        raise
