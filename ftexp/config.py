"""The packaged Hydra config tree, the resolvers its files use, the one helper that instantiates config nodes, and
the rule saying which overrides tell the jobs of a sweep apart (job dir names and the sweep summary share it).

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


# config groups and keys every job of a sweep shares: the sweep file, where the jobs run, Hydra's own settings
_SAME_FOR_EVERY_JOB = frozenset({"sweep", "hardware", "hydra"})
_UNSAFE_IN_DIRNAME = re.compile(r"[^\w.,=+-]")
MAX_DIRNAME = 100


def override_key(override: str) -> str:
    """The key an override sets, however it adds, forces or deletes it: ``++trainer.max_epochs=3`` ->
    ``trainer.max_epochs``, ``~logger`` -> ``logger``, ``hydra/launcher=x`` -> ``hydra/launcher``. Rules about
    overrides compare keys, so that ``+seed=1`` and ``seed=1`` are one thing."""
    return str(override).lstrip("+~").partition("=")[0].strip()


def varies_between_jobs(override: str) -> bool:
    """Whether an override can tell the jobs of one sweep apart. The sweep file (``+sweep=...``), the hardware
    (``hardware=slurm``, ``hardware.partition=gpu``) and Hydra's settings (``hydra.sweep.dir=...``,
    ``hydra/launcher=...``) are the same for every job, so they neither name a job dir nor make a scenario.

    The rule looks at the key's first part (up to a ``.`` or ``/``): ``hardware_profile=a`` is another key, which may
    well vary.
    """
    first_part = re.split(r"[./]", override_key(override), maxsplit=1)[0]
    return first_part not in _SAME_FOR_EVERY_JOB


def job_dirname(overrides: Iterable[str]) -> str:
    """``schedule=nofts,seed=2`` for the overrides ``+sweep=compare_schedules schedule=nofts seed=2``: the
    overrides that can differ between the jobs of a sweep, made safe for a file name (a ``/`` in a value would
    otherwise nest directories) and cut to a readable length. Hydra's job number goes in front of it in
    ``hydra.sweep.subdir``, which keeps names unique however long or alike the overrides are."""
    kept = [str(item) for item in overrides if varies_between_jobs(str(item))]
    name = _UNSAFE_IN_DIRNAME.sub("_", ",".join(kept))
    return name[:MAX_DIRNAME] or "job"


for _name, _resolver in (("ftexp_file", package_file), ("ftexp_job_dirname", job_dirname)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with nested configs converted to plain dicts and lists, so the objects built
    never hold OmegaConf nodes (which are slow to access and awkward to pickle into checkpoints)."""
    return hydra.utils.instantiate(node, _convert_="all", **kwargs)
