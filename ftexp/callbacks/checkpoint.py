"""The checkpoint callback the scheduler adds when the user configured none that monitors a metric."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint


class PhaseCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with the defaults restore-best needs: monitor ``val_loss`` (``min``), keep the best and
    ``last.ckpt``. Any monitoring ``ModelCheckpoint`` works with :class:`~ftexp.FinetuningScheduler`; this one only
    saves typing and matches FTS's ``FTSCheckpoint`` defaults."""

    def __init__(self, monitor: str = "val_loss", mode: str = "min", save_last: bool = True, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=mode, save_last=save_last, **kwargs)
