"""Sweep directories for the summary tests: hand-written ones (tests/sweeps/fake_sweeps.py) and one real sweep,
produced once per session by ``python -m ftexp -m`` in a subprocess exactly as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import python_m_ftexp
from tests.sweeps.fake_sweeps import compare_schedules

# 2 schedules x 2 seeds, a few batches per epoch and 4 epochs: the explicit schedule's phase 1 begins at epoch 3.
# The summary callback is registered on the command line, as config.yaml's hydra.callbacks would.
REAL_SWEEP_OVERRIDES = [
    "schedule=nofts,explicit",
    "seed=1,2",
    "debug=limit",
    "trainer.max_epochs=4",
    "data.synthetic.n_train=256",
    "data.synthetic.n_validation=256",
    "data.synthetic.n_test=256",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "++hydra.callbacks.summarize_sweep._target_=ftexp.sweeps.callback.SummarizeSweep",
]


@pytest.fixture
def fake_sweep(tmp_path) -> Path:
    return compare_schedules(tmp_path / "sweep")


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory) -> Path:
    """A finished sweep of the tiny demo model: 0_nofts, 1_nofts, 2_explicit, 3_explicit."""
    sweep_dir = tmp_path_factory.mktemp("real_sweep") / "sweep"
    done = python_m_ftexp(sweep_dir.parent, "-m", f"hydra.sweep.dir={sweep_dir}", *REAL_SWEEP_OVERRIDES)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep_dir.parent / "stdout.log").write_text(done.stdout)  # what the sweep printed, for the callback tests
    return sweep_dir
