"""Generate a schedule from a model's structure, without a Trainer and without touching weights.

Both generators only read ``named_parameters()`` / ``named_modules()``, so they work on a model built on the
``meta`` device: a schedule for a 400M-parameter model costs milliseconds and no memory.

A module loaded from a pretrained checkpoint may declare the parameters the checkpoint did not hold in an attribute
``newly_initialized`` (names as its ``named_parameters()`` gives them; :class:`ftexp.models.SequenceClassifier`
does): random weights must train from the start, so both generators put them in phase 0 with the head, wherever
they sit in the module. The attribute is read by the generator itself, so every caller (the run's plan, the
callback that generates the schedule again at fit start, the presets' default head) gets the same phases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.model import Phase, Schedule
from ftexp.schedule.names import count_by_module, module_prefixes
from ftexp.schedule.wrapped_names import is_frozen_copy

Mode = Literal["naive", "blocks"]
NEWLY_INITIALIZED_ATTRIBUTE = "newly_initialized"


def generate_schedule(
    module: nn.Module,
    mode: Mode = "blocks",
    max_phases: int | None = None,
    *,
    phase0_extra: Sequence[str] | None = None,
) -> Schedule:
    """Build an implicit schedule for ``module``.

    ``naive`` reproduces FTS's default: parameters in reverse registration order, two per phase, an odd one last.
    ``blocks`` (the default) thaws whole modules: the task head first, then what sits between head and backbone,
    then the repeated blocks from the output side down, embeddings last; ``max_phases`` merges neighbouring
    phases (never the head) until no more than that many remain.

    ``phase0_extra`` names parameters that train from phase 0 whatever their position: they join the head and
    leave the later phase they would be in (a phase left empty is dropped, the others keep their order and are
    numbered on). ``None`` (the default) means the module's own ``newly_initialized`` attribute, the parameters
    ``from_pretrained`` initialized at random (``()`` when it has none): a new pooler must not wait, frozen at
    random values, for the phase of its position. Pass ``()`` for the schedule of the module's structure alone.

    Example::

        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(config)
        schedule = generate_schedule(model)  # deberta-v3-base: 15 phases
    """
    source = f"<implicit:{mode}>"
    # tied parameters are listed once, first name wins; peft's frozen copy of a module is never scheduled
    names = [name for name, _ in module.named_parameters() if not is_frozen_copy(name)]
    if not names:
        raise ScheduleError("the model has no parameters to schedule", source=source)
    if max_phases is not None and max_phases < 1:
        raise ScheduleError("must be >= 1", source=source, key="max_phases", value=max_phases)
    extra = declared_newly_initialized(module) if phase0_extra is None else _checked_names(phase0_extra, source)
    if mode == "naive":
        groups = _naive_groups(names)
    elif mode == "blocks":
        groups = _block_groups(module, names)
    else:
        raise ScheduleError("unknown implicit schedule mode; use 'naive' or 'blocks'", key="mode", value=mode)
    if extra:
        groups = _with_phase0_extra(groups, extra, names, source)
    if max_phases is not None and len(groups) > max_phases:
        groups = _merge_to(groups, max_phases)
    phases = tuple(Phase(index=i, params=tuple(group)) for i, group in enumerate(groups))
    return Schedule(phases, source=source)


def declared_newly_initialized(module: nn.Module) -> tuple[str, ...]:
    """The parameter names ``module`` declares newly initialized (its ``newly_initialized`` attribute), ``()``
    when it declares none: what the generators put in phase 0 by default."""
    declared = getattr(module, NEWLY_INITIALIZED_ATTRIBUTE, None)
    if declared is None:
        return ()
    return _checked_names(declared, f"<{type(module).__name__}>", key=NEWLY_INITIALIZED_ATTRIBUTE)


def _checked_names(names: Sequence[str], source: str, key: str = "phase0_extra") -> tuple[str, ...]:
    checked = () if isinstance(names, str) else tuple(names)
    if isinstance(names, str) or not all(isinstance(name, str) for name in checked):
        raise ScheduleError("must be a sequence of parameter names", source=source, key=key, value=names)
    return checked


def _with_phase0_extra(groups: list[list[str]], extra: Sequence[str], names: list[str], source: str) -> list[list[str]]:
    """``groups`` with ``extra`` moved into phase 0 (after what phase 0 already holds, in registration order) and
    the later phases that this leaves empty dropped."""
    known = set(names)
    unknown = [name for name in extra if name not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 5 else "")
        raise ScheduleError(
            f"names no parameter of the model (named_parameters() lists a tied parameter once): {shown}",
            source=source,
            key="phase0_extra",
        )
    moved = set(extra) - set(groups[0])
    head = [*groups[0], *(name for name in names if name in moved)]
    rest = [[name for name in group if name not in moved] for group in groups[1:]]
    return [head, *(group for group in rest if group)]


def _naive_groups(names: list[str]) -> list[list[str]]:
    reversed_names = names[::-1]
    return [reversed_names[i : i + 2] for i in range(0, len(reversed_names), 2)]


@dataclass(frozen=True)
class _BlockContainer:
    """Sibling modules of one class under one parent: transformer layers, ResNet stages, MLP layers."""

    prefix: str  # the parent's qualified name ("" for the root)
    children: tuple[str, ...]  # qualified names of the repeated children, in registration order


def _block_groups(module: nn.Module, names: list[str]) -> list[list[str]]:
    container = _largest_repeated_container(module, names)
    if container is None:  # nothing repeats: fall back to one phase per top-level unit, output side first
        units = _group_by_unit(names, prefix="")
        return [params for _, params in reversed(units)]
    children = set(container.children)
    block_of = {name: _owner(name, children) for name in names}
    block_of = {name: child for name, child in block_of.items() if child is not None}
    first = next(i for i, n in enumerate(names) if n in block_of)
    last = max(i for i, n in enumerate(names) if n in block_of)
    before = [n for n in names[:first] if n not in block_of]
    after = [n for n in names[last + 1 :] if n not in block_of]
    interleaved = [n for n in names[first : last + 1] if n not in block_of]
    blocks = [[n for n in names if block_of.get(n) == child] for child in container.children]

    groups: list[list[str]] = []
    if after:
        units = _group_by_unit(after, prefix=container.prefix)
        head = units[-1][1]
        neck = [n for _, params in units[:-1] for n in params]
        groups.append(head)
        if neck:
            groups.append(neck)
    groups.extend(reversed(blocks))  # with nothing after the blocks, the last block is the head (an MLP)
    stem = before + interleaved
    if stem:
        groups.append(stem)
    return groups


def _owner(name: str, children: set[str]) -> str | None:
    return next((prefix for prefix in reversed(module_prefixes(name)) if prefix in children), None)


def _largest_repeated_container(module: nn.Module, names: list[str]) -> _BlockContainer | None:
    """Find the group of same-class siblings (>= 2, each holding parameters) that looks most like the backbone.

    Candidates are ranked by: siblings that are composite modules (layers, stages) before leaf modules (a row of
    Embeddings or Linears), then by how many parameter tensors they hold, then by size, then the shallower one
    (ResNet stages rather than bottlenecks). Counting tensors rather than weights keeps a huge vocabulary from
    outranking the transformer layers of a small model. One pass over names and modules: fast on meta models.
    """
    numel = {name: p.numel() for name, p in module.named_parameters()}
    tensors_in = count_by_module(names)
    numel_in = count_by_module(names, numel)
    best_key: tuple | None = None
    best: _BlockContainer | None = None
    for prefix, parent in module.named_modules():
        by_class: dict[type, list[tuple[str, nn.Module]]] = {}
        for child_name, child in parent.named_children():
            qualified = f"{prefix}.{child_name}" if prefix else child_name
            if tensors_in.get(qualified):
                by_class.setdefault(type(child), []).append((qualified, child))
        for siblings in by_class.values():
            if len(siblings) < 2:
                continue
            composite = all(any(True for _ in child.children()) for _, child in siblings)
            key = (
                composite,
                sum(tensors_in[q] for q, _ in siblings),
                sum(numel_in[q] for q, _ in siblings),
                -(prefix.count(".") + 1 if prefix else 0),
            )
            if best_key is None or key > best_key:
                best_key, best = key, _BlockContainer(prefix, tuple(q for q, _ in siblings))
    return best


def _group_by_unit(names: Iterable[str], prefix: str) -> list[tuple[str, list[str]]]:
    """Group names by the module they branch into below the deepest shared ancestor with ``prefix``.

    For a DeBERTa classifier with prefix ``model.deberta.encoder.layer``, ``model.pooler.dense.weight`` falls in
    unit ``model.pooler`` and ``model.deberta.encoder.LayerNorm.bias`` in ``model.deberta.encoder.LayerNorm``.
    """
    prefix_parts = prefix.split(".") if prefix else []
    units: list[tuple[str, list[str]]] = []
    for name in names:
        parts = name.split(".")
        shared = 0
        while shared < len(prefix_parts) and shared < len(parts) - 1 and parts[shared] == prefix_parts[shared]:
            shared += 1
        unit = ".".join(parts[: shared + 1])
        if units and units[-1][0] == unit:
            units[-1][1].append(name)
        else:
            units.append((unit, [name]))
    return units


def _merge_to(groups: list[list[str]], max_phases: int) -> list[list[str]]:
    """Merge neighbouring phases evenly so that at most ``max_phases`` remain; the head stays alone when possible."""
    if max_phases == 1:
        return [[n for g in groups for n in g]]
    head, rest = groups[0], groups[1:]
    slots = max_phases - 1
    merged: list[list[str]] = []
    for i in range(slots):
        lo, hi = (i * len(rest)) // slots, ((i + 1) * len(rest)) // slots
        merged.append([n for g in rest[lo:hi] for n in g])
    return [head, *[g for g in merged if g]]
