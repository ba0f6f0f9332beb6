"""The run config: where the packaged config tree is, how its nodes become objects, and what a composed config may
contain, checked before anything is built, with messages that name the key.

Checked: unknown keys (with a "did you mean"), values of the wrong type (where the annotation says unambiguously),
interpolations that do not resolve, and the rules that span groups (LR reinitialization vs. schedule kind, launcher
tasks vs. trainer devices, schedule files that do not exist or do not parse). The pieces, one job each:

- :mod:`~ftexp.config.tree`: ``CONFIG_DIR``, the ``${ftexp_file:...}`` / ``${ftexp_job_dirname:...}`` resolvers
  (registered when this package is imported) and :func:`instantiate`;
- :mod:`~ftexp.config.schema`: the dataclass schemas, and :class:`~ftexp.config.schema.Instantiable` for nodes
  checked against the signature of their ``_target_``;
- :mod:`~ftexp.config.typecheck`: one node against its schema or target signature (keys, types, interpolations);
- :mod:`~ftexp.config.rules`: the rules between groups, and the nodes they read (:func:`scheduler_node`);
- :mod:`~ftexp.config.validate`: all of it, as one :class:`ConfigError` (:func:`validate_config`);
- :mod:`~ftexp.config.callback`: the Hydra callbacks that act before any directory is created: :class:`ValidateConfig`
  and ``DryRunPlan`` (``dry_run=true`` prints the plan and stops there);
- :mod:`~ftexp.config.hints`: "did you mean", also for the command-line keys Hydra would refuse while composing,
  which ``python -m ftexp`` reports before Hydra starts (:func:`refused_override_keys`).

Which overrides tell the jobs of a sweep apart is :mod:`ftexp.overrides`, outside this package: the sweep summary
shares it without importing Hydra.
"""

from ftexp.config.callback import ValidateConfig
from ftexp.config.hints import refused_override_keys, unknown_override_hints
from ftexp.config.rules import LOCAL_GPUS_LAUNCHER, scheduler_node
from ftexp.config.tree import CONFIG_DIR, PACKAGE_DIR, instantiate
from ftexp.config.validate import ConfigError, config_problems, validate_config

__all__ = [
    "CONFIG_DIR",
    "LOCAL_GPUS_LAUNCHER",
    "PACKAGE_DIR",
    "ConfigError",
    "ValidateConfig",
    "config_problems",
    "instantiate",
    "refused_override_keys",
    "scheduler_node",
    "unknown_override_hints",
    "validate_config",
]
