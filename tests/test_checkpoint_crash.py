"""A run killed (SIGKILL) while a checkpoint file is being written, started again in the same run dir, resumes from
the previous complete checkpoint and completes: the writer never leaves a name pointing at a partial file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.helpers import python_m_ftexp
from tests.killed_run import kill_when_the_writer_stops

OVERRIDES = [
    "trainer.max_epochs=4",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "test=false",
    "logger=csv",
]


def test_a_run_killed_mid_write_resumes_from_the_previous_complete_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = [*OVERRIDES, f"hydra.run.dir={run_dir}"]
    kill_when_the_writer_stops(tmp_path, 2, "during", *args)  # the first file of epoch 2 is half written

    checkpoints = run_dir / "checkpoints"
    assert list(checkpoints.glob(".*partial*")), "the kill landed while a file was being written"
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 1, "the previous last.ckpt is whole"

    resumed = python_m_ftexp(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_run"] == 4
    assert result["resumed_from"] == str(checkpoints / "last.ckpt")
    attempts = [(a["status"], a["start_epoch"], a["end_epoch"]) for a in result["attempts"]]
    assert attempts == [("died", None, None), ("completed", 2, 4)], "the killed attempt is listed, as died"
    assert [row["epoch"] for row in result["history"]] == [0, 1, 2, 3], "epochs 0-1 came from the checkpoint"
    assert not list(checkpoints.glob(".*partial*")), "the restarted run removed the partial file"
    assert Path(result["best_checkpoint"]).is_file()
