"""The Lightning side of ftexp: the phase state machine and the callbacks it drives."""

from ftexp.callbacks.checkpoint import EpochCheckpoint, PhaseCheckpoint
from ftexp.callbacks.early_stopping import PhaseEarlyStopping
from ftexp.callbacks.random_state import ResumableRandomState
from ftexp.callbacks.scheduler import DEPTH_METRIC, FinetuningScheduler

# FTS's names for the same callbacks, so that code and LightningCLI configs written for FTS keep their class names
FTSEarlyStopping = PhaseEarlyStopping
FTSCheckpoint = PhaseCheckpoint

__all__ = [
    "DEPTH_METRIC",
    "EpochCheckpoint",
    "FTSCheckpoint",
    "FTSEarlyStopping",
    "FinetuningScheduler",
    "PhaseCheckpoint",
    "PhaseEarlyStopping",
    "ResumableRandomState",
]
