"""Classic fine-tuning recipes as ftexp schedules: Flash's ``freeze``, ``freeze_unfreeze`` and
``unfreeze_milestones`` strategies and Lightning's ``BackboneFinetuning``.

Each preset is a pure function from a model (or just its parameter names) and a *head* selection to a
:class:`Schedule`; nothing here touches a Trainer. The head is a list of parameter names or regular expressions
(matched as in schedule files); by default it is what the ``blocks`` generator puts in phase 0, the task head.
Everything else is the *backbone*.

==================== =============================================================================================
preset               phases
==================== =============================================================================================
freeze               0: the head; the backbone stays frozen throughout
freeze_unfreeze      0: the head until ``unfreeze_epoch``; 1: the whole backbone
unfreeze_milestones  0: the head until ``milestones[0]``; 1: the last ``num_layers`` layers (and what sits between
                     them and the head) until ``milestones[1]``; 2: the rest of the backbone
backbone             0: the head until ``unfreeze_epoch``; 1: the backbone at ``head_lr * lr_fraction``
llrd                 0: everything, each block in its own group: the head at ``lr``, each block below at the lr of
                     the one above times ``decay`` (layer-wise lr decay, ``lr_decay``)
==================== =============================================================================================

Transitions happen at fixed epochs (``max_transition_epoch``), so the presets are meant for a
:class:`~ftexp.FinetuningScheduler` with ``epoch_transitions_only=True``. Where they differ from the originals:
thawed groups get a fixed lr that the running LR scheduler then drives like every other group (Lightning's
``BackboneFinetuning`` instead starts the backbone from the head's *current* lr times the fraction and raises it by
1.5x per epoch up to the head's lr), and BatchNorm layers are handled by the scheduler's BatchNorm policy.

Example::

    from ftexp import FinetuningScheduler, presets

    schedule = presets.freeze_unfreeze(model, unfreeze_epoch=3)
    callback = FinetuningScheduler(schedule.to_dict(), epoch_transitions_only=True, restore_best=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.implicit import generate_schedule
from ftexp.schedule.model import Phase, Schedule
from ftexp.schedule.parse import lr_decay_value, resolve_schedule

Model = nn.Module | Sequence[str]


def freeze(model: Model, head: Sequence[str] | None = None) -> Schedule:
    """One phase: the head trains, the backbone stays frozen for the whole run."""
    names, head_names = _names_and_head(model, head, "freeze")
    _backbone_of(names, head_names, "freeze")
    return Schedule((Phase(0, head_names),), source="<preset:freeze>")


def freeze_unfreeze(
    model: Model, head: Sequence[str] | None = None, unfreeze_epoch: int = 10, lr: float | None = None
) -> Schedule:
    """The head alone for epochs ``0 .. unfreeze_epoch - 1``, then the whole backbone (at ``lr``; ``None``: the
    scheduler's ``base_max_lr``)."""
    source = "<preset:freeze_unfreeze>"
    names, head_names = _names_and_head(model, head, "freeze_unfreeze")
    _check_epoch(unfreeze_epoch, source, "unfreeze_epoch")
    backbone = _backbone_of(names, head_names, "freeze_unfreeze")
    phases = (Phase(0, head_names, max_transition_epoch=unfreeze_epoch), Phase(1, backbone, lr=_lr(lr, source)))
    return Schedule(phases, source=source)


def unfreeze_milestones(
    model: Model,
    head: Sequence[str] | None = None,
    milestones: Sequence[int] = (5, 10),
    num_layers: int = 1,
    lr: float | None = None,
    units: Sequence[Sequence[str]] | None = None,
) -> Schedule:
    """The head alone until epoch ``milestones[0]``; then also the last ``num_layers`` layers until
    ``milestones[1]``; then everything.

    The layers are the repeated blocks the ``blocks`` generator finds (transformer layers, ResNet stages, MLP layers),
    counted from the output side; anything between the last layer and the head (a pooler, a final norm) thaws with
    the first milestone, anything below the first layer (embeddings, a stem) with the second. Given parameter names
    instead of a module, pass ``units``: groups of names from the output side down, the first ``num_layers`` of which
    thaw at the first milestone.
    """
    source = "<preset:unfreeze_milestones>"
    names, head_names = _names_and_head(model, head, "unfreeze_milestones")
    first, second = _check_milestones(milestones, source)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ScheduleError("must be an integer >= 1", source=source, key="num_layers", value=num_layers)
    if units is None:
        if not isinstance(model, nn.Module):
            raise ScheduleError("give the model (a module) or the layer units of its parameter names", source=source)
        units = layer_units(model)
    head_set = set(head_names)
    layers = [[n for n in unit if n not in head_set] for unit in units]
    layers = [unit for unit in layers if unit]
    if num_layers >= len(layers):
        raise ScheduleError(
            f"the model has {len(layers)} layers below the head: num_layers must be smaller, so that something is "
            "left to thaw at the second milestone",
            source=source,
            key="num_layers",
            value=num_layers,
        )
    top = {n for unit in layers[:num_layers] for n in unit}
    backbone = _backbone_of(names, head_names, "unfreeze_milestones")
    phases = (
        Phase(0, head_names, max_transition_epoch=first),
        Phase(1, tuple(n for n in backbone if n in top), max_transition_epoch=second, lr=_lr(lr, source)),
        Phase(2, tuple(n for n in backbone if n not in top), lr=_lr(lr, source)),
    )
    return Schedule(phases, source=source)


def backbone(
    model: Model,
    head: Sequence[str] | None = None,
    unfreeze_epoch: int = 10,
    head_lr: float | None = None,
    lr_fraction: float = 0.1,
) -> Schedule:
    """Lightning's ``BackboneFinetuning``: the head alone until ``unfreeze_epoch``, then the backbone at
    ``head_lr * lr_fraction`` (``head_lr``: the optimizer's lr, e.g. ``${model.optimizer.lr}`` in a config)."""
    source = "<preset:backbone>"
    names, head_names = _names_and_head(model, head, "backbone")
    _check_epoch(unfreeze_epoch, source, "unfreeze_epoch")
    if head_lr is None:
        raise ScheduleError("the backbone lr is head_lr * lr_fraction: give head_lr", source=source, key="head_lr")
    lr = _lr(head_lr, source, "head_lr") * _lr(lr_fraction, source, "lr_fraction")
    rest = _backbone_of(names, head_names, "backbone")
    phases = (Phase(0, head_names, max_transition_epoch=unfreeze_epoch), Phase(1, rest, lr=lr))
    return Schedule(phases, source=source)


PRESETS = {
    "freeze": freeze,
    "freeze_unfreeze": freeze_unfreeze,
    "unfreeze_milestones": unfreeze_milestones,
    "backbone": backbone,
}


def layer_units(module: nn.Module) -> list[list[str]]:
    """The ``blocks`` generator's phases after the head, regrouped into *layers* from the output side down: the
    repeated blocks, with what sits between the last block and the head merged into the last block and what sits
    below the first block (embeddings, a stem) into the first. Without repeated blocks, the generator's phases.

    Tiny 2-layer BERT classifier: ``[[pooler.*, encoder.layer.1.*], [encoder.layer.0.*, embeddings.*]]``.
    """
    phases = [list(phase.params) for phase in generate_schedule(module, mode="blocks").phases[1:]]
    modules = dict(module.named_modules())
    is_block = _repeated_blocks(phases, modules)
    if not any(is_block):
        return phases
    first = is_block.index(True)
    last = len(is_block) - 1 - is_block[::-1].index(True)
    units = [list(unit) for unit in phases[first : last + 1]]
    units[0] = [n for unit in phases[:first] for n in unit] + units[0]
    units[-1] = units[-1] + [n for unit in phases[last + 1 :] for n in unit]
    return units


def _repeated_blocks(phases: list[list[str]], modules: dict[str, nn.Module]) -> list[bool]:
    """Which phases hold exactly one of several same-class sibling modules (the generator's notion of a block)."""
    owners = [_common_module(unit) for unit in phases]
    siblings: dict[tuple[str, type], int] = {}
    for owner in owners:
        if owner:
            parent = owner.rpartition(".")[0]
            key = (parent, type(modules.get(owner)))
            siblings[key] = siblings.get(key, 0) + 1
    return [bool(owner) and siblings[(owner.rpartition(".")[0], type(modules.get(owner)))] >= 2 for owner in owners]


def _common_module(names: Sequence[str]) -> str:
    """The deepest module holding all of ``names`` (``""``: the root)."""
    paths = [name.split(".")[:-1] for name in names]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _names_and_head(model: Model, head: Sequence[str] | None, preset: str) -> tuple[list[str], tuple[str, ...]]:
    source = f"<preset:{preset}>"
    if isinstance(model, nn.Module):
        names = [name for name, _ in model.named_parameters()]
        if head is None:
            return names, generate_schedule(model, mode="blocks")[0].params
    else:
        names = list(model)
        if head is None:
            raise ScheduleError("give the head (names or patterns) when passing parameter names", source=source)
    if isinstance(head, str):
        head = [head]
    if not head or not all(isinstance(entry, str) and entry for entry in head):
        raise ScheduleError("must be a non-empty list of parameter names or patterns", source=source, key="head")
    try:
        resolved, _ = resolve_schedule(Schedule((Phase(0, tuple(head)),), source=source), names)
    except ScheduleError as err:
        raise ScheduleError(err.problem, source=source, key="head", value=err.value) from err
    return names, resolved[0].params


def _backbone_of(names: Sequence[str], head_names: Sequence[str], preset: str) -> tuple[str, ...]:
    head_set = set(head_names)
    rest = tuple(n for n in names if n not in head_set)
    if not rest:
        raise ScheduleError(
            "the head selection covers every parameter: there is no backbone to freeze or thaw",
            source=f"<preset:{preset}>",
            key="head",
        )
    return rest


def _check_epoch(epoch: Any, source: str, key: str) -> None:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ScheduleError(
            "must be an integer >= 1 (to train everything from the start, use no schedule)",
            source=source,
            key=key,
            value=epoch,
        )


def _check_milestones(milestones: Any, source: str) -> tuple[int, int]:
    values = list(milestones) if isinstance(milestones, Sequence) and not isinstance(milestones, str) else None
    integers = values is not None and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if not integers or len(values) != 2 or not 1 <= values[0] < values[1]:
        raise ScheduleError(
            "must be two increasing epochs [first, second], first >= 1",
            source=source,
            key="milestones",
            value=milestones,
        )
    return values[0], values[1]


def _lr(lr: Any, source: str, key: str = "lr") -> float | None:
    if lr is None:
        return None
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ScheduleError("must be a positive number", source=source, key=key, value=lr)
    return float(lr)


def llrd(model: nn.Module, lr: float | None = None, decay: float = 0.9) -> Schedule:
    """Layer-wise lr decay: one phase in which everything trains from the first step, the task head at ``lr``
    (``None``: the optimizer's lr) and each block below it at the lr of the block above times ``decay``.

    Why: the layers near the input hold the most general features, which fine-tuning should change least; the
    standard recipe for BERT, ELECTRA and DeBERTa (Sun et al. 2019, "How to Fine-Tune BERT for Text
    Classification?"; Clark et al. 2020, ELECTRA), with ``decay`` usually 0.8-0.95. The blocks are the ``blocks``
    generator's (head, pooler, layers from the top down, embeddings): a 2-layer BERT classifier trains its head at
    ``lr``, pooler at ``lr * decay``, layer 1 at ``lr * decay**2``, layer 0 at ``lr * decay**3`` and embeddings at
    ``lr * decay**4``, each block in its own optimizer group (two with a ``no_decay`` split).
    """
    source = "<preset:llrd>"
    if not isinstance(model, nn.Module):
        raise ScheduleError("needs the model (a module): its blocks are found from its structure", source=source)
    names = tuple(name for name, _ in model.named_parameters())
    if not names:
        raise ScheduleError("the model has no parameters to schedule", source=source)
    phase = Phase(0, names, lr=_lr(lr, source), lr_decay=lr_decay_value(decay, source, None, key="decay"))
    return Schedule((phase,), source=source)


PRESETS["llrd"] = llrd
