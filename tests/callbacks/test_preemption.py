"""A run that receives the cluster's preemption signal (or SIGTERM) checkpoints at the next batch boundary, records
the attempt, hands the signal to its previous owner (submitit's requeue, faked here), and a second run in the same
directory finishes the job as one run: same phase, the whole history, two attempts.

The real SLURM requeue and time limit are in tests/slurm/test_requeue.py.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback

from ftexp.callbacks.preemption import PreemptionCheckpoint, RequeueRequested, preemption_signal
from ftexp.config import CONFIG_DIR
from ftexp.train import run

QUICK = [
    "trainer.max_epochs=6",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "data.synthetic.n_train=256",
    "data.synthetic.n_validation=64",
    "test=false",
    "logger=csv",
]
SIGNAL_AT = (4, 2)  # (epoch, batch): phase 1 of the demo's explicit schedule has started at epoch 3 at the latest


class SignalSelfAt(Callback):
    """Sends ``signum`` to this process before training batch ``batch`` of epoch ``epoch``, as SLURM would."""

    def __init__(self, signum: int, epoch: int, batch: int) -> None:
        self.signum, self.epoch, self.batch = signum, epoch, batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)


def compose_run(run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[f"paths.output_dir={run_dir}", *QUICK, *overrides])


def signal_override(signum: int) -> list[str]:
    target = f"{__name__}.SignalSelfAt"
    epoch, batch = SIGNAL_AT
    return [
        f"+callbacks.signal_self._target_={target}",
        f"+callbacks.signal_self.signum={int(signum)}",
        f"+callbacks.signal_self.epoch={epoch}",
        f"+callbacks.signal_self.batch={batch}",
    ]


@pytest.fixture
def fake_submitit_handler():
    """Stands in for submitit's requeue-and-exit handler of the preemption signal: records what it was given."""
    received: list[int] = []
    signum = preemption_signal()
    previous = signal.signal(signum, lambda number, frame: received.append(number))
    threads = torch.get_num_threads()
    yield received
    signal.signal(signum, previous)
    torch.set_num_threads(threads)


def test_the_preemption_signal_checkpoints_at_a_batch_boundary_then_goes_to_its_owner(tmp_path, fake_submitit_handler):
    with pytest.raises(RequeueRequested) as stopped:
        run(compose_run(tmp_path, *signal_override(preemption_signal())))

    assert fake_submitit_handler == [preemption_signal()], "submitit's handler gets the signal after the checkpoint"
    assert stopped.value.checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(stopped.value.checkpoint, weights_only=False)
    epoch, batch = SIGNAL_AT
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert (saved["epoch"], progress["processed"]) == (epoch, batch + 1), (
        "saved after the step of the batch during which the signal arrived, not at an epoch end"
    )
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "requeued" and result["attempts"][-1]["status"] == "requeued"
    assert signal.getsignal(preemption_signal()) is not PreemptionCheckpoint._take_note


def test_a_requeued_run_resumes_at_its_phase_and_reports_one_run(tmp_path, fake_submitit_handler):
    with pytest.raises(RequeueRequested):
        run(compose_run(tmp_path, *signal_override(preemption_signal())))
    stopped = json.loads((tmp_path / "result.json").read_text())

    finished = run(compose_run(tmp_path))

    assert finished["status"] == "completed" and finished["epochs_run"] == 6
    assert [row["epoch"] for row in finished["history"]] == list(range(6)), "every epoch once"
    assert [t["depth"] for t in finished["transitions"]] == [t["depth"] for t in stopped["transitions"]] + [
        t["depth"] for t in finished["transitions"][len(stopped["transitions"]) :]
    ]
    assert finished["transitions"][: len(stopped["transitions"])] == stopped["transitions"]
    assert [a["status"] for a in finished["attempts"]] == ["requeued", "completed"]
    assert finished["attempts"][1]["start_epoch"] == SIGNAL_AT[0], "the interrupted epoch is finished, not redone"
    depth_when_stopped = stopped["history"][-1]["finetuning_depth"]
    assert finished["history"][SIGNAL_AT[0]]["finetuning_depth"] == depth_when_stopped, "resumed at its phase"


def test_sigterm_stops_at_a_batch_boundary_with_a_checkpoint(tmp_path, fake_submitit_handler):
    with pytest.raises(BaseException):  # noqa: B017  Lightning re-raises its SIGTERMException after the teardown
        run(compose_run(tmp_path, *signal_override(signal.SIGTERM)))

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "interrupted"
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == SIGNAL_AT[0]
    assert fake_submitit_handler == [], "SIGTERM is Lightning's: the preemption signal's owner is not called"
    finished = run(compose_run(tmp_path))
    assert finished["status"] == "completed" and [row["epoch"] for row in finished["history"]] == list(range(6))
