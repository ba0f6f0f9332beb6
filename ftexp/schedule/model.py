"""Dataclasses describing a fine-tuning schedule in the FTS-compatible format.

A schedule is a list of phases; phase ``k`` trains every parameter of phases ``0..k`` (phases are cumulative).
Parsing and validation live in :mod:`ftexp.schedule.parse`; nothing here touches a Trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ClassSpec:
    """A ``{class_path, init_args}`` pair, as FTS and LightningCLI write them."""

    class_path: str
    init_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"class_path": self.class_path, "init_args": dict(self.init_args)}


@dataclass(frozen=True)
class LRSchedulerSpec:
    """A phase's ``new_lr_scheduler`` (or the implicit-mode ``reinit_lr_cfg``)."""

    lr_scheduler_init: ClassSpec
    pl_lrs_cfg: dict[str, Any] = field(default_factory=dict)
    init_pg_lrs: tuple[float, ...] | None = None
    use_current_optimizer_pg_lrs: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lr_scheduler_init": self.lr_scheduler_init.to_dict()}
        if self.pl_lrs_cfg:
            out["pl_lrs_cfg"] = dict(self.pl_lrs_cfg)
        if self.init_pg_lrs is not None:
            out["init_pg_lrs"] = list(self.init_pg_lrs)
        if self.use_current_optimizer_pg_lrs:
            out["use_current_optimizer_pg_lrs"] = True
        return out


@dataclass(frozen=True)
class OptimizerSpec:
    """A phase's ``new_optimizer`` (or the implicit-mode ``reinit_optim_cfg``)."""

    optimizer_init: ClassSpec

    def to_dict(self) -> dict[str, Any]:
        return {"optimizer_init": self.optimizer_init.to_dict()}


@dataclass(frozen=True)
class PhaseGroup:
    """One block of a phase with ``lr_decay`` (a task head, a transformer layer, the embeddings): its own optimizer
    group (two with a ``no_decay`` split), so that layers near the input can move less than the head.

    ``lr`` is the group's lr once it is fixed (a run writes it into the schedule it saves, and reads it back from
    there); until then the group's lr is ``lr_scale`` times the lr of its phase, which may only be known at fit
    start (phase 0 without ``lr`` trains at the optimizer's lr).
    """

    name: str  # the block's module, e.g. "model.bert.encoder.layer.1": what the plan and the saved schedule show
    params: tuple[str, ...]
    lr_scale: float = 1.0
    lr: float | None = None

    def lr_for(self, phase_lr: float) -> float:
        """This group's lr in a phase trained at ``phase_lr``."""
        return self.lr if self.lr is not None else phase_lr * self.lr_scale

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "params": list(self.params)}


@dataclass(frozen=True)
class Phase:
    """One phase: the parameters it thaws (on top of earlier phases) and how it ends and is optimized.

    ``params`` holds what the user wrote (names or patterns) until the schedule is resolved against a model;
    after :func:`ftexp.schedule.resolve_schedule` it holds exact parameter names. ``lr_decay`` (ftexp's, not FTS's)
    splits the phase into one optimizer group per block of the model, ``groups``, filled in when the schedule is
    resolved against the module (:func:`ftexp.schedule.layerwise.resolve_layerwise`) or read back from a schedule a
    run saved.
    """

    index: int
    params: tuple[str, ...]
    max_transition_epoch: int = -1
    lr: float | None = None
    new_lr_scheduler: LRSchedulerSpec | None = None
    new_optimizer: OptimizerSpec | None = None
    lr_decay: float | None = None
    groups: tuple[PhaseGroup, ...] = ()

    @property
    def block_params(self) -> tuple[tuple[str, ...], ...]:
        """The parameter blocks this phase's optimizer groups are made of, in order: one per group of an
        ``lr_decay`` phase, else the whole phase (each block is split again by ``no_decay``)."""
        return tuple(group.params for group in self.groups) or (self.params,)

    def lr_blocks(self, phase_lr: float) -> list[tuple[tuple[str, ...], float]]:
        """Each block of :attr:`block_params` with its lr, in a phase trained at ``phase_lr``."""
        if not self.groups:
            return [(self.params, phase_lr)]
        return [(group.params, group.lr_for(phase_lr)) for group in self.groups]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params": list(self.params)}
        if self.max_transition_epoch != -1:
            out["max_transition_epoch"] = self.max_transition_epoch
        if self.lr is not None:
            out["lr"] = self.lr
        if self.lr_decay is not None:
            out["lr_decay"] = self.lr_decay
        if self.groups and all(group.lr is not None for group in self.groups):
            # only once their lrs are fixed: before that, lr_decay alone gives the same groups when read back
            out["groups"] = [group.to_dict() for group in self.groups]
        if self.new_lr_scheduler is not None:
            out["new_lr_scheduler"] = self.new_lr_scheduler.to_dict()
        if self.new_optimizer is not None:
            out["new_optimizer"] = self.new_optimizer.to_dict()
        return out


@dataclass(frozen=True)
class Schedule:
    """An ordered list of phases plus where it came from (a file path, ``<dict>`` or ``<implicit:blocks>``)."""

    phases: tuple[Phase, ...]
    source: str = "<dict>"
    # True once resolve_schedule turned every entry into exact parameter names of one model: a run resolves its
    # schedule once and hands this object on, nobody parses or resolves it again
    resolved: bool = False

    def __len__(self) -> int:
        return len(self.phases)

    def __getitem__(self, depth: int) -> Phase:
        return self.phases[depth]

    @property
    def max_depth(self) -> int:
        return len(self.phases) - 1

    def final_depth(self, max_depth: int = -1) -> int:
        """The last phase a run reaches: the schedule's last, or ``max_depth`` when that is set and smaller."""
        return self.max_depth if max_depth < 0 else min(max_depth, self.max_depth)

    def truncated(self, depth: int) -> Schedule:
        """The phases ``0..depth`` only: what a run stopping at ``depth`` uses (and what its checks cover)."""
        return replace(self, phases=self.phases[: depth + 1])

    def with_phases(self, phases: tuple[Phase, ...]) -> Schedule:
        """The same schedule (source, resolution) with other phase settings; the parameters stay as they are, or a
        resolved schedule would no longer be."""
        if [p.params for p in phases] != [p.params for p in self.phases]:
            raise ValueError("with_phases changes phase settings, not which parameters each phase thaws")
        return replace(self, phases=phases)

    def run_max_epochs(self, max_epochs: int | None) -> int | None:
        """The ``max_epochs`` a run trains for, by FTS's rule: when the schedule's last phase has a
        ``max_transition_epoch``, the largest one of phases 1.. if that is greater (also with ``max_depth``, and over
        Lightning's unlimited -1), else ``max_epochs``."""
        if self.phases[-1].max_transition_epoch < 0 or max_epochs is None:
            return max_epochs
        return max(max_epochs, *(phase.max_transition_epoch for phase in self.phases[1:]))

    def params_through(self, depth: int) -> list[str]:
        """All parameter names trainable at ``depth`` (phases are cumulative)."""
        return [name for phase in self.phases[: depth + 1] for name in phase.params]

    def to_dict(self) -> dict[int, dict[str, Any]]:
        return {phase.index: phase.to_dict() for phase in self.phases}
