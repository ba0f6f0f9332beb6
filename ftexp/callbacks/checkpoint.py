"""The checkpoint callback the scheduler adds when the user configured none that monitors a metric."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint

from ftexp.schedule import defaults


class PhaseCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with the defaults restore-best needs: monitor ``val_loss`` (``min``), keep the best.

    Any monitoring ``ModelCheckpoint`` works with :class:`~ftexp.FinetuningScheduler`; this one only saves typing
    and matches FTS's ``FTSCheckpoint`` defaults. For resumable runs add a second, unmonitored
    ``ModelCheckpoint(save_last=True)``: since Lightning 2.6 a monitored checkpoint rewrites ``last.ckpt`` only
    when it saves a new best, so its ``last.ckpt`` is not the latest state.
    """

    def __init__(self, monitor: str = defaults.MONITOR, mode: str = defaults.MODE, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=mode, **kwargs)
