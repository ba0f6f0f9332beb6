"""Optimizer and LR-scheduler surgery for phase transitions.

Torch schedulers size their per-group lists (``base_lrs``, ``lr_lambdas``, ``min_lrs``, ``_last_lr``) when they are
built and silently ignore groups added later (ReduceLROnPlateau even crashes with an IndexError). Every group ftexp
adds is therefore registered with every scheduler here, in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pytorch_lightning.utilities.types import LRSchedulerConfig
from torch import nn
from torch.optim import lr_scheduler as lrs

from ftexp.schedule import LRSchedulerSpec, OptimizerSpec, split_no_decay
from ftexp.schedule.optim_specs import import_class

PER_GROUP_LISTS = ("base_lrs", "lr_lambdas", "min_lrs", "_last_lr")


def add_phase_groups(
    optimizer: torch.optim.Optimizer,
    params_by_name: Mapping[str, nn.Parameter],
    blocks: Sequence[tuple[Sequence[str], float]],
    no_decay: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """Append the groups for one phase's parameters, given as blocks of names with their lr (one block, or one per
    group of an ``lr_decay`` phase: :meth:`~ftexp.schedule.Phase.lr_blocks`): per block one group, or two when the
    module has a ``no_decay`` list (the second, for the parameters it names, gets ``weight_decay=0``; either may be
    empty, as in FTS). Returns the new groups."""
    added = []
    for names, lr in blocks:
        for index, group_names in enumerate(split_no_decay(names, no_decay)):
            group: dict[str, Any] = {"params": [params_by_name[n] for n in group_names], "lr": lr, "initial_lr": lr}
            if index == 1:
                group["weight_decay"] = 0.0
            optimizer.add_param_group(group)
            added.append(optimizer.param_groups[-1])
    return added


def rebuild_groups(
    optimizer: torch.optim.Optimizer,
    configs: Sequence[LRSchedulerConfig],
    params_by_name: Mapping[str, nn.Parameter],
    blocks: Sequence[tuple[Sequence[str], float]],
    no_decay: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """Replace every group of an optimizer that has not stepped yet by the groups of ``blocks``
    (:func:`add_phase_groups`), as if ``configure_optimizers()`` had built them: the schedulers built on it then
    hold one entry per new group in each per-group list (``base_lrs`` the groups' lrs), and every group starts at
    its lr times the factor the schedulers applied when they were built (LinearLR and SlantedTriangularLR start
    below their base lr), read off the first group. Returns the new groups."""
    first = optimizer.param_groups[0]
    base = first.get("initial_lr", first["lr"])
    factor = first["lr"] / base if base else 1.0
    optimizer.param_groups.clear()
    added = add_phase_groups(optimizer, params_by_name, blocks, no_decay)
    for group in added:
        group["lr"] = group["initial_lr"] * factor
    for config in configs:
        _resize_group_lists(config.scheduler, added)
    return added


def _resize_group_lists(scheduler: Any, groups: Sequence[dict[str, Any]]) -> None:
    """One entry per group in each of a scheduler's per-group lists: base lrs and last lrs from the groups, the
    others (lr lambdas, ReduceLROnPlateau's min lrs) the first group's, as groups added later get."""
    for attr in PER_GROUP_LISTS:
        values = getattr(scheduler, attr, None)
        if not isinstance(values, list) or not values:
            continue
        if attr == "base_lrs":
            values[:] = [group["initial_lr"] for group in groups]
        elif attr == "_last_lr":
            values[:] = [group["lr"] for group in groups]
        else:
            values[:] = [values[0]] * len(groups)


def extend_schedulers(
    configs: Sequence[LRSchedulerConfig], new_groups: Sequence[dict[str, Any]], apply_lambdas: bool
) -> None:
    """Register freshly added parameter groups with already-built schedulers, so they are scheduled too.

    As in FTS, a group joining a lambda scheduler follows its last lambda from the next step on; with
    ``apply_lambdas`` its starting lr is also scaled by that lambda's current factor (else it starts at the phase lr).
    """
    phase_lrs = [group.get("initial_lr", group["lr"]) for group in new_groups]  # before any scaling
    for config in configs:
        scheduler = config.scheduler
        lambdas = getattr(scheduler, "lr_lambdas", None)
        for group, phase_lr in zip(new_groups, phase_lrs, strict=True):
            if lambdas and apply_lambdas:
                group["lr"] = group["initial_lr"] = phase_lr * lambdas[-1](scheduler.last_epoch)
            group.setdefault("initial_lr", group["lr"])
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs.append(phase_lr)
            if lambdas:
                lambdas.append(lambdas[-1])
            if isinstance(scheduler, lrs.ReduceLROnPlateau):
                scheduler.min_lrs.append(scheduler.min_lrs[0] if scheduler.min_lrs else 0.0)
            last = getattr(scheduler, "_last_lr", None)
            if isinstance(last, list):
                last.append(group["lr"])


def build_lr_scheduler(spec: LRSchedulerSpec, optimizer: torch.optim.Optimizer) -> LRSchedulerConfig:
    """Wrap ``optimizer`` in a new scheduler, setting each group's starting lr as FTS does, in this precedence:
    ``init_pg_lrs`` (which may cover only the groups of earlier phases: the phase's own groups keep its lr), the
    current lrs (``use_current_optimizer_pg_lrs``), else each group's ``initial_lr``. The scheduler's base lrs are
    the groups' ``initial_lr`` (torch's rule), which ``init_pg_lrs`` resets for the groups it covers."""
    for index, group in enumerate(optimizer.param_groups):
        if spec.init_pg_lrs is not None and index < len(spec.init_pg_lrs):
            group["lr"] = group["initial_lr"] = spec.init_pg_lrs[index]
        elif spec.init_pg_lrs is None and not spec.use_current_optimizer_pg_lrs:
            group["lr"] = group.get("initial_lr", group["lr"])
    cls = import_class(spec.lr_scheduler_init, source="schedule", phase=None, key="lr_scheduler_init")
    scheduler = cls(optimizer, **copy.deepcopy(spec.lr_scheduler_init.init_args))
    cfg = {k: v for k, v in spec.pl_lrs_cfg.items() if k != "reduce_on_plateau"}  # checked to match the class
    return LRSchedulerConfig(scheduler=scheduler, reduce_on_plateau=isinstance(scheduler, lrs.ReduceLROnPlateau), **cfg)


def build_optimizer(
    spec: OptimizerSpec,
    current: torch.optim.Optimizer,
    n_phase0_groups: int,
    no_decay_params: set[int],
    earlier_init_pg_lrs: Sequence[Sequence[float]] = (),
) -> torch.optim.Optimizer:
    """A new optimizer over the current groups, configured as FTS configures one: its ``init_args`` and defaults
    give every hyperparameter, so the phase-0 groups start at its lr and every group at its weight decay, except
    ``no_decay`` groups (all parameters in ``no_decay_params``), which keep ``weight_decay=0``; groups of later
    phases keep their phase's lr. FTS rebuilds the new optimizer by replaying the phases before, so the
    ``init_pg_lrs`` lists of those phases (``earlier_init_pg_lrs``, in phase order) set the groups they cover.
    Moments start afresh."""
    groups = []
    for index, group in enumerate(current.param_groups):
        new_group: dict[str, Any] = {"params": group["params"]}
        if index >= n_phase0_groups:
            new_group["lr"] = new_group["initial_lr"] = group.get("initial_lr", group["lr"])
        for lrs_of_phase in earlier_init_pg_lrs:
            if index < len(lrs_of_phase):
                new_group["lr"] = new_group["initial_lr"] = lrs_of_phase[index]
        if group["params"] and all(id(p) in no_decay_params for p in group["params"]):
            new_group["weight_decay"] = 0.0
        groups.append(new_group)
    cls = import_class(spec.optimizer_init, source="schedule", phase=None, key="optimizer_init")
    optimizer = cls(groups, **copy.deepcopy(spec.optimizer_init.init_args))
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return optimizer


def restrict_to(
    optimizer: torch.optim.Optimizer,
    configs: Sequence[LRSchedulerConfig],
    allowed: set[int],
) -> int:
    """Remove from ``optimizer`` every parameter whose id is not in ``allowed``; groups left empty are dropped,
    together with their entries in the schedulers' per-group lists. Returns how many parameters were removed."""
    removed = 0
    keep_groups = []
    for index, group in enumerate(optimizer.param_groups):
        kept = [p for p in group["params"] if id(p) in allowed]
        removed += len(group["params"]) - len(kept)
        group["params"] = kept
        if kept:
            keep_groups.append(index)
    if len(keep_groups) != len(optimizer.param_groups):
        optimizer.param_groups[:] = [optimizer.param_groups[i] for i in keep_groups]
        for config in configs:
            for attr in PER_GROUP_LISTS:
                values = getattr(config.scheduler, attr, None)
                if isinstance(values, list) and len(values) > len(keep_groups):
                    values[:] = [values[i] for i in keep_groups]
    for param in list(optimizer.state):
        if id(param) not in allowed:
            del optimizer.state[param]
    return removed


def truncate_group_lists(scheduler: Any, n_groups: int) -> None:
    """Cut a scheduler's per-group lists back to ``n_groups``. Needed after ``load_state_dict``: LambdaLR keeps
    its live ``lr_lambdas`` list (functions are not saved), which would otherwise keep entries of later groups."""
    for attr in PER_GROUP_LISTS:
        values = getattr(scheduler, attr, None)
        if isinstance(values, list):
            del values[n_groups:]
