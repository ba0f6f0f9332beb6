"""The defaults a scheduled run falls back on, named once: FTS's values, which ftexp keeps.

The callback's signature, PhaseEarlyStopping, PhaseCheckpoint and the dry-run plan all read them from here, so the
plan never describes a default the run does not use.
"""

from __future__ import annotations

BASE_MAX_LR = 1e-5  # lr of the groups a phase adds when it gives no `lr`
MONITOR = "val_loss"  # what early stopping and the best checkpoint watch
MODE = "min"
PATIENCE = 3  # validation checks without improvement that end a phase


def added_group_lr(phase_lr: float | None, base_max_lr: float | None, phase0_lr: float) -> float:
    """The lr of the groups a phase adds: the phase's own ``lr``, else ``base_max_lr``, else the lr of the
    optimizer's first phase-0 group (FTS's rule); the run and the dry-run plan both ask this function."""
    if phase_lr is not None:
        return phase_lr
    return base_max_lr if base_max_lr is not None else phase0_lr


def phase0_lr(phase_lr: float | None, optimizer_lr: float) -> float:
    """The lr phase 0's ``lr_decay`` groups scale from: the phase's own ``lr``, else the lr the optimizer from
    ``configure_optimizers()`` was built with (its first group's ``initial_lr``). Phase 0 otherwise trains the
    optimizer's groups as configured, as in FTS, so only ``lr_decay`` reads it; the run, the plan and the saved
    schedule all ask this function."""
    return phase_lr if phase_lr is not None else optimizer_lr
