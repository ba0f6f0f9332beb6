"""The packaged config tree: where its files are, the resolvers they use, and the one helper that turns its nodes
into objects. The link between the YAML files and Python, kept apart from the checks of what the files may hold
(the rest of :mod:`ftexp.config`).

Importing this module (as importing :mod:`ftexp.config` does) registers two resolvers:

- ``${ftexp_file:relative/path}``: a file shipped inside the package (e.g. the schedule files under
  ``ftexp/ft_schedules``), so configs work from any working directory and from an installed wheel;
- ``${ftexp_job_dirname:${hydra.overrides.task}}``: a sweep job's directory name made from its overrides
  (:func:`ftexp.overrides.job_dirname`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import OmegaConf

from ftexp.overrides import job_dirname

PACKAGE_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = PACKAGE_DIR / "conf"


def package_file(relative: str) -> str:
    """Absolute path of a file shipped inside the ``ftexp`` package; raises if it does not exist."""
    path = PACKAGE_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"${{ftexp_file:{relative}}}: no such file in the ftexp package ({path})")
    return str(path)


for _name, _resolver in (("ftexp_file", package_file), ("ftexp_job_dirname", job_dirname)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with nested configs converted to plain dicts and lists, so the objects built
    never hold OmegaConf nodes (which are slow to access and awkward to pickle into checkpoints)."""
    return hydra.utils.instantiate(node, _convert_="all", **kwargs)
