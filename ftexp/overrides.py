"""Which command-line overrides tell the jobs of a sweep apart: the one rule that names job dirs (the
``${ftexp_job_dirname:...}`` resolver of :mod:`ftexp.config.tree`) and groups jobs into scenarios
(:mod:`ftexp.sweeps.scenarios`).

Plain string rules with nothing but the standard library, so that the side that reads sweep dirs shares them without
importing Hydra or registering resolvers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
