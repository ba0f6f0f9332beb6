"""What a transition reports: where restore-best read the best state from and how much it read; and one record per
in-memory copy of a new best (the cost restore-from-memory moves from the transition to checkpoint time)."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl

from ftexp import FinetuningScheduler, PhaseCheckpoint
from tests.callbacks.test_phases import epoch_schedule
from tests.tiny_models import TinyModule, trainer


@pytest.mark.parametrize("source", ["memory", "disk"])
def test_each_transition_names_its_restore_source_depth_and_bytes(tmp_path, source):
    pl.seed_everything(0)
    fts = FinetuningScheduler(epoch_schedule(), restore_best_from=source)
    checkpoint = PhaseCheckpoint(dirpath=tmp_path / "ckpt")
    trainer(tmp_path, [fts, checkpoint], max_epochs=6).fit(TinyModule(lr=5e-2, val_targets_shift=0.3))
    restores = [t["restore"] for t in fts.transitions]
    assert len(restores) == 2 and all(r["source"] == source for r in restores)
    assert [r["depth"] for r in restores] == [t["restored_from_depth"] for t in fts.transitions]
    assert all(r["bytes"] > 0 for r in restores)
    if source == "memory":
        assert fts.best_snapshots, "a copy is taken at every new best"
        for transition in fts.transitions:
            latest = [s for s in fts.best_snapshots if s["epoch"] < transition["epoch"]][-1]
            assert transition["restore"]["depth"] == latest["depth"]
            assert transition["restore"]["bytes"] >= latest["bytes"], "plus the pre-thaw values stashed since"
    else:
        assert fts.best_snapshots == [], "disk restores keep no copy"
        assert restores[-1]["bytes"] <= max(os.path.getsize(p) for p in (tmp_path / "ckpt").glob("*.ckpt"))


def test_without_restore_best_transitions_report_no_restore(tmp_path):
    fts = FinetuningScheduler(epoch_schedule(), restore_best=False)
    trainer(tmp_path, [fts], max_epochs=6).fit(TinyModule())
    assert [t["restore"] for t in fts.transitions] == [None, None]
    assert fts.best_snapshots == []


def test_the_checkpoint_of_a_new_best_records_the_phase_it_was_saved_in(tmp_path):
    """New bests are detected when the checkpoint is written (on_save_checkpoint), and the file says its phase."""
    import torch

    pl.seed_everything(0)
    fts = FinetuningScheduler(epoch_schedule())
    checkpoint = PhaseCheckpoint(dirpath=tmp_path / "ckpt")
    trainer(tmp_path, [fts, checkpoint], max_epochs=6).fit(TinyModule(lr=5e-2))
    saved = torch.load(checkpoint.best_model_path, weights_only=False)["callbacks"][fts.state_key]
    assert saved["best_depth"] == saved["curr_depth"]
