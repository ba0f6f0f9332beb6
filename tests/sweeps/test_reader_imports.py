"""Readers don't import writers' machinery: the code that reads sweep dirs (the summary, its command, the notebook)
loads without Hydra or PyTorch. Each import runs in a fresh interpreter, so the imports of other tests in this
process cannot hide or cause a failure."""

from __future__ import annotations

import subprocess
import sys

import pytest

READERS = ["ftexp.sweeps", "ftexp.summarize", "ftexp.overrides", "ftexp.files"]
WRITERS_MACHINERY = ["hydra", "torch", "pytorch_lightning"]


@pytest.mark.parametrize("module", READERS)
def test_reading_a_sweep_dir_imports_neither_hydra_nor_torch(module):
    check = f"import sys, {module}; print(' '.join(m for m in {WRITERS_MACHINERY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [], f"import {module} loaded {done.stdout.strip()}"
