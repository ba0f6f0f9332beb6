"""Start a test module as its own 2-rank DDP job (the module's ``__main__`` launches the ranks) and read what it
wrote: the launch the DDP tests share, with a guard that turns a deadlocked process group into a failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCH_GUARD_S = 300  # only to turn a deadlocked process group into a failure; not a timing assertion


def run_ddp_worker(script: str | Path, workdir: Path, out: Path) -> Any:
    """Run ``python script out`` in ``workdir`` with a clean distributed environment; return the JSON at ``out``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    for var in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED"):
        env.pop(var, None)  # the worker must launch its own process group
    env.setdefault("OMP_NUM_THREADS", "1")
    process = subprocess.Popen(
        [sys.executable, str(Path(script).resolve()), str(out)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # rank 1 joins this session, so a hang can be cleaned up by process group
    )
    try:
        output, _ = process.communicate(timeout=LAUNCH_GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"DDP worker did not finish (deadlocked process group?):\n{output[-6000:]}")
    assert process.returncode == 0, f"DDP worker failed with exit code {process.returncode}:\n{output[-6000:]}"
    return json.loads(out.read_text())
