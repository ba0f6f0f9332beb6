"""The packaged Hydra config tree, the resolver its files use, and the one helper that instantiates config nodes.

Importing this module registers two resolvers:

- ``${ftexp_file:relative/path}``: a file shipped inside the package (e.g. the schedule files under
  ``ftexp/ft_schedules``), so configs work from any working directory and from an installed wheel;
- ``${ftexp_job_dirname:${hydra.overrides.task}}``: a sweep job's directory name made from its overrides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "conf"


def package_file(relative: str) -> str:
    """Absolute path of a file shipped inside the ``ftexp`` package; raises if it does not exist."""
    path = PACKAGE_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"${{ftexp_file:{relative}}}: no such file in the ftexp package ({path})")
    return str(path)


# overrides that do not tell the jobs of one sweep apart (the sweep file, where the jobs run)
_SAME_FOR_EVERY_JOB = re.compile(r"^[+~]*(sweep|hardware|hydra)([.=/]|$)")
_UNSAFE_IN_DIRNAME = re.compile(r"[^\w.,=+-]")
MAX_DIRNAME = 100


def job_dirname(overrides: Iterable[str]) -> str:
    """``schedule=nofts,seed=2`` for the overrides ``+sweep=compare_schedules schedule=nofts seed=2``: the
    overrides that can differ between the jobs of a sweep, made safe for a file name (a ``/`` in a value would
    otherwise nest directories) and cut to a readable length. Hydra's job number goes in front of it in
    ``hydra.sweep.subdir``, which keeps names unique however long or alike the overrides are."""
    kept = [str(item) for item in overrides if not _SAME_FOR_EVERY_JOB.match(str(item))]
    name = _UNSAFE_IN_DIRNAME.sub("_", ",".join(kept))
    return name[:MAX_DIRNAME] or "job"


for _name, _resolver in (("ftexp_file", package_file), ("ftexp_job_dirname", job_dirname)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with nested configs converted to plain dicts and lists, so the objects built
    never hold OmegaConf nodes (which are slow to access and awkward to pickle into checkpoints)."""
    return hydra.utils.instantiate(node, _convert_="all", **kwargs)
