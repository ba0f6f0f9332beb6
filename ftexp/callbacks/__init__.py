"""The Lightning side of ftexp: the phase state machine and the callbacks it drives."""

from ftexp.callbacks.checkpoint import PhaseCheckpoint
from ftexp.callbacks.early_stopping import PhaseEarlyStopping
from ftexp.callbacks.scheduler import DEPTH_METRIC, FinetuningScheduler

__all__ = ["DEPTH_METRIC", "FinetuningScheduler", "PhaseCheckpoint", "PhaseEarlyStopping"]
