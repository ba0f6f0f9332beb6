"""Fine-tuning recipes from the literature, as schedules built from the model (the presets' way: a function from a
model to a :class:`Schedule`, nothing touching a Trainer).

==================== =============================================================================================
recipe               phases
==================== =============================================================================================
lp_ft                0: the head alone, to convergence (the phase ends when its early stopping fires);
                     1: everything, at ``lr``. Kumar et al., ICLR 2022, "Fine-Tuning can Distort Pretrained
                     Features and Underperform Out-of-Distribution" (linear probing, then fine-tuning)
discriminative       the ``blocks`` (or ``naive``) implicit schedule, each phase's lr the previous one's times
                     ``factor``: lower blocks, thawed later, train at smaller lrs (fastai's discriminative lrs)
ulmfit               one block per epoch from the output side down (gradual unfreezing), each block's lr the one
                     above's / 2.6, under a slanted triangular lr (:class:`ftexp.SlantedTriangularLR`, set by
                     ``schedule=ulmfit``). Howard & Ruder, ACL 2018, "Universal Language Model Fine-tuning for
                     Text Classification", sections 3.2-3.3
lora                 0 only: the adapters and the head (``model.peft``), the base model frozen throughout
lora_then_thaw       0: the adapters and the head; then the base model's top units, one per phase, as the
                     ``blocks`` schedule of the wrapped model orders them (a hybrid of PEFT and gradual thawing)
==================== =============================================================================================

Layer-wise lr decay inside one phase (everything trains from the start) is :func:`ftexp.schedule.presets.llrd`.

What differs from the papers: LP-FT's probe is the task head as the model defines it (for a transformer classifier,
its classification layers, not a logistic regression on frozen features solved in closed form), trained by the same
optimizer; ULMFiT's discriminative lrs hold per *phase*: the blocks a phase thaws share its lr, and once thawed a
block keeps the lr it started with (scaled by the running LR scheduler like every group).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.implicit import Mode, generate_schedule
from ftexp.schedule.model import Phase, Schedule
from ftexp.schedule.presets import Model, _backbone_of, _lr, _names_and_head
from ftexp.schedule.wrapped_names import is_adapter

ULMFIT_FACTOR = 1 / 2.6  # Howard & Ruder 2018, section 3.2: "eta^{l-1} = eta^l / 2.6"


def lp_ft(model: Model, head: Sequence[str] | None = None, lr: float | None = None) -> Schedule:
    """LP-FT: the head alone until its early stopping fires (linear probing to convergence), then everything at
    ``lr`` (``None``: the scheduler's ``base_max_lr``), until the run's early stopping ends it."""
    source = "<recipe:lp_ft>"
    names, head_names = _names_and_head(model, head, "lp_ft")
    backbone = _backbone_of(names, head_names, "lp_ft")
    return Schedule((Phase(0, head_names), Phase(1, backbone, lr=_lr(lr, source))), source=source)


def discriminative(
    model: Model,
    lr: float | None = None,
    factor: float = ULMFIT_FACTOR,
    mode: Mode = "blocks",
    max_phases: int | None = None,
) -> Schedule:
    """The implicit schedule of ``model`` (``mode``, ``max_phases`` as in :func:`generate_schedule`, new parameters
    in phase 0 as there), phase ``k >= 1`` at ``lr * factor**k``: phase 0 trains at the optimizer's lr, which
    ``lr`` should be (``${model.optimizer.lr}`` in the shipped config)."""
    return _discriminative(model, lr, factor, mode, max_phases, "<recipe:discriminative>")


def _discriminative(model: Model, lr: Any, factor: Any, mode: Mode, max_phases: int | None, source: str) -> Schedule:
    base_lr = _required_lr(lr, source)
    factor = _factor(factor, source)
    if not hasattr(model, "named_parameters"):
        raise ScheduleError("needs the model (a module), to find its blocks", source=source)
    schedule = generate_schedule(model, mode=mode, max_phases=max_phases)
    phases = tuple(
        phase if phase.index == 0 else replace(phase, lr=base_lr * factor**phase.index) for phase in schedule.phases
    )
    return Schedule(phases, source=source)


def ulmfit(
    model: Model,
    lr: float | None = None,
    factor: float = ULMFIT_FACTOR,
    epochs_per_phase: int = 1,
    mode: Mode = "blocks",
) -> Schedule:
    """ULMFiT's gradual unfreezing with discriminative lrs: the blocks of :func:`discriminative`, phase ``k``
    starting at epoch ``k * epochs_per_phase`` (a fixed epoch, for a scheduler with ``epoch_transitions_only``),
    the last phase running to the end of the run."""
    source = "<recipe:ulmfit>"
    if isinstance(epochs_per_phase, bool) or not isinstance(epochs_per_phase, int) or epochs_per_phase < 1:
        raise ScheduleError("must be an integer >= 1", source=source, key="epochs_per_phase", value=epochs_per_phase)
    phases = list(_discriminative(model, lr, factor, mode, None, source).phases)
    last = len(phases) - 1
    timed = tuple(
        replace(phase, max_transition_epoch=(phase.index + 1) * epochs_per_phase) if phase.index < last else phase
        for phase in phases
    )
    return Schedule(timed, source=source)


def _required_lr(lr: Any, source: str) -> float:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ScheduleError(
            "must be a positive number, the lr of phase 0 (the optimizer's): the later phases' follow from it",
            source=source,
            key="lr",
            value=lr,
        )
    return float(lr)


def _factor(factor: Any, source: str) -> float:
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1:
        raise ScheduleError(
            "must be a number in (0, 1]: each later (lower) phase's lr is the previous one's times it",
            source=source,
            key="factor",
            value=factor,
        )
    return float(factor)


def lora(model: Model) -> Schedule:
    """Parameter-efficient fine-tuning: one phase of exactly what the adapter wrapper left trainable (the adapters
    and the task head: ``model.peft=lora`` or ``ia3``; and what ``from_pretrained`` initialized at random, which
    :class:`~ftexp.models.SequenceClassifier` leaves trainable), the base model frozen throughout."""
    return Schedule((Phase(0, _adapters_and_head(model, "<recipe:lora>")),), source="<recipe:lora>")


def lora_then_thaw(model: Model, thaw_phases: int | None = 2, lr: float | None = None) -> Schedule:
    """Adapters first, then the base model's top blocks: phase 0 is :func:`lora`'s (the adapters and the head),
    each later phase thaws the next unit of the implicit ``blocks`` schedule of the wrapped model (what sits between
    head and blocks, then the blocks from the output side down), ``thaw_phases`` of them (``None``: down to the
    embeddings), at ``lr`` (``None``: ``base_max_lr``, the optimizer's lr; thawed pretrained weights usually want
    less than the adapters get). Every phase ends by its early stopping, like any schedule's. The adapters inside a
    thawed block keep training; peft's frozen copy of the head is in no phase."""
    source = "<recipe:lora_then_thaw>"
    if thaw_phases is not None and (
        isinstance(thaw_phases, bool) or not isinstance(thaw_phases, int) or thaw_phases < 1
    ):
        raise ScheduleError("must be an integer >= 1, or null for every block", source=source, key="thaw_phases")
    first = _adapters_and_head(model, source)
    taken = set(first)
    later = []
    for phase in generate_schedule(model, mode="blocks").phases[1:]:
        params = tuple(name for name in phase.params if name not in taken)
        if params:
            later.append(Phase(len(later) + 1, params, lr=_lr(lr, source)))
    if not later:
        raise ScheduleError("the wrapped model has no base-model block to thaw after the adapters", source=source)
    return Schedule((Phase(0, first), *later[:thaw_phases]), source=source)


def _adapters_and_head(model: Model, source: str) -> tuple[str, ...]:
    """What the adapter wrapper left trainable, refused when the model has no adapters."""
    if not isinstance(model, nn.Module):
        raise ScheduleError("needs the model (a module), to see its adapters", source=source)
    names = tuple(name for name, parameter in model.named_parameters() if parameter.requires_grad)
    if not any(is_adapter(name) for name in names):
        raise ScheduleError(
            "the model has no adapters: set model.peft=lora (or ia3, or a mapping with the method and its options)",
            source=source,
            key="model.peft",
        )
    return names


RECIPES = {
    "lp_ft": lp_ft,
    "discriminative": discriminative,
    "ulmfit": ulmfit,
    "lora": lora,
    "lora_then_thaw": lora_then_thaw,
}
