"""ftexp: scheduled fine-tuning experiments on PyTorch Lightning.

The public names are imported on first use, so that ``python -m ftexp`` can report a mistyped config group or key
within a second instead of after loading PyTorch Lightning and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftexp.callbacks import (
        DEPTH_METRIC,
        EpochCheckpoint,
        FinetuningScheduler,
        FTSCheckpoint,
        FTSEarlyStopping,
        PhaseCheckpoint,
        PhaseEarlyStopping,
        ResumableRandomState,
    )
    from ftexp.schedule import Schedule, ScheduleError, generate_schedule, load_schedule, presets
    from ftexp.schedule.slanted_triangular import SlantedTriangularLR

_EXPORTS = {
    "DEPTH_METRIC": "ftexp.callbacks",
    "EpochCheckpoint": "ftexp.callbacks",
    "FinetuningScheduler": "ftexp.callbacks",
    "FTSCheckpoint": "ftexp.callbacks",
    "FTSEarlyStopping": "ftexp.callbacks",
    "PhaseCheckpoint": "ftexp.callbacks",
    "PhaseEarlyStopping": "ftexp.callbacks",
    "ResumableRandomState": "ftexp.callbacks",
    "Schedule": "ftexp.schedule",
    "ScheduleError": "ftexp.schedule",
    "SlantedTriangularLR": "ftexp.schedule.slanted_triangular",
    "generate_schedule": "ftexp.schedule",
    "load_schedule": "ftexp.schedule",
    "presets": "ftexp.schedule",
}

__all__ = [
    "DEPTH_METRIC",
    "EpochCheckpoint",
    "FTSCheckpoint",
    "FTSEarlyStopping",
    "FinetuningScheduler",
    "PhaseCheckpoint",
    "PhaseEarlyStopping",
    "ResumableRandomState",
    "Schedule",
    "ScheduleError",
    "SlantedTriangularLR",
    "generate_schedule",
    "load_schedule",
    "presets",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ftexp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
