"""The config of the local_gpus launcher, registered in Hydra's ConfigStore as ``hydra/launcher=local_gpus``.

``hardware=local_gpus`` selects it together with the matching trainer settings::

    python -m ftexp -m hardware=local_gpus schedule=nofts,implicit,explicit seed=1,2,3

Print it with ``python -m ftexp -m hardware=local_gpus --cfg hydra -p hydra.launcher``. Hydra imports this module
on every start (its plugin scan), so it holds the dataclass and nothing else.
"""

# no `from __future__ import annotations`: Hydra's plugin scan may execute this module before it is in sys.modules,
# where the ConfigStore cannot resolve string annotations
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class LocalGPUsLauncherConf:
    """Run the jobs of a multirun in parallel on this machine's GPUs, ``gpus_per_job`` ids each, every job in its own
    process that sees only its ids (``CUDA_VISIBLE_DEVICES``); a queued job starts as soon as ids free up. Each
    job's stdout/stderr: ``<job dir>/launcher.log``; every job's start and end: ``<sweep dir>/.local_gpus/jobs.jsonl``.
    """

    _target_: str = "hydra_plugins.ftexp_launchers.local_gpus.LocalGPUsLauncher"
    # ids to hand out, as the launching shell sees them (with its CUDA_VISIBLE_DEVICES=2,3, id 1 is GPU 3); None: all
    # (CUDA_VISIBLE_DEVICES, else every GPU). Not only ints: without CUDA_VISIBLE_DEVICES any id CUDA takes (a UUID)
    gpus: list[Any] | None = None
    # ids per job (a job with more runs DDP); at most len(gpus) // gpus_per_job jobs run at once
    gpus_per_job: int = 1


ConfigStore.instance().store(
    group="hydra/launcher", name="local_gpus", node=LocalGPUsLauncherConf, provider="ftexp_launchers"
)
