"""``python -m ftexp [overrides]``: compose the config tree in ``ftexp/conf`` and run :func:`ftexp.train.run`."""

import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from ftexp.config import CONFIG_DIR, ConfigError, refused_override_keys


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
    # torch 2.13 deprecates LeafSpec, which Lightning 2.6's own pytree helper still builds once per fit: a note to
    # Lightning's developers, about none of our code and nothing a user can change
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )


def refuse_unknown_override_keys(argv: list[str]) -> None:
    """End the process with one message when a command-line key is not in the config. Hydra would refuse it too,
    but while composing, and with the advice to add it with ``+``, which only moves the error to the Trainer."""
    refused = refused_override_keys(argv, CONFIG_DIR)
    if refused:
        print(ConfigError(refused), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    refuse_unknown_override_keys(sys.argv[1:])
    main()
