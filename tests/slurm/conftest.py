"""Tests that submit real jobs to a SLURM cluster: every test in this folder is marked ``slow`` and is skipped, with
one reason, when no cluster answers. A local one-node cluster: ``bash scripts/local_slurm.sh`` (root, Debian)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SKIP_REASON = "SLURM tests need sbatch (start a local cluster: bash scripts/local_slurm.sh)"


@functools.cache
def cluster_problem() -> str | None:
    """Why no job could be submitted here (``None``: ``sbatch`` exists and the controller answers ``sinfo``)."""
    if shutil.which("sbatch") is None:
        return "sbatch not found"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo: {err}"
    if answer.returncode != 0 or not answer.stdout.strip():
        return f"sinfo: {(answer.stderr or answer.stdout).strip() or f'exit status {answer.returncode}'}"
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in item.path.parents]
    for item in ours:
        item.add_marker(pytest.mark.slow)
    if ours and (problem := cluster_problem()) is not None:
        skip = pytest.mark.skip(reason=f"{SKIP_REASON}: {problem}")
        for item in ours:
            item.add_marker(skip)
