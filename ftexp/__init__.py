"""ftexp: scheduled fine-tuning experiments on PyTorch Lightning."""

from ftexp.callbacks import DEPTH_METRIC, FinetuningScheduler, PhaseCheckpoint, PhaseEarlyStopping
from ftexp.schedule import Schedule, ScheduleError, generate_schedule, load_schedule

__all__ = [
    "DEPTH_METRIC",
    "FinetuningScheduler",
    "PhaseCheckpoint",
    "PhaseEarlyStopping",
    "Schedule",
    "ScheduleError",
    "generate_schedule",
    "load_schedule",
]
__version__ = "0.1.0"
