"""PhaseEarlyStopping: patience ends a phase, the final phase's patience or a hard threshold ends the run."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_lightning.callbacks import EarlyStopping

from ftexp import FinetuningScheduler, PhaseEarlyStopping
from tests.callbacks.test_phases import HEAD, L0, L1, L2
from tests.tiny_models import TinyModule, trainer


def test_the_lightning_internals_phase_early_stopping_overrides_still_exist():
    """PhaseEarlyStopping overrides EarlyStopping._run_early_stopping_check and tells patience running out from the
    other stops by wait_count (checked against pytorch-lightning 2.4.0, 2.5.0, 2.5.6 and 2.6.6); if Lightning changes
    them, this fails before any behaviour silently changes."""
    assert callable(getattr(EarlyStopping, "_run_early_stopping_check", None))
    assert callable(getattr(EarlyStopping, "_validate_condition_metric", None))
    stopper = EarlyStopping(monitor="val_loss", patience=2, stopping_threshold=0.5)
    checks = [stopper._evaluate_stopping_criteria(torch.tensor(loss))[0] for loss in (1.0, 1.0, 1.0)]
    assert checks == [False, False, True] and stopper.wait_count == 2, "patience: each check without improvement counts"
    assert stopper._evaluate_stopping_criteria(torch.tensor(0.1))[0] is True
    assert stopper.wait_count == 2, "a threshold stop does not count a check without improvement"


class NonFiniteValidation(TinyModule):
    def validation_step(self, batch, batch_idx):
        self.log("val_loss", float("nan") if self.current_epoch >= 1 else 1.0)


class TestEarlyStoppingDrivenTransitions:
    """Patience ends a phase, the final phase's patience ends the run; the best score is kept across phases."""

    @staticmethod
    def flat_loss_run(tmp_path, **stopper_kwargs):
        # min_delta=1 makes every check after the first "no improvement": patience 2 ends a phase in 3 epochs.
        stopper = PhaseEarlyStopping(min_delta=1.0, patience=2, **stopper_kwargs)
        fts = FinetuningScheduler({0: [f"{HEAD}.*"], 1: [f"{L2}.*"], 2: [f"{L1}.*", f"{L0}.*"]}, restore_best=False)
        run = trainer(tmp_path, [fts, stopper], max_epochs=30)
        run.fit(TinyModule())
        return fts, stopper, run

    def test_patience_moves_to_the_next_phase_and_final_patience_ends_the_run(self, tmp_path):
        fts, stopper, run = self.flat_loss_run(tmp_path)
        assert [t["epoch"] for t in fts.transitions] == [3, 5]
        assert fts.curr_depth == 2
        assert run.current_epoch == 7, "final phase: epochs 5 and 6 without improvement, then stop"
        assert stopper.stopped_epoch == 6

    def test_divergence_threshold_ends_the_whole_run_in_phase_zero(self, tmp_path):
        fts, stopper, run = self.flat_loss_run(tmp_path, divergence_threshold=1e-6)
        assert fts.transitions == []
        assert run.current_epoch == 1
        assert stopper.stopped_epoch == 0

    def test_user_configured_stopper_is_used_not_duplicated(self, tmp_path):
        _, stopper, run = self.flat_loss_run(tmp_path)
        stoppers = [cb for cb in run.callbacks if isinstance(cb, PhaseEarlyStopping)]
        assert stoppers == [stopper]

    def test_defaults_match_fts(self):
        stopper = PhaseEarlyStopping()
        assert (stopper.monitor, stopper.mode, stopper.patience, stopper.min_delta) == ("val_loss", "min", 3, 0.0)

    def test_a_non_finite_metric_ends_the_whole_run(self, tmp_path):
        fts = FinetuningScheduler({0: [f"{HEAD}.*"], 1: [f"{L2}.*"]}, restore_best=False)
        run = trainer(tmp_path, [fts, PhaseEarlyStopping(patience=5)], max_epochs=10)
        run.fit(NonFiniteValidation())
        assert run.current_epoch == 2 and fts.curr_depth == 0
        assert math.isnan(run.callback_metrics["val_loss"])

    def test_stopping_threshold_ends_the_whole_run(self, tmp_path):
        fts, stopper, run = self.flat_loss_run(tmp_path, stopping_threshold=1e6)
        assert fts.transitions == [] and run.current_epoch == 1
        assert stopper.stopping_reason_message.startswith("Stopping threshold reached")


def test_phase_state_survives_a_checkpoint_round_trip():
    stopper = PhaseEarlyStopping(patience=2)
    stopper.start_phase(final=False)
    stopper.phase_complete = True
    restored = PhaseEarlyStopping(patience=2)
    restored.load_state_dict(stopper.state_dict())
    assert (restored.phase_complete, restored.final_phase) == (True, False)


@pytest.mark.parametrize("phase_complete", [True, False])
def test_start_phase_resets_patience_but_keeps_the_best_score(phase_complete):
    stopper = PhaseEarlyStopping()
    stopper.best_score.fill_(0.25)
    stopper.wait_count, stopper.phase_complete = 2, phase_complete
    stopper.start_phase(final=True)
    assert (stopper.wait_count, stopper.phase_complete, stopper.final_phase) == (0, False, True)
    assert float(stopper.best_score) == 0.25
