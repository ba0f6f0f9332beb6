"""Static checks of optimizer / LR-scheduler directives, and the parameter-group arithmetic they depend on.

The checks instantiate each configured class on a throwaway optimizer with exactly as many parameter groups as the
real one will have at that phase, so a bad ``init_args``, a wrong-length ``init_pg_lrs`` or a ``min_lr`` list of the
wrong size fails at start-up rather than hours into a run.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch.optim import lr_scheduler as lrs

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.model import ClassSpec, LRSchedulerSpec, OptimizerSpec, Phase, Schedule
from ftexp.schedule.slanted_triangular import SlantedTriangularLR

SUPPORTED_LR_SCHEDULERS: tuple[type, ...] = (
    lrs.LambdaLR,
    lrs.MultiplicativeLR,
    lrs.StepLR,
    lrs.MultiStepLR,
    lrs.ExponentialLR,
    lrs.CosineAnnealingLR,
    lrs.CosineAnnealingWarmRestarts,
    lrs.ReduceLROnPlateau,
    lrs.ConstantLR,
    lrs.LinearLR,
    SlantedTriangularLR,  # ftexp's (ULMFiT): a closed form of base_lrs, so new groups follow it once appended
)


def split_no_decay(names: Sequence[str], no_decay: Sequence[str] | None) -> list[list[str]]:
    """Split a phase's parameters into the optimizer groups it adds: ``[decay, no_decay]``.

    ``no_decay`` holds name fragments (``"bias"``, ``"LayerNorm.weight"``) as in the usual HF recipe. With a
    ``no_decay`` list a phase always adds both groups, even when one is empty, as FTS does: ``init_pg_lrs`` lists
    written for FTS count its groups that way.
    """
    if not no_decay:
        return [list(names)] if names else []
    decay = [n for n in names if not any(fragment in n for fragment in no_decay)]
    exempt = [n for n in names if any(fragment in n for fragment in no_decay)]
    return [decay, exempt] if names else []


def phase_group_names(phase: Phase, no_decay: Sequence[str] | None) -> list[list[str]]:
    """The parameter names of each optimizer group ``phase`` adds, in order: per block (one, or one per group of an
    ``lr_decay`` phase), the ``no_decay`` split of it. What the callback adds and what the checks count."""
    return [names for block in phase.block_params for names in split_no_decay(block, no_decay)]


def group_counts(schedule: Schedule, phase0_groups: int, no_decay: Sequence[str] | None) -> list[int]:
    """Number of optimizer parameter groups at each depth, given how many groups phase 0 starts with."""
    counts = [phase0_groups]
    for phase in schedule.phases[1:]:
        counts.append(counts[-1] + len(phase_group_names(phase, no_decay)))
    return counts


def import_class(spec: ClassSpec, *, source: str, phase: int | None, key: str) -> type:
    module_name, _, attr = spec.class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ScheduleError(
            f"cannot import class ({type(err).__name__}: {err})",
            source=source,
            phase=phase,
            key=f"{key}.class_path",
            value=spec.class_path,
        ) from err


def _dummy_optimizer(n_groups: int) -> torch.optim.Optimizer:
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": 1e-3} for _ in range(max(n_groups, 1))]
    return torch.optim.SGD(groups, lr=1e-3)


def check_lr_scheduler_spec(
    spec: LRSchedulerSpec,
    n_groups: int,
    *,
    source: str,
    phase: int | None,
    key: str,
    allow_untested: bool = False,
    n_groups_before: int | None = None,
) -> None:
    """Import, type-check and trial-instantiate a scheduler directive for a phase that will have ``n_groups``
    (``n_groups_before`` of them from earlier phases: the other length ``init_pg_lrs`` may have)."""
    init_key = f"{key}.lr_scheduler_init"
    cls = import_class(spec.lr_scheduler_init, source=source, phase=phase, key=init_key)
    if not (isinstance(cls, type) and issubclass(cls, lrs.LRScheduler | lrs.ReduceLROnPlateau)):
        raise ScheduleError(
            "is not a torch LR scheduler class",
            source=source,
            phase=phase,
            key=f"{init_key}.class_path",
            value=spec.lr_scheduler_init.class_path,
        )
    if not allow_untested and not issubclass(cls, SUPPORTED_LR_SCHEDULERS):
        supported = ", ".join(c.__name__ for c in SUPPORTED_LR_SCHEDULERS)
        raise ScheduleError(
            f"this LR scheduler is not supported (supported: {supported}); pass allow_untested=True to try it",
            source=source,
            phase=phase,
            key=f"{init_key}.class_path",
            value=spec.lr_scheduler_init.class_path,
        )
    is_plateau = issubclass(cls, lrs.ReduceLROnPlateau)
    if spec.pl_lrs_cfg.get("reduce_on_plateau", is_plateau) != is_plateau:
        raise ScheduleError(
            f"says reduce_on_plateau={not is_plateau} for {cls.__name__}; leave it out, ftexp sets it from the class",
            source=source,
            phase=phase,
            key=f"{key}.pl_lrs_cfg.reduce_on_plateau",
            show_value=False,
        )
    if is_plateau and not spec.pl_lrs_cfg.get("monitor"):
        raise ScheduleError(
            "ReduceLROnPlateau needs the metric it watches: set pl_lrs_cfg.monitor (e.g. val_loss)",
            source=source,
            phase=phase,
            key=f"{key}.pl_lrs_cfg.monitor",
            show_value=False,
        )
    valid_lengths = (n_groups_before, n_groups) if n_groups_before is not None else (n_groups,)
    if spec.init_pg_lrs is not None and len(spec.init_pg_lrs) not in valid_lengths:
        expected = (
            f"{n_groups_before} (one per group of earlier phases, as in FTS; the phase's own groups start at its lr) "
            f"or {n_groups} (every group in this phase)"
            if n_groups_before is not None
            else str(n_groups)
        )
        raise ScheduleError(
            f"has {len(spec.init_pg_lrs)} learning rates; it needs {expected}, no_decay splits included",
            source=source,
            phase=phase,
            key=f"{key}.init_pg_lrs",
            value=list(spec.init_pg_lrs),
        )
    _trial_build(cls, _dummy_optimizer(n_groups), spec.lr_scheduler_init, source=source, phase=phase, key=init_key)


def check_optimizer_spec(spec: OptimizerSpec, n_groups: int, *, source: str, phase: int | None, key: str) -> None:
    init_key = f"{key}.optimizer_init"
    cls = import_class(spec.optimizer_init, source=source, phase=phase, key=init_key)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ScheduleError(
            "is not a torch optimizer class",
            source=source,
            phase=phase,
            key=f"{init_key}.class_path",
            value=spec.optimizer_init.class_path,
        )
    groups = _dummy_optimizer(n_groups).param_groups
    _trial_build(cls, groups, spec.optimizer_init, source=source, phase=phase, key=init_key)


def _trial_build(cls: type, first_arg: object, spec: ClassSpec, *, source: str, phase: int | None, key: str) -> None:
    """Construct ``cls(first_arg, **init_args)`` once, turning any failure into an error that names the key."""
    try:
        cls(first_arg, **spec.init_args)
    except Exception as err:  # any constructor failure is a configuration error the user must see
        raise ScheduleError(
            f"{cls.__name__} rejected these arguments ({type(err).__name__}: {err})",
            source=source,
            phase=phase,
            key=f"{key}.init_args",
            value=spec.init_args,
        ) from err


def check_phase_directives(
    schedule: Schedule,
    phase0_groups: int,
    no_decay: Sequence[str] | None,
    *,
    reinit_lr: LRSchedulerSpec | None = None,
    reinit_optim: OptimizerSpec | None = None,
    allow_untested: bool = False,
) -> None:
    """Check every phase's (or the implicit-mode) reinitialization directives against simulated group counts."""
    counts = group_counts(schedule, phase0_groups, no_decay)
    for phase, n_before, n_groups in zip(schedule.phases[1:], counts, counts[1:], strict=False):
        lr_spec = reinit_lr or phase.new_lr_scheduler
        optim_spec = reinit_optim or phase.new_optimizer
        where = {"source": schedule.source if reinit_lr is None else "reinit_lr_cfg", "phase": phase.index}
        if lr_spec is not None:
            key = "new_lr_scheduler" if reinit_lr is None else "reinit_lr_cfg"
            check_lr_scheduler_spec(
                lr_spec, n_groups, key=key, allow_untested=allow_untested, n_groups_before=n_before, **where
            )
        if optim_spec is not None:
            key = "new_optimizer" if reinit_optim is None else "reinit_optim_cfg"
            src = schedule.source if reinit_optim is None else "reinit_optim_cfg"
            check_optimizer_spec(optim_spec, n_groups, source=src, phase=phase.index, key=key)
