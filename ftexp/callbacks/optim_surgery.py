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


def keep_lr(_: int) -> float:
    """Multiplier for groups added to a lambda scheduler without ``apply_lambdas_new_pgs``: keep their lr."""
    return 1.0


def add_phase_groups(
    optimizer: torch.optim.Optimizer,
    params_by_name: Mapping[str, nn.Parameter],
    names: Sequence[str],
    lr: float,
    no_decay: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """Append the groups for one phase's parameters: one, or two when ``no_decay`` splits off weight-decay-free
    parameters (that second group gets ``weight_decay=0``). Returns the new groups."""
    added = []
    for group_names in split_no_decay(names, no_decay):
        group: dict[str, Any] = {"params": [params_by_name[n] for n in group_names], "lr": lr, "initial_lr": lr}
        if no_decay and any(fragment in group_names[0] for fragment in no_decay):
            group["weight_decay"] = 0.0
        optimizer.add_param_group(group)
        added.append(optimizer.param_groups[-1])
    return added


def extend_schedulers(
    configs: Sequence[LRSchedulerConfig], new_groups: Sequence[dict[str, Any]], apply_lambdas: bool
) -> None:
    """Register freshly added parameter groups with already-built schedulers, so they are scheduled too."""
    for config in configs:
        scheduler = config.scheduler
        for group in new_groups:
            group.setdefault("initial_lr", group["lr"])
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs.append(group["initial_lr"])
            if hasattr(scheduler, "lr_lambdas"):
                scheduler.lr_lambdas.append(scheduler.lr_lambdas[-1] if apply_lambdas else keep_lr)
            if isinstance(scheduler, lrs.ReduceLROnPlateau):
                scheduler.min_lrs.append(scheduler.min_lrs[-1] if scheduler.min_lrs else 0.0)
            last = getattr(scheduler, "_last_lr", None)
            if isinstance(last, list):
                last.append(group["lr"])


def build_lr_scheduler(spec: LRSchedulerSpec, optimizer: torch.optim.Optimizer) -> LRSchedulerConfig:
    """Wrap ``optimizer`` in a new scheduler; group lrs restart from ``init_pg_lrs``, the current lrs
    (``use_current_optimizer_pg_lrs``) or, by default, each group's initial lr."""
    for i, group in enumerate(optimizer.param_groups):
        if spec.init_pg_lrs is not None:
            group["lr"] = spec.init_pg_lrs[i]
        elif not spec.use_current_optimizer_pg_lrs:
            group["lr"] = group.get("initial_lr", group["lr"])
        group.pop("initial_lr", None)  # torch keeps an existing initial_lr; the new scheduler must start afresh
    cls = import_class(spec.lr_scheduler_init, source="schedule", phase=None, key="lr_scheduler_init")
    scheduler = cls(optimizer, **copy.deepcopy(spec.lr_scheduler_init.init_args))
    cfg = dict(spec.pl_lrs_cfg)
    return LRSchedulerConfig(scheduler=scheduler, reduce_on_plateau=isinstance(scheduler, lrs.ReduceLROnPlateau), **cfg)


def build_optimizer(spec: OptimizerSpec, current: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """A new optimizer over the current groups; only lr, weight decay and initial lr carry over, the rest comes
    from the new class's ``init_args`` and defaults."""
    carried = ("params", "lr", "weight_decay", "initial_lr")
    groups = [{k: v for k, v in group.items() if k in carried} for group in current.param_groups]
    cls = import_class(spec.optimizer_init, source="schedule", phase=None, key="optimizer_init")
    return cls(groups, **copy.deepcopy(spec.optimizer_init.init_args))


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
