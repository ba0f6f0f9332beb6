"""One job of :class:`~hydra_plugins.ftexp_launchers.local_gpus.LocalGPUsLauncher`, in a process of its own:
``python -m hydra_plugins.ftexp_launchers._job <job.pkl> <return.pkl>``.

The launcher has set ``CUDA_VISIBLE_DEVICES`` to the job's GPUs; this runs the job through Hydra's ``run_job`` (job
dir, ``.hydra`` files, job callbacks) and writes the ``JobReturn`` for the launcher. The leading underscore keeps
Hydra's plugin scan from importing this module.

Lightning's DDP strategy starts ranks 1.. by running the main module again with the same arguments (plus Hydra
overrides it appends, which are ignored here) and ``LOCAL_RANK`` set. Such a rank runs the same job, as Lightning does
for Hydra apps: it writes no ``.hydra`` files, logs to ``<job name>_ddp_process_<rank>.log`` and returns nothing.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any


def main(job_file: Path, return_file: Path) -> int:
    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from omegaconf import open_dict

    rank = int(os.environ.get("LOCAL_RANK", "0"))
    job = cloudpickle.loads(job_file.read_bytes())
    if rank == 0:
        print(f"[local_gpus] job #{job['idx']}: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    Singleton.set_state(job["singleton_state"])
    setup_globals()
    config = job["config"]
    if rank > 0:
        with open_dict(config.hydra):
            config.hydra.output_subdir = None
            config.hydra.job.name = f"{config.hydra.job.name}_ddp_process_{rank}"
    ret = run_job(
        hydra_context=job["hydra_context"],
        task_function=job["task_function"],
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    failed = ret.status is JobStatus.FAILED
    if failed:  # the launcher gets the exception without its traceback: keep the traceback in the job's log
        traceback.print_exception(ret._return_value, file=sys.stderr)
    if rank == 0:
        ret._return_value = _portable(ret._return_value, cloudpickle)
        temporary = return_file.with_suffix(".tmp")
        temporary.write_bytes(cloudpickle.dumps(ret))
        temporary.replace(return_file)  # the launcher never reads half a file
    return 1 if failed else 0


def _portable(value: Any, cloudpickle: Any) -> Any:
    """``value`` if it survives pickling unchanged; else, for an exception, a RuntimeError with the same message (an
    exception whose ``__init__`` takes other arguments than its message does not), and for anything else its repr."""
    try:
        copy = cloudpickle.loads(cloudpickle.dumps(value))
    except Exception:
        return RuntimeError(f"{type(value).__name__}: {value}") if isinstance(value, BaseException) else repr(value)
    if isinstance(value, BaseException) and (type(copy) is not type(value) or str(copy) != str(value)):
        return RuntimeError(f"{type(value).__name__}: {value}")
    return value


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
