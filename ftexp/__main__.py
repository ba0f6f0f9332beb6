"""``python -m ftexp [overrides]``: compose the config tree in ``ftexp/conf`` and run :func:`ftexp.train.run`."""

import hydra
from omegaconf import DictConfig

from ftexp.train import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Returns the run's best ``optimized_metric``, the value a Hydra sweeper optimizes."""
    return run(cfg)["best"].get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
