"""Early stopping whose patience ends a *phase*; only the final phase's patience (or a hard threshold) ends the run."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from ftexp.schedule import defaults

try:  # pytorch-lightning >= 2.6 records why EarlyStopping stopped; 2.4 and 2.5 do not
    from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason
except ImportError:
    EarlyStoppingReason = None


class PhaseEarlyStopping(EarlyStopping):
    """Drop-in for Lightning's ``EarlyStopping`` with FTS defaults (``val_loss``, ``min``, patience 3, min_delta 0).

    When patience runs out before the final phase, the phase is marked complete and the patience counter reset; the
    best score is kept across phases. Non-finite metrics, ``stopping_threshold`` and ``divergence_threshold`` always
    end the whole run. Used alone (without a scheduler) it behaves like ``EarlyStopping``.
    """

    def __init__(
        self,
        monitor: str = defaults.MONITOR,
        min_delta: float = 0.0,
        patience: int = defaults.PATIENCE,
        mode: str = defaults.MODE,
        **kwargs: Any,
    ) -> None:
        super().__init__(monitor=monitor, min_delta=min_delta, patience=patience, mode=mode, **kwargs)
        self.final_phase = True
        self.phase_complete = False

    def start_phase(self, final: bool) -> None:
        """Called by the scheduler when a phase begins: fresh patience, same best score."""
        self.final_phase = final
        self.phase_complete = False
        self.wait_count = 0

    # Overrides a private Lightning hook (checked against pytorch-lightning 2.4.0, 2.5.0, 2.5.6 and 2.6.6): the only
    # place EarlyStopping decides, so the only place a phase-aware decision can be made. Running out of patience is the
    # only stop that counts a check without improvement, which tells it apart from the other stops in every version.
    # tests/callbacks/test_early_stopping.py fails loudly if this contract changes.
    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        logs = trainer.callback_metrics
        if trainer.fast_dev_run or not self._validate_condition_metric(logs):
            return
        current = logs[self.monitor].squeeze()
        checks_without_improvement = self.wait_count
        should_stop, reason = self._evaluate_stopping_criteria(current)
        patience_out = should_stop and self.wait_count > checks_without_improvement
        end_phase = trainer.strategy.reduce_boolean_decision(patience_out and not self.final_phase, all=False)
        end_run = trainer.strategy.reduce_boolean_decision(should_stop and not end_phase, all=False)
        if end_run:
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason_message = reason
        elif end_phase:
            self.phase_complete = True
            self.wait_count = 0
            if EarlyStoppingReason is not None:
                self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
            reason = f"{self.monitor} did not improve for {self.patience} checks: the current phase is complete."
        if reason and self.verbose:
            rank_zero_info(reason)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "final_phase": self.final_phase, "phase_complete": self.phase_complete}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.final_phase = state_dict.get("final_phase", self.final_phase)
        self.phase_complete = state_dict.get("phase_complete", False)
