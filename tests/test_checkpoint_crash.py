"""A run killed (SIGKILL) while a checkpoint file is being written, started again in the same run dir, resumes from
the previous complete checkpoint and completes: the writer never leaves a name pointing at a partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

from tests.helpers import python_m_ftexp

OVERRIDES = [
    "trainer.max_epochs=4",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "test=false",
    "logger=csv",
]

# python -m ftexp, with the background writer stalled half-way through the first file of epoch 2 (a partial
# temporary file on disk, as a real write leaves it) until the process is killed
STALLED_RUN = textwrap.dedent(
    """
    import os, runpy, sys, time
    import ftexp.callbacks.checkpoint_writer as writer

    complete, stalled = writer.write_complete_file, sys.argv[1]

    def stalls_in_epoch_2(checkpoint, path):
        if checkpoint["epoch"] == 2:
            path.with_name(f".{path.name}{writer.TEMP_MARK}-{os.getpid()}").write_bytes(b"half a checkpoint")
            open(stalled, "w").close()
            time.sleep(600)
        complete(checkpoint, path)

    writer.write_complete_file = stalls_in_epoch_2
    sys.argv = ["ftexp", *sys.argv[2:]]
    runpy.run_module("ftexp", run_name="__main__")
    """
)


def test_a_run_killed_mid_write_resumes_from_the_previous_complete_checkpoint(tmp_path):
    run_dir, stalled = tmp_path / "run", tmp_path / "stalled"
    args = [*OVERRIDES, f"hydra.run.dir={run_dir}"]
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    process = subprocess.Popen(
        [sys.executable, "-c", STALLED_RUN, str(stalled), *args],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not stalled.exists():
            assert process.poll() is None, "the run ended before its epoch-2 checkpoint write"
            assert time.monotonic() < deadline, "no epoch-2 checkpoint write within 120 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()

    checkpoints = run_dir / "checkpoints"
    assert list(checkpoints.glob(".*partial*")), "the kill landed while a file was being written"
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 1, "the previous last.ckpt is whole"

    resumed = python_m_ftexp(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_run"] == 4
    assert result["resumed_from"] == str(checkpoints / "last.ckpt")
    assert [(a["start_epoch"], a["end_epoch"]) for a in result["attempts"]] == [(2, 4)]
    assert [row["epoch"] for row in result["history"]] == [0, 1, 2, 3], "epochs 0-1 came from the checkpoint"
    assert not list(checkpoints.glob(".*partial*")), "the restarted run removed the partial file"
    assert Path(result["best_checkpoint"]).is_file()
