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
from pytorch_lightning.callbacks import Callback
from submitit.core.utils import UncompletedJobError

from ftexp.callbacks.preemption import PreemptionCheckpoint, RequeueRequested, preemption_signal
from ftexp.record import AttemptRecord, RunRecord, RunStatus
from ftexp.results import hand_over
from ftexp.train import run
from tests.helpers import compose_config, signal_self_at

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


class RaiseAt(Callback):
    """Raises ``RuntimeError`` before training batch ``batch`` of epoch ``epoch``: a run that fails mid-fit."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            raise RuntimeError("the training step failed")


class SignalSelfInLastValidation(Callback):
    """Sends ``signum`` to this process during the validation of the last epoch, after the last training batch."""

    def __init__(self, signum: int) -> None:
        self.signum, self.sent = signum, False

    def on_validation_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1 and not trainer.sanity_checking and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def compose_run(run_dir: Path, *overrides: str):
    return compose_config(run_dir, *QUICK, *overrides)


def raise_override() -> list[str]:
    epoch, batch = SIGNAL_AT
    return [
        f"+callbacks.fail._target_={__name__}.RaiseAt",
        f"+callbacks.fail.epoch={epoch}",
        f"+callbacks.fail.batch={batch}",
    ]


def signal_override(signum: int) -> list[str]:
    return signal_self_at(signum, *SIGNAL_AT)


class FakeSubmitit:
    """Stands in for submitit's handler of the preemption signal (``checkpoint_and_try_requeue``): records the
    signals it is given and returns, or raises ``refusal`` as submitit does after ``max_num_timeout`` time-outs."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.refusal: Exception | None = None

    def __call__(self, signum: int, frame) -> None:
        self.received.append(signum)
        if self.refusal is not None:
            raise self.refusal


@pytest.fixture
def torch_threads():
    """Puts back torch's thread count, which a run sets (``cpu_threads``)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_submitit(torch_threads):
    """A :class:`FakeSubmitit` owning the preemption signal, as submitit's handler does in a job."""
    handler = FakeSubmitit()
    signum = preemption_signal()
    previous = signal.signal(signum, handler)
    yield handler
    signal.signal(signum, previous)


def test_the_preemption_signal_checkpoints_at_a_batch_boundary_then_goes_to_its_owner(tmp_path, fake_submitit):
    with pytest.raises(RequeueRequested) as stopped:
        run(compose_run(tmp_path, *signal_override(preemption_signal())))

    assert fake_submitit.received == [preemption_signal()], "submitit's handler gets the signal after the checkpoint"
    assert stopped.value.checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(stopped.value.checkpoint, weights_only=False)
    epoch, batch = SIGNAL_AT
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert (saved["epoch"], progress["processed"]) == (epoch, batch + 1), (
        "saved after the step of the batch during which the signal arrived, not at an epoch end"
    )
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "requeued" and result["attempts"][-1]["status"] == "requeued"
    assert signal.getsignal(preemption_signal()) is fake_submitit, "the signal is submitit's again"


def test_a_requeued_run_resumes_at_its_phase_and_reports_one_run(tmp_path, fake_submitit):
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


def test_sigterm_stops_at_a_batch_boundary_with_a_checkpoint(tmp_path, fake_submitit):
    with pytest.raises(BaseException):  # noqa: B017  Lightning re-raises its SIGTERMException after the teardown
        run(compose_run(tmp_path, *signal_override(signal.SIGTERM)))

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "interrupted"
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == SIGNAL_AT[0]
    assert fake_submitit.received == [], "SIGTERM is Lightning's: the preemption signal's owner is not called"
    assert signal.getsignal(preemption_signal()) is fake_submitit, "the preemption signal is submitit's again"
    finished = run(compose_run(tmp_path))
    assert finished["status"] == "completed" and [row["epoch"] for row in finished["history"]] == list(range(6))


def test_a_run_that_fails_gives_the_preemption_signal_back_to_its_owner(tmp_path, fake_submitit):
    with pytest.raises(RuntimeError, match="the training step failed"):
        run(compose_run(tmp_path, *raise_override()))

    assert signal.getsignal(preemption_signal()) is fake_submitit
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"


def test_after_training_the_preemption_signal_goes_to_its_owner_again(tmp_path, fake_submitit):
    target = f"{__name__}.SignalSelfInLastValidation"
    overrides = [f"+callbacks.signal_self._target_={target}", f"+callbacks.signal_self.signum={preemption_signal()}"]

    finished = run(compose_run(tmp_path, *overrides))
    assert finished["status"] == "completed", "the signal came after the last training batch: nothing to stop"
    assert fake_submitit.received == [preemption_signal()], "the fit ended first: its owner got it at the fit's end"

    signal.raise_signal(preemption_signal())  # as during trainer.test, or in a later run in this process
    assert fake_submitit.received == [preemption_signal()] * 2, "after fit, the owner has the signal again"


def test_a_later_run_in_the_same_process_cannot_requeue_without_an_owner(tmp_path, torch_threads):
    """Its owner is the one from before any run: not a handler an earlier run left behind."""
    original = signal.getsignal(preemption_signal())
    with pytest.raises(RuntimeError):
        run(compose_run(tmp_path / "first", *raise_override()))
    with pytest.raises(RequeueRequested):
        run(compose_run(tmp_path / "second", *signal_override(preemption_signal())))

    assert signal.getsignal(preemption_signal()) is original
    result = json.loads((tmp_path / "second" / "result.json").read_text())
    assert result["status"] == "interrupted", "no owner to requeue the job: a rerun in the run dir resumes"


def test_when_submitit_refuses_to_requeue_the_attempt_is_recorded_as_failed(tmp_path, fake_submitit):
    fake_submitit.refusal = UncompletedJobError("Job not requeued because: timed-out too many times.")

    with pytest.raises(UncompletedJobError):
        run(compose_run(tmp_path, *signal_override(preemption_signal())))

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and result["attempts"][-1]["status"] == "failed"
    assert result["error"] == "UncompletedJobError: Job not requeued because: timed-out too many times."
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file(), "the state is saved all the same"


def test_a_task_other_than_rank_0_ends_cleanly_when_submitit_leaves_the_requeue_to_rank_0(tmp_path, fake_submitit):
    preemption = signalled_during_fit(PreemptionCheckpoint(tmp_path))
    record, attempt = RunRecord(status=RunStatus.REQUEUED), AttemptRecord(status=RunStatus.REQUEUED)

    with pytest.raises(SystemExit) as ended:
        hand_over(preemption, record, attempt, rank=1)

    assert ended.value.code == 0, "not RequeueRequested with a traceback and exit status 1"
    assert fake_submitit.received == [preemption_signal()]
    assert record.status == attempt.status == "requeued", "rank 0 requeues the job"


def signalled_during_fit(preemption: PreemptionCheckpoint) -> PreemptionCheckpoint:
    """``preemption`` after a fit during which the preemption signal arrived (its hooks do not use the trainer)."""
    preemption.on_train_start(None, None)  # type: ignore[arg-type]
    signal.raise_signal(preemption.signum)
    preemption.teardown(None, None, "fit")  # type: ignore[arg-type]
    return preemption
