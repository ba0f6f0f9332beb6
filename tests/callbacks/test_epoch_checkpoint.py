"""EpochCheckpoint and its background writer: the best state and last.ckpt with at most one full write per epoch,
written off the training thread, each file complete or absent, every pending write finished before anything reads
it, and a failed write stopping the run."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

import ftexp.callbacks.checkpoint_writer as writer
from ftexp import EpochCheckpoint, FinetuningScheduler
from ftexp.callbacks.checkpoint_writer import BackgroundCheckpointIO, CheckpointWriteError, flush_checkpoint_writes
from tests.tiny_models import TinyModule, trainer

TWO_PHASES = {0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.*", "net.2.*", "net.0.*"]}}


class ScriptedValLoss(TinyModule):
    """Logs the given val_loss per epoch, so that which epochs improve is known in advance."""

    def __init__(self, losses: list[float]) -> None:
        super().__init__()
        self.losses = losses

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log("val_loss", torch.tensor(self.losses[self.current_epoch]), prog_bar=True)


@pytest.fixture
def writes(monkeypatch) -> list[tuple[str, str, int]]:
    """Every file operation the background writer runs, as (kind, file name, epoch of the state written)."""
    done: list[tuple[str, str, int]] = []
    write, link = writer.write_complete_file, writer.link_complete_file

    def record_write(checkpoint, path):
        write(checkpoint, path)
        done.append(("write", path.name, checkpoint["epoch"]))

    def record_link(target, path):
        link(target, path)
        done.append(("link", path.name, torch.load(path, weights_only=False)["epoch"]))

    monkeypatch.setattr(writer, "write_complete_file", record_write)
    monkeypatch.setattr(writer, "link_complete_file", record_link)
    return done


class FlushEveryEpoch(Callback):
    """Waits for the writer at each epoch start, so that no write is superseded by a newer one (newest wins) and the
    order of what was written is the order of what was saved."""

    def on_train_epoch_start(self, trainer, pl_module):
        flush_checkpoint_writes(trainer.strategy)


def test_one_full_write_per_epoch_and_last_ckpt_links_the_best_on_improving_epochs(tmp_path, writes):
    checkpoint = EpochCheckpoint(dirpath=tmp_path / "ckpt", filename="best-{epoch}")
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), checkpoint, FlushEveryEpoch()], max_epochs=4)
    run.fit(ScriptedValLoss([1.0, 0.8, 0.9, 0.85]))

    full_writes = [(name, epoch) for kind, name, epoch in writes if kind == "write"]
    assert full_writes == [("best-epoch=0.ckpt", 0), ("best-epoch=1.ckpt", 1), ("last.ckpt", 2), ("last.ckpt", 3)]
    assert [(name, epoch) for kind, name, epoch in writes if kind == "link"] == [("last.ckpt", 0), ("last.ckpt", 1)]
    files = sorted(path.name for path in (tmp_path / "ckpt").iterdir())
    assert files == ["best-epoch=1.ckpt", "last.ckpt"], "the superseded best was removed, no partial file left"
    assert checkpoint.best_model_path.endswith("best-epoch=1.ckpt")
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["epoch"] == 3


def test_last_ckpt_holds_the_state_at_the_end_of_the_last_epoch(tmp_path):
    module = ScriptedValLoss([1.0, 0.8, 0.7])
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), EpochCheckpoint(dirpath=tmp_path / "ckpt")], 3)
    run.fit(module)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 2 and saved["global_step"] == run.global_step
    assert all(torch.equal(saved["state_dict"][name], value) for name, value in module.state_dict().items())
    best = torch.load(run.checkpoint_callback.best_model_path, weights_only=False)
    assert os.path.samefile(tmp_path / "ckpt" / "last.ckpt", run.checkpoint_callback.best_model_path)
    assert best["epoch"] == 2


def test_the_scheduler_alone_replaces_lightnings_default_checkpoint_by_one_epoch_checkpoint(tmp_path, writes):
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), FlushEveryEpoch()], max_epochs=3)
    run.fit(ScriptedValLoss([1.0, 1.1, 0.9]))
    (checkpoint,) = run.checkpoint_callbacks
    assert type(checkpoint) is EpochCheckpoint and checkpoint.monitor == "val_loss"
    assert [epoch for kind, _, epoch in writes if kind == "write"] == [0, 1, 2], "one full write per epoch"


def test_a_user_model_checkpoint_without_a_monitor_is_kept(tmp_path):
    mine = ModelCheckpoint(dirpath=tmp_path / "mine", filename="every-{epoch}", save_top_k=-1)
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), mine], max_epochs=2)
    run.fit(ScriptedValLoss([1.0, 0.9]))
    assert mine in run.checkpoint_callbacks
    assert sorted(path.name for path in (tmp_path / "mine").iterdir()) == ["every-epoch=0.ckpt", "every-epoch=1.ckpt"]


def test_a_failed_write_stops_the_run_naming_the_file(tmp_path, monkeypatch):
    def disk_full(checkpoint, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_complete_file", disk_full)
    module = ScriptedValLoss([1.0, 0.9, 0.8, 0.7])
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), EpochCheckpoint(dirpath=tmp_path / "ckpt")], 4)
    with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint .*ckpt.*No space left on device"):
        run.fit(module)
    assert run.current_epoch <= 1, "stopped at the next epoch, not at the end of the run"


class HeldWriter:
    """Holds the background writer inside its first file write until released."""

    def __init__(self, monkeypatch) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.written: list[tuple[str, object]] = []
        write = writer.write_complete_file

        def held_write(checkpoint, path):
            self.entered.set()
            assert self.release.wait(10)
            write(checkpoint, path)
            self.written.append((path.name, checkpoint["value"]))

        monkeypatch.setattr(writer, "write_complete_file", held_write)


def test_the_file_holds_the_state_at_submission_even_if_training_changes_it(tmp_path, monkeypatch):
    held = HeldWriter(monkeypatch)
    checkpoint_io = BackgroundCheckpointIO()
    weights = torch.zeros(4)
    checkpoint_io.save_checkpoint({"value": 0, "weights": weights}, tmp_path / "last.ckpt")
    assert held.entered.wait(10)
    weights.add_(1.0)  # the next optimizer step, while the file is being written
    held.release.set()
    checkpoint_io.flush()
    assert torch.equal(torch.load(tmp_path / "last.ckpt")["weights"], torch.zeros(4))


def test_a_newer_write_of_the_same_file_replaces_a_queued_one_and_removals_wait_their_turn(tmp_path, monkeypatch):
    held = HeldWriter(monkeypatch)
    checkpoint_io = BackgroundCheckpointIO()
    checkpoint_io.save_checkpoint({"value": 1}, tmp_path / "last.ckpt")
    assert held.entered.wait(10)
    checkpoint_io.save_checkpoint({"value": 2}, tmp_path / "last.ckpt")  # queued behind the held write
    checkpoint_io.save_checkpoint({"value": 3}, tmp_path / "last.ckpt")  # supersedes value 2
    checkpoint_io.save_checkpoint({"value": 4}, tmp_path / "best.ckpt")
    checkpoint_io.remove_checkpoint(tmp_path / "best.ckpt")  # must not overtake its write
    assert checkpoint_io.pending == 3
    held.release.set()
    checkpoint_io.flush()
    assert held.written == [("last.ckpt", 1), ("last.ckpt", 3)]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt")["value"] == 3


def test_a_link_waits_for_the_write_it_names(tmp_path, monkeypatch):
    held = HeldWriter(monkeypatch)
    checkpoint_io = BackgroundCheckpointIO()
    checkpoint_io.save_checkpoint({"value": 7}, tmp_path / "best.ckpt")
    checkpoint_io.link_checkpoint(tmp_path / "best.ckpt", tmp_path / "last.ckpt")
    assert held.entered.wait(10)
    assert not (tmp_path / "last.ckpt").exists(), "no name points at a file that is not complete"
    held.release.set()
    checkpoint_io.flush()
    assert os.path.samefile(tmp_path / "best.ckpt", tmp_path / "last.ckpt")


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    torch.save({"epoch": 1}, tmp_path / "last.ckpt")

    def dies_half_way(checkpoint, file):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt  # as far as the file system can tell, like a process killed mid-write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        writer.write_complete_file({"epoch": 2}, tmp_path / "last.ckpt")
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.ckpt") == {"epoch": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["last.ckpt"]


def test_partial_files_of_a_killed_writer_are_removed_at_the_next_setup(tmp_path):
    (tmp_path / "ckpt").mkdir()
    partial = tmp_path / "ckpt" / f".last.ckpt{writer.TEMP_MARK}-12345"
    partial.write_bytes(b"half")
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), EpochCheckpoint(dirpath=tmp_path / "ckpt")], 1)
    run.fit(ScriptedValLoss([1.0]))
    assert not partial.exists()
    assert Path(run.checkpoint_callback.best_model_path).is_file()


def test_the_old_best_is_removed_only_after_last_ckpt_names_the_new_one(tmp_path, monkeypatch):
    operations: list[tuple[str, str]] = []
    submit = BackgroundCheckpointIO._submit

    def record(self, operation):
        operations.append((operation.kind, operation.path.name))
        submit(self, operation)

    monkeypatch.setattr(BackgroundCheckpointIO, "_submit", record)
    checkpoint = EpochCheckpoint(dirpath=tmp_path / "ckpt", filename="best-{epoch}")
    trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), checkpoint], max_epochs=2).fit(ScriptedValLoss([1.0, 0.8]))
    assert operations[-3:] == [("write", "best-epoch=1.ckpt"), ("link", "last.ckpt"), ("remove", "best-epoch=0.ckpt")]


def test_without_the_background_writer_last_ckpt_is_a_file_of_its_own(tmp_path, writes):
    checkpoint = EpochCheckpoint(dirpath=tmp_path / "ckpt", filename="best-{epoch}", background=False)
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), checkpoint], max_epochs=3)
    run.fit(ScriptedValLoss([1.0, 0.8, 0.9]))
    assert writes == [], "Lightning's own plugin wrote every file"
    best, last = tmp_path / "ckpt" / "best-epoch=1.ckpt", tmp_path / "ckpt" / "last.ckpt"
    assert not os.path.samefile(best, last), "a writer that writes into the file must not share it with the best"
    assert torch.load(best, weights_only=False)["epoch"] == 1 and torch.load(last, weights_only=False)["epoch"] == 2


def test_after_fit_save_checkpoint_writes_synchronously_again(tmp_path):
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), EpochCheckpoint(dirpath=tmp_path / "ckpt")], 1)
    run.fit(ScriptedValLoss([1.0]))
    assert type(run.strategy.checkpoint_io) is TorchCheckpointIO
    run.save_checkpoint(tmp_path / "after.ckpt")
    assert (tmp_path / "after.ckpt").is_file(), "written when save_checkpoint returns"


def test_a_failed_write_does_not_hide_the_exception_that_ended_the_run(tmp_path, monkeypatch):
    failing = threading.Event()

    def disk_full_once_the_run_fails(checkpoint, path):
        assert failing.wait(10)
        raise OSError(28, "No space left on device")

    class FailsInEpoch1(ScriptedValLoss):
        def training_step(self, batch, batch_idx):
            if self.current_epoch == 1:
                failing.set()
                raise ValueError("the run's own failure")
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(writer, "write_complete_file", disk_full_once_the_run_fails)
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), EpochCheckpoint(dirpath=tmp_path / "ckpt")], 3)
    with pytest.raises(ValueError, match="the run's own failure"):
        run.fit(FailsInEpoch1([1.0, 0.9, 0.8]))


def test_a_validation_inside_the_epoch_that_is_the_best_is_kept(tmp_path):
    losses = iter([0.2, 0.9, 0.8, 0.7])

    class TwiceAnEpoch(TinyModule):
        def on_validation_epoch_end(self):
            self.log("val_loss", torch.tensor(next(losses)))

    checkpoint = EpochCheckpoint(dirpath=tmp_path / "ckpt", filename="best-{step}")
    run = trainer(tmp_path, [FinetuningScheduler(TWO_PHASES), checkpoint], max_epochs=2, val_check_interval=0.5)
    run.fit(TwiceAnEpoch())
    assert checkpoint.best_model_score == pytest.approx(0.2)
    assert torch.load(checkpoint.best_model_path, weights_only=False)["global_step"] == 2, "the mid-epoch state"


def test_a_writer_that_falls_behind_keeps_only_what_is_still_needed(tmp_path, monkeypatch):
    held = HeldWriter(monkeypatch)
    checkpoint_io = BackgroundCheckpointIO()
    checkpoint_io.save_checkpoint({"value": 0}, tmp_path / "best-0.ckpt")
    assert held.entered.wait(10)
    for epoch in range(1, 6):  # five more improving epochs while the first write is held
        checkpoint_io.save_checkpoint({"value": epoch}, tmp_path / f"best-{epoch}.ckpt")
        checkpoint_io.link_checkpoint(tmp_path / f"best-{epoch}.ckpt", tmp_path / "last.ckpt")
        checkpoint_io.remove_checkpoint(tmp_path / f"best-{epoch - 1}.ckpt")
    queued_writes = [op for op in checkpoint_io._queue if op.kind == "write"]
    assert [op.path.name for op in queued_writes] == ["best-5.ckpt"], "older bests are gone before being written"
    held.release.set()
    checkpoint_io.flush()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best-5.ckpt", "last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt")["value"] == 5


def test_the_writer_thread_ends_as_soon_as_its_work_is_done(tmp_path):
    checkpoint_io = BackgroundCheckpointIO()
    checkpoint_io.save_checkpoint({"value": 1}, tmp_path / "last.ckpt")
    checkpoint_io.flush()
    for _ in range(100):
        if not any(thread.name == "ftexp-checkpoint-writer" for thread in threading.enumerate()):
            break
        threading.Event().wait(0.01)
    assert not any(thread.name == "ftexp-checkpoint-writer" for thread in threading.enumerate())
