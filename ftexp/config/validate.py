"""The entry point of the checks: every problem of a composed run config, as one :class:`ConfigError`.

It runs twice: as a Hydra callback when a run or multirun starts (:mod:`ftexp.config.callback`), before Hydra creates
any directory, and at the top of :func:`ftexp.train.run`, so that every multirun job and compose-API caller gets the
same checks. Structure first (:mod:`ftexp.config.typecheck` against :mod:`ftexp.config.schema`), then the rules
between groups (:mod:`ftexp.config.rules`), which assume well-formed nodes.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from ftexp.config.rules import check_cross_group_rules
from ftexp.config.schema import RunSchema
from ftexp.config.typecheck import check_node


class ConfigError(CompactHydraException, ValueError):
    """A run config that cannot work, found before anything was built. ``problems`` holds one ``key: problem``
    line each; Hydra prints the message alone, without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid config: {self.problems[0]}"
        else:
            message = f"invalid config ({len(self.problems)} problems):\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str]]]:
        # rebuilt from its problems when a launcher sends it from a job's process back to the sweep's
        return type(self), (self.problems,)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every problem of ``cfg`` (a composed run config, with or without its
    ``hydra`` node)."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(problems)


def config_problems(cfg: DictConfig) -> list[str]:
    """Every problem of ``cfg``, one ``key: problem`` line each (empty when it can run)."""
    problems: list[str] = []
    check_node(cfg, RunSchema, "", problems, skip=("hydra",))
    if not problems:  # the cross-group rules assume well-formed nodes
        check_cross_group_rules(cfg, problems)
    return problems
