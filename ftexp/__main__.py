"""``python -m ftexp [overrides]``: compose the config tree in ``ftexp/conf`` and run :func:`ftexp.train.run`."""

import sys

import hydra
from omegaconf import DictConfig

from ftexp.config import CONFIG_DIR, unknown_override_hints


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Returns the run's best ``optimized_metric``, the value a Hydra sweeper optimizes (``None`` for a dry run)."""
    # imported here, not at the top: a mistyped group or key fails while Hydra composes, before torch loads
    from ftexp.train import run

    return run(cfg)["best"].get(cfg.optimized_metric)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as stop:
        if stop.code:  # Hydra reported an error; add "did you mean" for override keys the config does not have
            for hint in unknown_override_hints(sys.argv[1:], CONFIG_DIR):
                print(hint, file=sys.stderr)
        raise
